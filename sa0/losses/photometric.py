"""Photometric losses and metrics on (B, H, W, C) images in [0, 1] (sa0's image layout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as _ssim

from sa0.render.native import load_native


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM with an 11x11 Gaussian window (sigma 1.5), data range 1 (pytorch-msssim)."""
    return _ssim(_nchw(pred), _nchw(target), data_range=1.0, win_size=window, size_average=True)


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(B,) SSIM of each image (same window and range as ssim); ssim() is their mean; gradient for
    pred only. On CPU, sa0's native kernel (csrc/ssim_cpu.cpp: one pass per blur on the (B, H, W, C)
    layout, closed-form backward; 1.8-2.4x pytorch-msssim at 512^2); elsewhere, or where the kernel
    cannot be built, pytorch-msssim (ssim_per_image_reference, its twin)."""
    if pred.device.type == "cpu" and pred.dtype in (torch.float32, torch.float64) and min(pred.shape[1:3]) >= window:
        if load_native() is not None:
            return _NativeSSIM.apply(pred, target.detach(), window)
    return ssim_per_image_reference(pred, target, window)


def ssim_per_image_reference(pred: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(B,) SSIM of each image by pytorch-msssim (the twin of the native kernel)."""
    return _ssim(_nchw(pred), _nchw(target), data_range=1.0, win_size=window, size_average=False)


class _NativeSSIM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, window: int) -> torch.Tensor:
        x, y = x.contiguous(), y.contiguous()
        taps = _window(window, 1.5, 1, x)[0].reshape(-1).contiguous()
        values, moments = load_native().ssim_forward(x, y, taps)
        ctx.save_for_backward(x, y, taps, moments)
        return values

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, y, taps, moments = ctx.saved_tensors
        return load_native().ssim_backward(grad.contiguous(), x, y, taps, moments), None, None


_C1, _C2 = 0.01 ** 2, 0.03 ** 2  # (K1 L)^2, (K2 L)^2 with data range L = 1


def _window(size: int, sigma: float, channels: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float32) - size // 2  # float32 as pytorch-msssim makes it
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = (g / g.sum()).to(like.device, like.dtype)
    return g.view(1, 1, size, 1).repeat(channels, 1, 1, 1), g.view(1, 1, 1, size).repeat(channels, 1, 1, 1)


def _blur(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian, valid region (H - w + 1, W - w + 1), per channel."""
    c = x.shape[1]
    return F.conv2d(F.conv2d(x, rows, groups=c), cols, groups=c)


def _blur_adjoint(g: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    c = g.shape[1]
    return F.conv_transpose2d(F.conv_transpose2d(g, cols, groups=c), rows, groups=c)


class _FusedSSIM(torch.autograd.Function):
    """SSIM per image with its gradient in closed form: one blur of the five stacked moment maps
    forward, one adjoint blur of three stacked maps backward (pytorch-msssim blurs each map alone
    and autograd keeps every intermediate). Gradient for the prediction only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, window: int) -> torch.Tensor:
        c = x.shape[1]
        rows, cols = _window(window, 1.5, 5 * c, x)
        mx, my, exx, eyy, exy = _blur(torch.cat((x, y, x * x, y * y, x * y), 1), rows, cols).split(c, 1)
        a = 2 * mx * my + _C1
        b = mx * mx + my * my + _C1
        num = 2 * (exy - mx * my) + _C2
        den = (exx - mx * mx) + (eyy - my * my) + _C2
        ctx.save_for_backward(x, y, mx, my, a, b, num, den)
        ctx.window = window
        return (a * num / (b * den)).flatten(1).mean(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, y, mx, my, a, b, num, den = ctx.saved_tensors
        c = x.shape[1]
        ab, nd = a / b, num / den
        s = ab * nd
        d_mx = s * (2 * my / a - 2 * mx / b) + ab * (2 * mx * nd - 2 * my) / den
        d_exx = -s / den
        d_exy = 2 * ab / den
        scale = (grad / mx[0].numel()).view(-1, 1, 1, 1)
        rows, cols = _window(ctx.window, 1.5, 3 * c, x)
        g_mx, g_exx, g_exy = _blur_adjoint(torch.cat((d_mx, d_exx, d_exy), 1) * scale, rows, cols).split(c, 1)
        return g_mx + 2 * x * g_exx + y * g_exy, None, None


def fused_ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(B,) SSIM of NCHW images x against y (no gradient for y), as pytorch-msssim defines it."""
    return _FusedSSIM.apply(x, y.detach(), window)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over the whole batch, data range 1."""
    mse = ((pred - target) ** 2).mean().clamp_min(1e-12)
    return -10.0 * torch.log10(mse)

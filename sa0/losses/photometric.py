"""Photometric losses and metrics on (B, H, W, C) images in [0, 1] (sa0's image layout)."""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM with an 11x11 Gaussian window (sigma 1.5), data range 1 (pytorch-msssim)."""
    return _ssim(_nchw(pred), _nchw(target), data_range=1.0, win_size=window, size_average=True)


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(B,) SSIM of each image (same window and range as ssim); ssim() is their mean."""
    return _ssim(_nchw(pred), _nchw(target), data_range=1.0, win_size=window, size_average=False)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over the whole batch, data range 1."""
    mse = ((pred - target) ** 2).mean().clamp_min(1e-12)
    return -10.0 * torch.log10(mse)

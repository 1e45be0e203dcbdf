"""Generator loss terms (METHOD §2 "Loss", §3): MS-SSIM over Gaussian sigmas, LPIPS, face-box L1,
UV total variation, residual-delta L1, the Jacobian view-independence penalty, the L2-SP anchor."""

from __future__ import annotations

import math

import torch

from sa0.gaussians.layout import UVLayout

MS_SSIM_SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0)
_C1, _C2 = 0.01**2, 0.03**2


def _gaussian_window(sigma: float, size: int, dtype, device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of (B, C, H, W), per channel."""
    c, size = x.shape[1], window.numel()
    x = torch.nn.functional.conv2d(x, window.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return torch.nn.functional.conv2d(x, window.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def ssim_components(x: torch.Tensor, y: torch.Tensor, sigma: float, size: int | None = None):
    """Luminance and contrast-structure maps of SSIM with a Gaussian window (NCHW, data range 1)."""
    size = size or (2 * math.ceil(3 * sigma) + 1)
    window = _gaussian_window(sigma, size, x.dtype, x.device)
    mx, my = _blur(x, window), _blur(y, window)
    sxx = _blur(x * x, window) - mx * mx
    syy = _blur(y * y, window) - my * my
    sxy = _blur(x * y, window) - mx * my
    luminance = (2 * mx * my + _C1) / (mx * mx + my * my + _C1)
    cs = (2 * sxy + _C2) / (sxx + syy + _C2)
    return luminance, cs


def ms_ssim_sigmas(pred: torch.Tensor, target: torch.Tensor, sigmas=MS_SSIM_SIGMAS) -> torch.Tensor:
    """MS-SSIM at full resolution over Gaussian sigmas: mean of l(sigma_max) * prod_i cs(sigma_i),
    each map cropped to the largest window's valid region. Images (B, H, W, C) in [0, 1]."""
    x, y = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    largest = 2 * math.ceil(3 * max(sigmas)) + 1
    if min(x.shape[-2:]) < largest:
        raise ValueError(f"MS-SSIM with sigma {max(sigmas)} needs images of at least {largest} px, got {tuple(x.shape[-2:])}")
    product, luminance = None, None
    for sigma in sorted(sigmas):
        lum, cs = ssim_components(x, y, sigma)
        crop = (cs.shape[-1] - (x.shape[-1] - largest + 1)) // 2
        cs = cs[..., crop: cs.shape[-2] - crop, crop: cs.shape[-1] - crop]
        product = cs if product is None else product * cs
        luminance = lum[..., crop: lum.shape[-2] - crop, crop: lum.shape[-1] - crop]
    return (luminance * product).mean()


def make_lpips(net: str = "alex", random_backbone: bool = False):
    """The lpips package's metric. Its linear heads ship with the package; the backbone weights come
    from torchvision's cache. random_backbone=True is for tests only (the numbers mean nothing)."""
    import lpips

    try:
        return lpips.LPIPS(net=net, pretrained=True, pnet_rand=random_backbone, verbose=False).eval()
    except Exception as exc:
        raise RuntimeError(
            f"LPIPS ({net}) backbone weights are unavailable ({type(exc).__name__}: {exc}). Put torchvision's "
            f"{net} ImageNet weights into $TORCH_HOME/hub/checkpoints (download them on a machine with internet)."
        ) from exc


def box_l1(pred: torch.Tensor, target: torch.Tensor, boxes: torch.Tensor, dilate: float = 1.65) -> torch.Tensor:
    """L1 inside each image's face box (x0, y0, x1, y1) px, dilated about its centre. Images (B, H, W, C)."""
    b, h, w, _ = pred.shape
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    half = 0.5 * dilate * (boxes[:, 2:] - boxes[:, :2])
    ys = torch.arange(h, device=pred.device, dtype=pred.dtype) + 0.5
    xs = torch.arange(w, device=pred.device, dtype=pred.dtype) + 0.5
    inside_x = ((xs[None] - centre[:, :1]).abs() <= half[:, :1])
    inside_y = ((ys[None] - centre[:, 1:]).abs() <= half[:, 1:])
    mask = (inside_y[:, :, None] & inside_x[:, None, :]).to(pred.dtype)[..., None]
    return ((pred - target).abs() * mask).sum() / (mask.sum() * pred.shape[-1]).clamp_min(1.0)


def uv_total_variation(values: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """Mean |difference| between horizontally and vertically adjacent valid texels of per-texel values (B, N, C)."""
    idx = layout.index_map
    right = (idx[:, :-1] >= 0) & (idx[:, 1:] >= 0)
    down = (idx[:-1, :] >= 0) & (idx[1:, :] >= 0)
    a = torch.cat((idx[:, :-1][right], idx[:-1, :][down]))
    b = torch.cat((idx[:, 1:][right], idx[1:, :][down]))
    if a.numel() == 0:
        return values.sum() * 0.0
    return (values[:, a] - values[:, b]).abs().mean()


def delta_l1(deltas: torch.Tensor) -> torch.Tensor:
    return deltas.abs().mean()


def jacobian_penalty(head_maps: dict, view_code: torch.Tensor) -> torch.Tensor:
    """log(1 + |dg_x/dgamma|^2 + |dg_s/dgamma|^2) with g = sum <v, head output> for Rademacher v per
    texel (Hutchinson); the position and scale heads, gradients via autograd with create_graph=True.
    view_code must be part of the graph that produced head_maps (e.g. a leaf with requires_grad)."""
    terms = []
    for name in ("positions", "log_scales"):
        out = head_maps[name]
        if not out.requires_grad:  # nothing upstream needs gradients: the head cannot depend on gamma
            terms.append(torch.zeros_like(view_code))
            continue
        v = torch.randint(0, 2, out.shape, device=out.device).to(out.dtype) * 2 - 1
        (grad,) = torch.autograd.grad((v * out).sum(), view_code, create_graph=True, allow_unused=True)
        terms.append(torch.zeros_like(view_code) if grad is None else grad)
    return torch.log1p((terms[0] ** 2).sum(-1) + (terms[1] ** 2).sum(-1)).mean()


def l2_sp(model: torch.nn.Module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum ||theta - theta_anchor||^2 over trainable parameters present in the anchor (phase-1 weights)."""
    total = None
    for name, param in model.named_parameters():
        if param.requires_grad and name in anchor:
            term = (param - anchor[name].to(param)).pow(2).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("L2-SP anchor shares no trainable parameter with the model")
    return total

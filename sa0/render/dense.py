"""Dense reference rasteriser: every Gaussian against every pixel, plain autograd.

The obviously-correct twin of the tiled backend (slow: O(pixels x Gaussians)). Per pixel, the
Gaussians are sorted front to back by depth and composited as in 3DGS:
alpha_i = min(alpha_max, o_i exp(-power_i)), skipped when power_i < 0 or alpha_i < 1/255;
T_i = prod_{j<i} (1 - alpha_j); the pixel stops before the first Gaussian that would bring T to
<= 1e-4; colour = sum_i alpha_i T_i c_i + T_final background; alpha = 1 - T_final.
Pixels are processed in chunks under activation checkpointing, so memory stays bounded.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from sa0.render.projection import ALPHA_THRESHOLD, Projected

TRANSMITTANCE_MIN = 1e-4


def _composite_pixels(px, py, mean2d, conic, opacity, color, alpha_max: float):
    """(P,) pixel centres against (M,) depth-sorted Gaussians -> colour (P, C), transmittance (P,)."""
    dx = px[:, None] - mean2d[None, :, 0]
    dy = py[:, None] - mean2d[None, :, 1]
    power = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
    alpha = torch.clamp(opacity * torch.exp(-power), max=alpha_max)
    alpha = torch.where((power >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
    trans_after = torch.cumprod(1.0 - alpha, dim=1)
    trans_before = torch.cat((torch.ones_like(trans_after[:, :1]), trans_after[:, :-1]), dim=1)
    used = (trans_after > TRANSMITTANCE_MIN).to(alpha.dtype)
    weight = alpha * trans_before * used
    final_trans = torch.prod(1.0 - alpha * used, dim=1)
    return weight @ color, final_trans


def rasterize_dense(
    proj: Projected,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    background: torch.Tensor,
    width: int,
    height: int,
    alpha_max: float = 0.99,
    pixel_chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> image (B, H, W, C), alpha (B, H, W, 1). colors (B, N, C), opacities (B, N), background (B, C)."""
    num_cams = proj.means2d.shape[0]
    dtype = proj.means2d.dtype
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype) + 0.5, torch.arange(width, dtype=dtype) + 0.5, indexing="ij"
    )
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    images, alphas = [], []
    for b in range(num_cams):
        idx = torch.nonzero(proj.valid[b]).squeeze(1)
        idx = idx[torch.argsort(proj.depths[b, idx].detach(), stable=True)]
        args = (proj.means2d[b, idx], proj.conics[b, idx], opacities[b, idx], colors[b, idx])
        chunks_c, chunks_t = [], []
        for start in range(0, xs.shape[0], pixel_chunk):
            sl = slice(start, start + pixel_chunk)
            c, t = checkpoint(_composite_pixels, xs[sl], ys[sl], *args, alpha_max, use_reentrant=False)
            chunks_c.append(c)
            chunks_t.append(t)
        color, trans = torch.cat(chunks_c), torch.cat(chunks_t)
        images.append((color + trans[:, None] * background[b]).reshape(height, width, -1))
        alphas.append((1.0 - trans).reshape(height, width, 1))
    return torch.stack(images), torch.stack(alphas)

"""Registering a novel view's render to its ground truth before scoring it.

A tracked head's frame is the truth's only up to the tracker's error: from one frontal camera its
depth and pitch are weakly seen, so a view orbited 30 degrees about it lands a fraction of a pixel
or more off the truth's orbited view (on sa0's benchmark 0.6 px and 0.4 degrees of image rotation
at 30 degrees, 1.3 px at 60, costing 2-3 dB on a finely textured head). A pitch error shows there as
an in-plane rotation that grows as sin(yaw). Methods with estimated cameras score test views after
aligning their poses (BARF and NoPe-NeRF optimise each test camera). sa0 does the 2D analogue: the
render is warped by the similarity (shift, scale, in-plane rotation about the image centre) that best
matches the truth, found by Adam on the mean squared error, first on 5 x 5 box-blurred images (wide
basin), then on the images themselves, and the better of the raw and the warped render is scored.
A warp cannot sharpen, recolour or reshape, so what it removes is registration only; the benchmark
reports the raw score beside it and the warp's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Registration:
    """The similarity found: shift (x, y) in pixels, scale factor, in-plane rotation in degrees."""

    shift_px: tuple[float, float]
    scale: float
    rotation_deg: float


_SCALE_STEP = 0.1  # Adam moves all four parameters alike: scale and angle in tenths (0.1 -> 1 %, ~0.6 deg)


def similarity_warp(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """images (N, H, W, C) -> the same sampled through the similarity params (4,): shift x, y (px),
    log scale / 10, angle (rad) / 10, about the image centre; outside the image is 0 (black)."""
    h, w = images.shape[1:3]
    s, r = torch.exp(params[2] * _SCALE_STEP), params[3] * _SCALE_STEP
    theta = torch.stack([torch.stack([s * torch.cos(r), -s * torch.sin(r) * h / w, params[0] * 2 / w]),
                         torch.stack([s * torch.sin(r) * w / h, s * torch.cos(r), params[1] * 2 / h])])
    x = images.permute(0, 3, 1, 2)
    grid = F.affine_grid(theta[None].expand(len(x), 2, 3).to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros").permute(0, 2, 3, 1)


def register(pred: torch.Tensor, target: torch.Tensor, steps: int = 80, lr: float = 0.05
             ) -> tuple[torch.Tensor, Registration]:
    """pred, target (N, H, W, C) -> (pred warped by the similarity that best matches target, or pred
    itself where no warp lowers the error; the Registration, all frames sharing one warp)."""
    pred, target = pred.detach(), target.detach()
    params = torch.zeros(4, dtype=pred.dtype, requires_grad=True)
    opt = torch.optim.Adam([params], lr=lr)
    blur = lambda x: F.avg_pool2d(x.permute(0, 3, 1, 2), 5, 1, 2)  # noqa: E731
    for step in range(steps):
        warped = similarity_warp(pred, params)
        if step < steps // 2:
            loss = (blur(warped) - blur(target)).pow(2).mean()
        else:
            loss = (warped - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        warped = similarity_warp(pred, params)
        if (warped - target).pow(2).mean() >= (pred - target).pow(2).mean():
            return pred, Registration((0.0, 0.0), 1.0, 0.0)
    p = params.detach().tolist()
    return warped, Registration((p[0], p[1]), math.exp(p[2] * _SCALE_STEP), math.degrees(p[3] * _SCALE_STEP))

"""Anti-spike regularisation (METHOD §4): screen-space aspect penalty, log-scale clamps, maxAR.

The projected 2x2 covariance (EWA, including the renderer's 0.3 px^2 low-pass) has closed-form
eigenvalues lambda = (a + c) / 2 +- sqrt(((a - c) / 2)^2 + b^2). Its log-aspect is
0.5 (log lambda_max - log lambda_min) = log of the axis ratio; the penalty is
mean over visible Gaussians of ReLU(log-aspect - tau). maxAR is the largest axis ratio.
"""

from __future__ import annotations

import torch

from sa0.types import RenderOut


def projected_eigenvalues(cov2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3) covariances as (xx, xy, yy) -> (lambda_max, lambda_min), both (...)."""
    a, b, c = cov2d.unbind(-1)
    mean = 0.5 * (a + c)
    radius = torch.sqrt((0.5 * (a - c)) ** 2 + b * b + 1e-20)
    return mean + radius, (mean - radius).clamp_min(1e-12)


def _visible(out: RenderOut) -> torch.Tensor:
    return (out.radii > 0).all(-1)


def aspect_penalty(out: RenderOut, tau: float) -> torch.Tensor:
    """mean_g ReLU(0.5 (log lmax - log lmin) - tau) over Gaussians visible in any camera."""
    lmax, lmin = projected_eigenvalues(out.cov2d)
    log_aspect = 0.5 * (torch.log(lmax) - torch.log(lmin))
    visible = _visible(out)
    if not visible.any():
        return out.cov2d.sum() * 0.0
    return torch.relu(log_aspect[visible] - tau).mean()


def max_aspect_ratio(out: RenderOut) -> float:
    """maxAR: the largest projected axis ratio sqrt(lmax / lmin) among visible Gaussians."""
    with torch.no_grad():
        lmax, lmin = projected_eigenvalues(out.cov2d)
        visible = _visible(out)
        return float(torch.sqrt(lmax[visible] / lmin[visible]).max()) if visible.any() else 1.0


@torch.no_grad()
def clamp_log_scales(log_scales: torch.Tensor, smin: float, smax: float, spread: float) -> None:
    """In place: clamp to [smin, smax], then raise each axis to at least (largest axis - spread)."""
    log_scales.clamp_(smin, smax)
    floor = log_scales.max(dim=-1, keepdim=True).values - spread
    torch.maximum(log_scales, floor, out=log_scales)

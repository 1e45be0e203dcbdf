"""Deterministic test/benchmark scenes: random Gaussians in front of a camera rig."""

from __future__ import annotations

import torch

from sa0.geometry.camera import intrinsics_from_fov, look_at
from sa0.types import Cameras, Gaussians


def random_gaussians(
    num: int,
    seed: int = 0,
    radius: float = 0.3,
    median_scale: float = 0.01,
    scale_spread: float = 0.5,
    channels: int = 3,
    dtype: torch.dtype = torch.float32,
) -> Gaussians:
    """num Gaussians uniform in a ball of `radius` around the origin, log-normal scales, random
    rotations, opacities in [0.05, 1], colours in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(num, 3, generator=gen, dtype=dtype), dim=-1)
    means = direction * radius * torch.rand(num, 1, generator=gen, dtype=dtype) ** (1 / 3)
    quats = torch.nn.functional.normalize(torch.randn(num, 4, generator=gen, dtype=dtype), dim=-1)
    scales = median_scale * torch.exp(scale_spread * torch.randn(num, 3, generator=gen, dtype=dtype))
    opacities = 0.05 + 0.95 * torch.rand(num, generator=gen, dtype=dtype)
    colors = torch.rand(num, channels, generator=gen, dtype=dtype)
    return Gaussians(means, quats, scales, opacities, colors)


def orbit_cameras(
    num: int, width: int, height: int, distance: float = 2.0, fov_y: float = 40.0, dtype=torch.float32
) -> Cameras:
    """num cameras on a horizontal arc (+-30 deg) around the origin, looking at it."""
    angles = torch.linspace(-0.5, 0.5, num, dtype=dtype) if num > 1 else torch.zeros(1, dtype=dtype)
    eyes = torch.stack((distance * torch.sin(angles), 0.1 * distance * torch.ones_like(angles),
                        distance * torch.cos(angles)), -1)
    viewmats = look_at(eyes, torch.zeros_like(eyes)).to(dtype)
    Ks = intrinsics_from_fov(fov_y, width, height).to(dtype).expand(num, 3, 3).clone()
    return Cameras(viewmats, Ks, width, height)


def edge_case_gaussians(channels: int = 3, dtype: torch.dtype = torch.float64, seed: int = 0) -> Gaussians:
    """Random Gaussians plus: behind the camera, straddling the near plane, huge, tiny, a dense
    overlapping cluster and needle-thin ones."""
    base = random_gaussians(120, seed=seed, radius=0.35, median_scale=0.03, channels=channels, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    extra_means = torch.cat((
        torch.tensor([[0.0, 0.0, 2.5], [0.1, 0.0, 2.2], [0.0, 0.05, 1.995]], dtype=dtype),  # behind / near plane
        torch.tensor([[0.0, 0.0, 0.0], [0.05, -0.05, 0.1]], dtype=dtype),  # huge
        0.01 * torch.randn(30, 3, generator=g, dtype=dtype),  # overlapping cluster
        torch.tensor([[0.1, 0.1, 0.0], [-0.1, 0.05, 0.0]], dtype=dtype),  # needles
    ))
    n = extra_means.shape[0]
    extra_scales = torch.cat((
        torch.full((3, 3), 0.05, dtype=dtype),
        torch.tensor([[0.6, 0.5, 0.4], [0.3, 0.8, 0.2]], dtype=dtype),
        torch.full((30, 3), 0.02, dtype=dtype) * torch.rand(30, 1, generator=g, dtype=dtype).add(0.2),
        torch.tensor([[0.3, 0.001, 0.001], [0.001, 0.25, 0.001]], dtype=dtype),
    ))
    extra_scales[5] = 1e-4  # tiny
    return Gaussians(
        torch.cat((base.means, extra_means)),
        torch.cat((base.quats, torch.randn(n, 4, generator=g, dtype=dtype))),
        torch.cat((base.scales, extra_scales)),
        torch.cat((base.opacities, torch.rand(n, generator=g, dtype=dtype))),
        torch.cat((base.colors, torch.rand(n, channels, generator=g, dtype=dtype))),
    )

"""The parameter-free UV warp and the K-source mean-pool (METHOD §2 steps 2-3)."""

from __future__ import annotations

import torch

from sa0.gaussians.layout import UVLayout, texel_points


def project_points(points: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) world points, (B, 4, 4) OpenCV world-to-camera, (B, 3, 3) -> pixel coords (B, N, 2)."""
    cam = points @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]
    uvw = cam @ Ks.transpose(1, 2)
    return uvw[..., :2] / uvw[..., 2:3].clamp_min(1e-6)


def sample_at(maps: torch.Tensor, pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bilinear samples of maps (B, C, h, w) that cover a width x height image, at pixel positions
    (B, N, 2) with pixel centres at +0.5 -> (B, N, C); outside the image: border values."""
    grid = torch.stack((pixels[..., 0] / width * 2 - 1, pixels[..., 1] / height * 2 - 1), -1)[:, None]
    out = torch.nn.functional.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2)


def to_uv_map(values: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """Per-texel values (B, N, C) -> UV maps (B, C, R, R), zero at invalid texels."""
    b, _, c = values.shape
    r = layout.resolution
    out = values.new_zeros(b, c, r * r)
    out[:, :, layout.rows * r + layout.cols] = values.transpose(1, 2)
    return out.view(b, c, r, r)


def from_uv_map(maps: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """UV maps (B, C, R, R) -> per-texel values (B, N, C)."""
    return maps[:, :, layout.rows, layout.cols].transpose(1, 2)


def uv_warp(features: torch.Tensor, images: torch.Tensor, verts: torch.Tensor, faces: torch.Tensor,
            layout: UVLayout, viewmats: torch.Tensor, Ks: torch.Tensor) -> torch.Tensor:
    """For every valid texel: its 3D point on the source posed mesh, projected with the source
    camera, samples the feature map and the RGB image -> UV maps (B, C + 3, R, R). Occlusion is
    not modelled (the method's warp is parameter-free and visibility-agnostic)."""
    height, width = images.shape[-2:]
    pixels = project_points(texel_points(verts, faces, layout), viewmats, Ks)
    sampled = torch.cat((sample_at(features, pixels, width, height), sample_at(images, pixels, width, height)), -1)
    return to_uv_map(sampled, layout)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the K axis (dim 1) of values (B, K, ...) where mask (B, K) is True.
    Order-invariant; with one valid source it returns that source exactly."""
    weights = mask.to(values.dtype).view(mask.shape + (1,) * (values.dim() - 2))
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)

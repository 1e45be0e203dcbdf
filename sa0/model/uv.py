"""The parameter-free UV warp and the K-source mean-pool (METHOD §2 steps 2-3), and the optional
visibility-weighted pool (`model.pool=visible`, a documented deviation: still parameter-free)."""

from __future__ import annotations

import torch

from sa0.gaussians.layout import UVLayout, texel_points

VISIBILITY_GRID = 32  # cells per side of texel_visibility's depth buffer


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
            layout: UVLayout, viewmats: torch.Tensor, Ks: torch.Tensor, with_visibility: bool = False):
    """For every valid texel: its 3D point on the source posed mesh, projected with the source
    camera, samples the feature map and the RGB image -> UV maps (B, C + 3, R, R). Occlusion is
    not modelled (the method's warp is parameter-free and visibility-agnostic). with_visibility:
    also -> (B, 1, R, R) float, 1 where the source camera sees the texel (texel_visibility)."""
    height, width = images.shape[-2:]
    points = texel_points(verts, faces, layout)
    pixels = project_points(points, viewmats, Ks)
    sampled = torch.cat((sample_at(features, pixels, width, height), sample_at(images, pixels, width, height)), -1)
    if not with_visibility:
        return to_uv_map(sampled, layout)
    with torch.no_grad():
        seen = texel_visibility(points, texel_normals(verts, faces, layout), viewmats, Ks, width, height)
    return to_uv_map(sampled, layout), to_uv_map(seen[..., None].to(sampled.dtype), layout)


def texel_normals(verts: torch.Tensor, faces: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """Each texel's triangle normal (unit, outward for counter-clockwise faces): (B, V, 3) -> (B, N, 3)."""
    corners = verts[..., faces[layout.face_idx], :]
    normal = torch.linalg.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :], dim=-1)
    return torch.nn.functional.normalize(normal, dim=-1)


def texel_visibility(points: torch.Tensor, normals: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor,
                     width: int, height: int, grid: int = VISIBILITY_GRID) -> torch.Tensor:
    """(B, N) bool: the texel faces the camera, projects into the image and is no farther than the
    nearest facing texel in its cell of a grid x grid depth buffer by more than two cells' width at
    its depth (a point z-buffer; parameter-free)."""
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    centre = -(rot.transpose(1, 2) @ trans[..., None])[..., 0]
    facing = ((centre[:, None] - points) * normals).sum(-1) > 0
    depth = (points @ rot.transpose(1, 2) + trans[:, None])[..., 2]
    pixels = project_points(points, viewmats, Ks)
    cell = torch.stack((pixels[..., 0] * grid / width, pixels[..., 1] * grid / height), -1).floor().long()
    inside = (cell >= 0).all(-1) & (cell < grid).all(-1) & (depth > 0)
    index = (cell[..., 1].clamp(0, grid - 1) * grid + cell[..., 0].clamp(0, grid - 1))
    candidate = torch.where(facing & inside, depth, torch.full_like(depth, float("inf")))
    nearest = candidate.new_full((len(points), grid * grid), float("inf")).scatter_reduce(1, index, candidate, "amin")
    tolerance = 2 * (width / grid) * depth / Ks[:, None, 0, 0]
    return facing & inside & (depth <= nearest.gather(1, index) + tolerance)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the K axis (dim 1) of values (B, K, ...) where mask (B, K) is True.
    Order-invariant; with one valid source it returns that source exactly."""
    weights = mask.to(values.dtype).view(mask.shape + (1,) * (values.dim() - 2))
    return (values * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def visible_mean(values: torch.Tensor, mask: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Per texel, the mean over the valid sources that see it; where none sees it, the plain
    masked mean. values (B, K, C, R, R), mask (B, K), seen (B, K, 1, R, R) in {0, 1}. Equals
    masked_mean wherever every valid source sees the texel; order-invariant."""
    weights = mask.to(values.dtype).view(mask.shape + (1, 1, 1)) * seen
    count = weights.sum(1)
    pooled = (values * weights).sum(1) / count.clamp_min(1.0)
    return torch.where(count > 0, pooled, masked_mean(values, mask))

"""Binding local Gaussian attributes to a posed mesh (METHOD §1 "Binding").

world mean x = R_f x_local s_f + c_f;  rotation q = q_f (x) q_local;  scale s = exp(log_s) s_f;
opacity = sigmoid(logit); colours pass through. f is each texel's face in the UV layout.
"""

from __future__ import annotations

import torch

from sa0.gaussians.frames import face_frames
from sa0.gaussians.layout import UVLayout, texel_points
from sa0.geometry.quaternion import matrix_to_quat, quat_multiply, quat_normalize
from sa0.types import Gaussians, LocalGaussians


def bind(local: LocalGaussians, verts: torch.Tensor, faces: torch.Tensor, layout: UVLayout) -> Gaussians:
    """Local attributes (N or (B, N) leading dims) + posed vertices (V, 3) or (B, V, 3) -> world Gaussians."""
    if local.positions.shape[-2] != layout.num_gaussians:
        raise ValueError(
            f"local attributes hold {local.positions.shape[-2]} Gaussians but the layout has {layout.num_gaussians}"
        )
    rotations, centres, scales = face_frames(verts, faces)
    rot = rotations[..., layout.face_idx, :, :]  # (..., N, 3, 3)
    centre = centres[..., layout.face_idx, :]
    scale = scales[..., layout.face_idx]
    means = (rot @ local.positions[..., None])[..., 0] * scale[..., None] + centre
    face_quats = matrix_to_quat(rotations)[..., layout.face_idx, :]  # per face, then per texel: ~5x fewer
    quats = quat_normalize(quat_multiply(face_quats, quat_normalize(local.rotations)))
    world_scales = torch.exp(local.log_scales) * scale[..., None]
    batch = means.shape[:-1]
    return Gaussians(
        means=means,
        quats=quats.expand(batch + (4,)),
        scales=world_scales.expand(batch + (3,)),
        opacities=torch.sigmoid(local.opacity_logits).expand(batch),
        colors=local.colors.expand(batch + local.colors.shape[-1:]),
    )


def init_local_gaussians(
    verts: torch.Tensor,
    faces: torch.Tensor,
    layout: UVLayout,
    colors: torch.Tensor | None = None,
    opacity: float = 0.9,
    thickness: float = 0.3,
) -> LocalGaussians:
    """Local attributes that put each Gaussian on its texel's surface point, as a flat disc.

    verts (V, 3) is the mesh the layout is initialised on (e.g. the rest pose). In-plane standard
    deviation is 0.6 x the texel spacing on the surface (sqrt of the face's world area per texel,
    world area / (UV area x R^2)),
    `thickness` x that along the normal. colors (N, C) default to mid-grey RGB.
    """
    rotations, centres, scales = face_frames(verts, faces)
    f = layout.face_idx
    rot, centre, scale = rotations[f], centres[f], scales[f].clamp_min(1e-8)
    positions = (rot.transpose(-1, -2) @ (texel_points(verts, faces, layout) - centre)[..., None])[..., 0] / scale[:, None]
    v = verts[faces]
    world_area = 0.5 * torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1).norm(dim=-1)
    uv_area = layout.face_uv_area.to(verts.dtype).clamp_min(1e-16) * layout.resolution**2
    spacing = (world_area / uv_area)[f].clamp_min(1e-16).sqrt()
    sigma = 0.6 * spacing / scale
    log_scales = torch.stack((sigma, thickness * sigma, sigma), -1).log()
    n = layout.num_gaussians
    identity = torch.zeros(n, 4, dtype=verts.dtype)
    identity[:, 0] = 1.0
    if colors is None:
        colors = torch.full((n, 3), 0.5, dtype=verts.dtype)
    logit = torch.logit(torch.tensor(opacity, dtype=verts.dtype))
    return LocalGaussians(positions, identity, log_scales, colors, logit.expand(n).clone())

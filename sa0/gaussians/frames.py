"""Per-face local frames of a triangle mesh (METHOD §1 "Per-face frame").

For face (v0, v1, v2): origin c = centroid; a0 = normalize(v1 - v0); a1 = unit normal;
a2 = a0 x a1; R = [a0, a1, a2] (columns); isotropic scale s = 0.5 (|v1 - v0| + |a2 . (v2 - v0)|).

The method text writes a2 = a1 x a0, which makes R a reflection (det -1) that no quaternion can
represent; sa0 uses the right-handed a2 = a0 x a1 (as GaussianAvatars does). Degenerate faces
(repeated or collinear vertices) get a valid orthonormal frame from fixed fallback axes and scale 0.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def _safe_normalize(v: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    sq = (v * v).sum(-1, keepdim=True)
    unit = v * torch.rsqrt(sq.clamp_min(_EPS))
    return torch.where(sq > _EPS, unit, fallback)


def _orthogonal_unit(a: torch.Tensor) -> torch.Tensor:
    """Some unit vector orthogonal to unit vectors a (..., 3)."""
    x_axis = torch.zeros_like(a)
    x_axis[..., 0] = 1.0
    y_axis = torch.zeros_like(a)
    y_axis[..., 1] = 1.0
    helper = torch.where(a[..., :1].abs() < 0.9, x_axis, y_axis)
    return torch.nn.functional.normalize(torch.linalg.cross(a, helper, dim=-1), dim=-1)


def face_frames(verts: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., V, 3) vertices, (F, 3) faces -> rotations (..., F, 3, 3), centres (..., F, 3), scales (..., F)."""
    v0, v1, v2 = verts[..., faces[:, 0], :], verts[..., faces[:, 1], :], verts[..., faces[:, 2], :]
    e1, e2 = v1 - v0, v2 - v0
    x_axis = torch.zeros_like(e1)
    x_axis[..., 0] = 1.0
    a0 = _safe_normalize(e1, x_axis)
    a1 = _safe_normalize(torch.linalg.cross(e1, e2, dim=-1), _orthogonal_unit(a0))
    a2 = torch.linalg.cross(a0, a1, dim=-1)
    rotations = torch.stack((a0, a1, a2), dim=-1)
    centres = (v0 + v1 + v2) / 3.0
    scales = 0.5 * (e1.norm(dim=-1) + (a2 * e2).sum(-1).abs())
    return rotations, centres, scales

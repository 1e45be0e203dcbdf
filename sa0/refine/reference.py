"""Reference frame and the generator-free initialisation of a refinement (METHOD §4 "Init")."""

from __future__ import annotations

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.gaussians import face_frames, init_local_gaussians, texel_points
from sa0.head import HeadModel
from sa0.model.uv import project_points, sample_at
from sa0.types import LocalGaussians


def choose_reference_frame(jaw: np.ndarray, rng: np.random.Generator, threshold: float = 1e-3) -> int:
    """r = argmin_t |jaw_t|_1, earliest on ties; if that minimum is below `threshold` (a tracker
    that pins the jaw shut), a random frame from the bottom 10% by jaw magnitude instead."""
    magnitude = np.abs(np.asarray(jaw)).sum(-1)
    best = int(np.argmin(magnitude))  # argmin returns the earliest minimum
    if magnitude[best] >= threshold:
        return best
    count = max(1, int(np.ceil(0.1 * len(magnitude))))
    bottom = np.argsort(magnitude, kind="stable")[:count]
    return int(rng.choice(bottom))


def neutral_init(head: HeadModel, verts: torch.Tensor, clip: Clip, t: int, camera: int = 0) -> LocalGaussians:
    """Flat discs on the reference-frame mesh (vertices (V, 3)), coloured by projecting each texel's
    surface point into the reference image (the UV warp); texels facing away from the camera get
    the mean colour of those facing it. Occlusion is ignored."""
    local = init_local_gaussians(verts, head.faces, head.layout)
    points = texel_points(verts, head.faces, head.layout)
    view = torch.as_tensor(clip.viewmats[t, camera], dtype=verts.dtype, device=verts.device)
    K = torch.as_tensor(clip.Ks[t, camera], dtype=verts.dtype, device=verts.device)
    image = torch.as_tensor(clip.images[t, camera], dtype=verts.dtype, device=verts.device) / 255.0
    h, w = image.shape[:2]
    pixels = project_points(points[None], view[None], K[None])
    colors = sample_at(image.permute(2, 0, 1)[None], pixels, w, h)[0]
    cam = points @ view[:3, :3].T + view[:3, 3]
    rotations, _, _ = face_frames(verts, head.faces)
    normals = rotations[head.layout.face_idx][..., 1] @ view[:3, :3].T
    facing = (normals * cam).sum(-1) < 0  # normal points back toward the camera
    if facing.any():
        colors[~facing] = colors[facing].mean(0)
    return LocalGaussians(local.positions, local.rotations, local.log_scales, colors.contiguous(), local.opacity_logits)

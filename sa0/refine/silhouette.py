"""The novel-view silhouette term: the mesh's outline from views the capture never had, as a matte.

A frontal camera constrains a Gaussian only along its own rays: one that looks right from the front
may stick out sideways, or leave gaps, and only a side view shows it. Each training camera is orbited
by +-25 and +-50 degrees about the posed head and the mesh rasterised there (supersampled, so the
outline is soft as a camera's); refinement renders one such view per step and penalises
weight x (alpha - coverage)^2.

A real person's hair (and clothes) lie outside a bald head model's outline, and a frontal video
paints them onto the Gaussians at the mesh's edge. So the matte is weighted: inside the mesh's outline
alpha must reach 1 everywhere, but outside it only pixels nearer the front of the face (eyes to chin,
cheek to cheek: the nose, lips, chin and brow a profile shows) than any other part of the mesh count;
outside the scalp, the back of the head and the neck the Gaussians may hold hair and collar
(`face_vertices`; `face_only=False` counts every pixel, the bald-head matte).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from sa0.data.schema import Clip
from sa0.flame.io import FlameFileError
from sa0.flame.landmarks import landmarks_from_vertices, load_mediapipe_embedding
from sa0.gaussians import bind
from sa0.geometry.camera import orbit
from sa0.head import HeadModel
from sa0.render.api import render
from sa0.render.mesh import rasterize
from sa0.types import Cameras, LocalGaussians

log = logging.getLogger(__name__)

# MediaPipe Face Mesh ids: outer eye corners (subject's right, left), mouth corners (right, left)
EYE_OUTER = (33, 263)
MOUTH_CORNERS = (61, 291)


def face_vertices(head: HeadModel, verts: torch.Tensor) -> np.ndarray | None:
    """(V,) bool on one posed mesh verts (V, 3): the front of the face, measured from the head's own
    landmarks so any head (FLAME, ICT, synthetic) and any pose gives the same region: facing forward
    (normal . forward > 0.2), from 0.6 eye-to-mouth distances below the mouth (the chin's tip: 0.57
    on the ICT head; the neck below holds a collar) to 0.7 above the eyes (the forehead to about
    MediaPipe's point 10 at 0.64: above it hair may begin), within 0.75 outer-eye-corner widths of
    the midline.
    None when the head has no MediaPipe embedding holding the four points."""
    try:
        emb = load_mediapipe_embedding(head.model_dir, num_faces=len(head.faces))
    except FlameFileError:
        return None
    ids = list(emb.ids)
    if any(i not in ids for i in EYE_OUTER + MOUTH_CORNERS):
        return None
    v = verts.detach().cpu().double()
    faces = head.faces.cpu()
    lm = landmarks_from_vertices(v[None], faces, emb)[0]
    point = {i: lm[ids.index(i)] for i in EYE_OUTER + MOUTH_CORNERS}
    eye = (point[EYE_OUTER[0]] + point[EYE_OUTER[1]]) / 2
    mouth = (point[MOUTH_CORNERS[0]] + point[MOUTH_CORNERS[1]]) / 2
    up = eye - mouth
    span = up.norm()
    up = up / span
    right = point[EYE_OUTER[1]] - point[EYE_OUTER[0]]
    width = right.norm()
    right = torch.nn.functional.normalize(right - (right @ up) * up, dim=0)
    forward = torch.linalg.cross(right, up)
    tri = v[faces]  # area-weighted vertex normals (a degenerate face adds nothing)
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = torch.zeros_like(v).index_add_(0, faces.reshape(-1), cross.repeat_interleave(3, 0))
    normals = torch.nn.functional.normalize(normals, dim=-1)
    zone = ((normals @ forward > 0.2) & ((v - mouth) @ up >= -0.6 * span) & ((v - eye) @ up <= 0.7 * span)
            & (((v - (eye + mouth) / 2) @ right).abs() <= 0.75 * width))
    return zone.numpy()


@dataclass(frozen=True)
class NovelMasks:
    """The mesh's silhouette seen from views the capture never had: for each of M (timestep, yaw)
    pairs, the training camera of that timestep orbited by the yaw about the posed head's centre.
    timesteps (M,); viewmats (M, 4, 4), Ks (M, 3, 3) float32 at the masks' size; coverage (M, H, W):
    the fraction of each pixel the mesh covers; weight (M, H, W): the fraction that counts (all of
    the mesh, and outside it what lies nearer the face than the rest of the head)."""

    timesteps: list[int]
    viewmats: torch.Tensor
    Ks: torch.Tensor
    coverage: torch.Tensor
    weight: torch.Tensor


def _view_matte(frag, zone_faces: np.ndarray | None, rh: int, rw: int, ss: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One supersampled rasterisation -> coverage and weight (rh, rw)."""
    mask = frag.mask
    care = np.ones_like(mask)
    if zone_faces is not None:
        face_px = mask & zone_faces[np.maximum(frag.face, 0)]
        other_px = mask & ~face_px
        if not face_px.any():
            care = np.zeros_like(mask)
        elif other_px.any():
            care = distance_transform_edt(~face_px) <= distance_transform_edt(~other_px)
    pool = lambda m: torch.as_tensor(m.reshape(rh, ss, rw, ss).mean((1, 3)), dtype=torch.float32)  # noqa: E731
    return pool(mask), pool(care)


def novel_masks(head: HeadModel, verts: torch.Tensor, clip: Clip, frames: list[tuple[int, int]],
                yaws=(-50.0, -25.0, 25.0, 50.0), max_frames: int = 12, size: int = 256,
                supersample: int = 3, face_only: bool = True) -> NovelMasks | None:
    """Silhouettes of the posed mesh (verts (T, V, 3)) from orbited training cameras (mesh rasteriser),
    at most `size` pixels on the longer side (the training frame's size if smaller). None (warned)
    when face_only and the head's embedding cannot place the face."""
    picks = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round()]
    h, w = clip.image_size
    scale = min(1.0, size / max(h, w))
    rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
    faces = head.faces.cpu().numpy()
    zone = face_vertices(head, verts[picks[0][0]]) if face_only else None
    if face_only and zone is None:
        log.warning("silhouette term off: %s's landmark embedding has no eye and mouth corners to find the face "
                    "by (set unseen_silhouette_face_only=false for the whole-head matte)", head.model_dir)
        return None
    zone_faces = zone[faces].mean(1) >= 0.5 if zone is not None else None
    steps, views, Ks, coverage, weight = [], [], [], [], []
    for t, c in picks:
        v = verts[t].detach().cpu().double().numpy()
        K = np.asarray(clip.Ks[t, c], np.float64).copy()
        K[:2] *= scale
        fine = K.copy()
        fine[:2] *= supersample
        for yaw in yaws:
            view = orbit(clip.viewmats[t, c], v.mean(0), yaw)
            cover, care = _view_matte(rasterize(v, faces, view, fine, rh * supersample, rw * supersample),
                                      zone_faces, rh, rw, supersample)
            coverage.append(cover)
            weight.append(care)
            steps.append(t)
            views.append(torch.as_tensor(view, dtype=torch.float32))
            Ks.append(torch.as_tensor(K, dtype=torch.float32))
    return NovelMasks(steps, torch.stack(views), torch.stack(Ks), torch.stack(coverage), torch.stack(weight))


def silhouette_loss(head: HeadModel, row: dict, verts: torch.Tensor, masks: NovelMasks, step: int,
                    render_cfg) -> torch.Tensor:
    """One subject's Gaussians (row: attribute -> (N, k)) rendered from one of the novel views (picked
    by the step number, so a resumed run sees the same ones): weight x (alpha - coverage)^2, the mean
    over the view."""
    m = (step * 7919) % len(masks.timesteps)
    device = verts.device
    h, w = masks.coverage.shape[1:]
    cams = Cameras(masks.viewmats[m:m + 1].to(device), masks.Ks[m:m + 1].to(device), w, h)
    out = render(bind(LocalGaussians(**row), verts[masks.timesteps[m]], head.faces, head.layout), cams,
                 torch.zeros(3, device=device), render_cfg)
    return (masks.weight[m].to(device) * (out.alpha[0, ..., 0] - masks.coverage[m].to(device)).pow(2)).mean()

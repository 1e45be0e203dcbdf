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

How far hair and clothes reach is measured, not assumed (`outline_bands`): in the training frames,
the person matte's pixels outside the mesh whose nearest mesh pixel is on the cranium are hair, and
those nearest the neck are collar and shoulders; their distance from the outline (98th percentile,
in metres at the head's depth) is that zone's band. In a novel view, outside the outline only the
band is free: beyond it alpha must be 0 (a bald head, or hair cut short, gets the bald-head matte
there; long hair and shoulders keep their reach), and inside the cranium's outline alpha must reach
1 (hair or scalp: both opaque). Inside the neck's outline nothing counts: the mesh's shoulders need
not be the person's.
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


FACE, CRANIUM, NECK = 0, 1, 2


@dataclass(frozen=True)
class FaceFrame:
    """The face's own axes on posed meshes (..., V, 3), from its eye and mouth corners: eye and mouth
    midpoints, up (mouth -> eyes), right (subject's right eye -> left eye, made orthogonal to up),
    forward (out of the face), all (..., 3); span (eye-to-mouth) and width (outer eye corners) (...)."""

    eye: torch.Tensor
    mouth: torch.Tensor
    up: torch.Tensor
    right: torch.Tensor
    forward: torch.Tensor
    span: torch.Tensor
    width: torch.Tensor


def face_frame(head: HeadModel, verts: torch.Tensor) -> FaceFrame | None:
    """The FaceFrame of posed meshes verts (..., V, 3) (float64); None when the head has no MediaPipe
    embedding holding the outer eye and mouth corners."""
    try:
        emb = load_mediapipe_embedding(head.model_dir, num_faces=len(head.faces))
    except FlameFileError:
        return None
    ids = list(emb.ids)
    if any(i not in ids for i in EYE_OUTER + MOUTH_CORNERS):
        return None
    v = verts.detach().cpu().double()
    lm = landmarks_from_vertices(v.reshape(-1, *v.shape[-2:]), head.faces.cpu(), emb)
    lm = lm.reshape(*v.shape[:-2], *lm.shape[-2:])
    point = {i: lm[..., ids.index(i), :] for i in EYE_OUTER + MOUTH_CORNERS}
    eye = (point[EYE_OUTER[0]] + point[EYE_OUTER[1]]) / 2
    mouth = (point[MOUTH_CORNERS[0]] + point[MOUTH_CORNERS[1]]) / 2
    span = (eye - mouth).norm(dim=-1)
    up = (eye - mouth) / span[..., None]
    right = point[EYE_OUTER[1]] - point[EYE_OUTER[0]]
    width = right.norm(dim=-1)
    right = torch.nn.functional.normalize(right - (right * up).sum(-1, keepdim=True) * up, dim=-1)
    return FaceFrame(eye, mouth, up, right, torch.linalg.cross(right, up), span, width)


def head_zones(head: HeadModel, verts: torch.Tensor) -> np.ndarray | None:
    """(V,) int8 on one posed mesh verts (V, 3): FACE, CRANIUM or NECK, measured from the head's own
    landmarks so any head (FLAME, ICT, synthetic) and any pose gives the same regions. The face:
    facing forward (normal . forward > 0.2), from 0.6 eye-to-mouth distances below the mouth (the
    chin's tip: 0.57 on the ICT head) to 0.7 above the eyes (the forehead to about MediaPipe's point
    10 at 0.64: above it hair may begin), within 0.75 outer-eye-corner widths of the midline. The
    neck: the rest below the chin's tip (a collar and shoulders lie around it). The cranium: the rest
    (scalp, ears, the back of the head). None when `face_frame` is."""
    fr = face_frame(head, verts)
    if fr is None:
        return None
    v = verts.detach().cpu().double()
    tri = v[head.faces.cpu()]  # area-weighted vertex normals (a degenerate face adds nothing)
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = torch.zeros_like(v).index_add_(0, head.faces.cpu().reshape(-1), cross.repeat_interleave(3, 0))
    normals = torch.nn.functional.normalize(normals, dim=-1)
    above_chin = (v - fr.mouth) @ fr.up >= -0.6 * fr.span
    face = ((normals @ fr.forward > 0.2) & above_chin & ((v - fr.eye) @ fr.up <= 0.7 * fr.span)
            & (((v - (fr.eye + fr.mouth) / 2) @ fr.right).abs() <= 0.75 * fr.width))
    zones = np.full(len(v), CRANIUM, np.int8)
    zones[~above_chin.numpy()] = NECK
    zones[face.numpy()] = FACE
    return zones


def face_vertices(head: HeadModel, verts: torch.Tensor) -> np.ndarray | None:
    """(V,) bool: the FACE zone of `head_zones` (None as there)."""
    zones = head_zones(head, verts)
    return None if zones is None else zones == FACE


def _face_zones(zones: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per-vertex zones -> per-face (F,) zones: FACE where at least two of its vertices are, else NECK
    where more of them are neck than cranium, else CRANIUM."""
    votes = np.stack([(zones[faces] == z).sum(1) for z in (FACE, CRANIUM, NECK)], 1)
    return np.where(votes[:, FACE] >= 2, FACE, np.where(votes[:, NECK] > votes[:, CRANIUM], NECK, CRANIUM)).astype(np.int8)


def _labels(frag, face_zones: np.ndarray) -> np.ndarray:
    """(H, W) zone of the mesh at each pixel, -1 off the mesh."""
    return np.where(frag.mask, face_zones[np.maximum(frag.face, 0)], -1)


def _nearest_outside(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel off the mesh: distance (pixels) to the nearest mesh pixel and that pixel's zone."""
    dist, (iy, ix) = distance_transform_edt(labels < 0, return_indices=True)
    return dist, labels[iy, ix]


def spread(frames: list[tuple[int, int]], count: int) -> list[tuple[int, int]]:
    """At most `count` of `frames`, spread evenly over them."""
    return [frames[int(i)] for i in np.linspace(0, len(frames) - 1, min(count, len(frames))).round()]


def frame_camera(clip: Clip, t: int, c: int, size: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(view (4, 4), K (3, 3) float64, height, width) of frame (t, c) at most `size` pixels on its longer
    side (its own size if smaller)."""
    h, w = clip.image_size
    scale = min(1.0, size / max(h, w))
    K = np.asarray(clip.Ks[t, c], np.float64).copy()
    K[:2] *= scale
    return np.asarray(clip.viewmats[t, c], np.float64), K, max(1, round(h * scale)), max(1, round(w * scale))


def outline_bands(head: HeadModel, verts: torch.Tensor, clip: Clip, picks: list[tuple[int, int]],
                  face_zones: np.ndarray, size: int = 256, percentile: float = 98.0) -> np.ndarray | None:
    """How far beyond the mesh's outline the person reaches in the training frames, per zone (3,)
    (FACE's entry 0), in metres at the head's depth: the `percentile` of the distances of matte pixels
    (>= half) off the mesh whose nearest mesh pixel is in that zone; 0 where there are none (a bald
    head: no hair), None without mattes."""
    if clip.mattes is None:
        return None
    faces = head.faces.cpu().numpy()
    metres: list[list[np.ndarray]] = []
    for t, c in picks:
        v = verts[t].detach().cpu().double().numpy()
        view, K, rh, rw = frame_camera(clip, t, c, size)
        matte = torch.nn.functional.interpolate(torch.as_tensor(clip.mattes[t, c], dtype=torch.float32)[None, None],
                                                size=(rh, rw), mode="area")[0, 0].numpy() >= 127.5
        labels = _labels(rasterize(v, faces, view, K, rh, rw), face_zones)
        dist, nearest = _nearest_outside(labels)
        depth = (view[:3, :3] @ v.mean(0) + view[:3, 3])[2]
        outside = matte & (labels < 0)
        metres.append([dist[outside & (nearest == z)] * depth / K[0, 0] for z in (CRANIUM, NECK)])
    bands = np.zeros(3)
    for z, found in zip((CRANIUM, NECK), map(np.concatenate, zip(*metres))):
        bands[z] = np.percentile(found, percentile) if len(found) else 0.0
    return bands


def _view_matte(frag, face_zones: np.ndarray | None, band_px: np.ndarray | None, rh: int, rw: int,
                ss: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One supersampled rasterisation -> coverage and weight (rh, rw). band_px (3,): each zone's band
    in supersampled pixels (None: the surroundings of cranium and neck are free and the cranium's
    inside does not count)."""
    mask = frag.mask
    care = np.ones_like(mask)
    if face_zones is not None:
        labels = _labels(frag, face_zones)
        face_px = labels == FACE
        other_px = mask & ~face_px
        if not face_px.any():
            care = np.zeros_like(mask)
        elif other_px.any():
            care = distance_transform_edt(~face_px) <= distance_transform_edt(~other_px)
        if band_px is not None:
            dist, nearest = _nearest_outside(labels)
            care = care | (labels == CRANIUM) | ((labels < 0) & (nearest > FACE) & (dist > band_px[nearest]))
    pool = lambda m: torch.as_tensor(m.reshape(rh, ss, rw, ss).mean((1, 3)), dtype=torch.float32)  # noqa: E731
    return pool(mask), pool(care)


@dataclass(frozen=True)
class NovelMasks:
    """The mesh's silhouette seen from views the capture never had: for each of M (timestep, yaw)
    pairs, the training camera of that timestep orbited by the yaw about the posed head's centre.
    timesteps (M,); viewmats (M, 4, 4), Ks (M, 3, 3) float32 at the masks' size; coverage (M, H, W):
    the fraction of each pixel the mesh covers; weight (M, H, W): the fraction that counts (all of
    the mesh, and outside it what lies nearer the face than the rest of the head); bands (3,): metres
    beyond the outline of the face, cranium and neck left free (None: all of it beside the cranium
    and neck)."""

    timesteps: list[int]
    viewmats: torch.Tensor
    Ks: torch.Tensor
    coverage: torch.Tensor
    weight: torch.Tensor
    bands: np.ndarray | None = None


def novel_masks(head: HeadModel, verts: torch.Tensor, clip: Clip, frames: list[tuple[int, int]],
                yaws=(-50.0, -25.0, 25.0, 50.0), max_frames: int = 12, size: int = 256,
                supersample: int = 3, face_only: bool = True, band: bool = True) -> NovelMasks | None:
    """Silhouettes of the posed mesh (verts (T, V, 3)) from orbited training cameras (mesh rasteriser),
    at most `size` pixels on the longer side (the training frame's size if smaller). face_only: outside
    the outline only the face's surroundings count, and with `band` the cranium's and the neck's beyond
    the bands measured from the training mattes (`outline_bands`). None (warned) when face_only and the head's
    embedding cannot place the face."""
    picks = spread(frames, max_frames)
    faces = head.faces.cpu().numpy()
    zones = head_zones(head, verts[picks[0][0]]) if face_only else None
    if face_only and zones is None:
        log.warning("silhouette term off: %s's landmark embedding has no eye and mouth corners to find the face "
                    "by (set unseen_silhouette_face_only=false for the whole-head matte)", head.model_dir)
        return None
    face_zones = _face_zones(zones, faces) if zones is not None else None
    reach = outline_bands(head, verts, clip, picks, face_zones, size) if face_zones is not None and band else None
    steps, views, Ks, coverage, weight = [], [], [], [], []
    for t, c in picks:
        v = verts[t].detach().cpu().double().numpy()
        _, K, rh, rw = frame_camera(clip, t, c, size)
        fine = K.copy()
        fine[:2] *= supersample
        for yaw in yaws:
            view = orbit(clip.viewmats[t, c], v.mean(0), yaw)
            depth = (view[:3, :3] @ v.mean(0) + view[:3, 3])[2]
            band_px = None if reach is None else reach * fine[0, 0] / depth
            cover, care = _view_matte(rasterize(v, faces, view, fine, rh * supersample, rw * supersample),
                                      face_zones, band_px, rh, rw, supersample)
            coverage.append(cover)
            weight.append(care)
            steps.append(t)
            views.append(torch.as_tensor(view, dtype=torch.float32))
            Ks.append(torch.as_tensor(K, dtype=torch.float32))
    return NovelMasks(steps, torch.stack(views), torch.stack(Ks), torch.stack(coverage), torch.stack(weight),
                      reach)


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

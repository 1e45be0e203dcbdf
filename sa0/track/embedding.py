"""Derive a head's MediaPipe landmark embedding from MediaPipe's own detections on renders of it.

For a head sa0 makes (ICT-FaceKit: sa0.heads), which landmark of MediaPipe's 478 sits where on the
mesh is not given; this finds it. The neutral head, coloured by a procedural texture
(sa0.heads.texture), is rendered by the mesh rasteriser (sa0.render.mesh) from several views around
the front; MediaPipe (sa0.track.mp_detector) finds the landmarks in each; each landmark's pixel is
traced back to the surface point that pixel shows (bilinear in the per-pixel surface positions,
then the nearest point on the faces seen there). A landmark is kept when it was found in most
views and its surface points agree across them (spread, the 75th percentile of their distances from
their median, below `max_spread` metres): points MediaPipe
places on the silhouette (the face oval seen from the side) slide over the surface as the head
turns and are dropped, as FLAME's own embedding leaves them out. The kept point is the per-view
point nearest the median of all views.

    python -m sa0.track.embedding [--head DIR] [--out DIR/mediapipe_landmark_embedding.npz]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sa0.flame.io import MEDIAPIPE_EMBEDDING_FILE, find_uv_file, load_uv
from sa0.flame.landmarks import LandmarkEmbedding
from sa0.geometry.camera import intrinsics_from_fov, look_at
from sa0.render.mesh import Fragments, interpolate, rasterize, textured

VIEWS = ((-20, 0), (-10, 5), (0, 0), (10, 5), (20, 0), (0, -10), (0, 10))  # (yaw, pitch) degrees


@dataclass(frozen=True)
class TexturedHead:
    """A neutral head to render: verts (V, 3) m, faces (F, 3), face_uv (F, 3, 2), texture (T, T, 3);
    centre: the point cameras look at."""

    verts: np.ndarray
    faces: np.ndarray
    face_uv: np.ndarray
    texture: np.ndarray
    centre: np.ndarray


def ict_textured_head(model_dir=None, seed: int = 0, size: int = 1024) -> TexturedHead:
    """The shipped ICT head at rest with its procedural texture."""
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.head import load_head_model
    from sa0.heads.ict import IctFacts, ict_dir
    from sa0.heads.texture import procedural_texture

    model_dir = Path(model_dir or ict_dir())
    head = load_head_model(FlameConfig(model_dir=str(model_dir)), LayoutConfig(uv_resolution=8))
    verts = head.flame.v_template.double().numpy()
    faces = head.faces.numpy()
    vt, ft = load_uv(find_uv_file(model_dir), len(faces))
    joints = (head.flame.J_regressor.double() @ head.flame.v_template.double()).numpy()
    facts = IctFacts.read(model_dir)
    texture = procedural_texture(verts, faces, vt[ft], facts, joints, seed=seed, size=size, detail=False)
    centre = verts[facts.landmarks68].mean(0)
    return TexturedHead(verts, faces, vt[ft], texture, centre)


def view_camera(centre: np.ndarray, yaw: float, pitch: float, size: int, distance: float = 0.55,
                fov: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(viewmat (4, 4), K (3, 3)) of a camera `distance` m from `centre` at yaw / pitch degrees."""
    a, b = np.radians(yaw), np.radians(pitch)
    eye = centre + distance * np.array([np.sin(a) * np.cos(b), np.sin(b), np.cos(a) * np.cos(b)])
    view = look_at(torch.tensor(eye, dtype=torch.float32)[None], torch.tensor(centre, dtype=torch.float32)[None])
    return view[0].double().numpy(), intrinsics_from_fov(fov, size, size).double().numpy()


def render_view(head: TexturedHead, yaw: float, pitch: float, size: int = 512):
    """-> (uint8 image (S, S, 3), fragments, viewmat, K)."""
    view, K = view_camera(head.centre, yaw, pitch, size)
    frags = rasterize(head.verts, head.faces, view, K, size, size)
    image = textured(frags, head.face_uv, head.texture)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), frags, view, K


def _nearest_on_faces(point: np.ndarray, candidates: np.ndarray, verts, faces) -> tuple[int, np.ndarray, float]:
    """The closest point to `point` on the plane of each candidate face, clamped into it -> (face,
    barycentrics, distance) of the best."""
    best = (-1, np.zeros(3), np.inf)
    for fi in np.unique(candidates[candidates >= 0]):
        a, b, c = verts[faces[fi]]
        m = np.stack((b - a, c - a), 1)
        uv = np.linalg.lstsq(m, point - a, rcond=None)[0]
        bary = np.clip(np.array([1 - uv.sum(), uv[0], uv[1]]), 0, None)
        bary /= bary.sum()
        dist = float(np.linalg.norm(bary @ np.stack((a, b, c)) - point))
        if dist < best[2]:
            best = (int(fi), bary, dist)
    return best


def trace_back(xy: np.ndarray, frags: Fragments, points: np.ndarray, verts, faces):
    """A landmark pixel (2,) -> (surface point (3,), face, bary), or None off the mesh."""
    x, y = xy[0] - 0.5, xy[1] - 0.5
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    h, w = frags.face.shape
    if not (0 <= x0 < w - 1 and 0 <= y0 < h - 1):
        return None
    block = frags.face[y0:y0 + 2, x0:x0 + 2]
    if (block < 0).any():
        return None
    fx, fy = x - x0, y - y0
    p = points[y0:y0 + 2, x0:x0 + 2]
    point = (p[0, 0] * (1 - fx) + p[0, 1] * fx) * (1 - fy) + (p[1, 0] * (1 - fx) + p[1, 1] * fx) * fy
    face, bary, _ = _nearest_on_faces(point, block.reshape(-1), verts, faces)
    return point, face, bary


def derive_embedding(head: TexturedHead, detector, views=VIEWS, size: int = 512, max_spread: float = 0.003,
                     min_views: int | None = None) -> tuple[LandmarkEmbedding, dict]:
    """MediaPipe ids -> (face, bary) on `head` (module docstring); -> the embedding and per-id facts
    (spread in metres, views found in) for every id seen at all."""
    min_views = min_views or (len(views) + 1) // 2 + 1
    found: dict[int, list] = {}
    for yaw, pitch in views:
        image, frags, _, _ = render_view(head, yaw, pitch, size)
        detection = detector.detect(image)
        if len(detection.faces) != 1:
            continue
        points = interpolate(frags, head.faces, head.verts)
        for lid, xy in enumerate(detection.faces[0]):
            hit = trace_back(xy, frags, points, head.verts, head.faces) if np.isfinite(xy).all() else None
            if hit is not None:
                found.setdefault(lid, []).append(hit)
    ids, face_idx, bary, facts = [], [], [], {}
    for lid, hits in sorted(found.items()):
        pts = np.stack([h[0] for h in hits])
        median = np.median(pts, 0)
        spread = float(np.percentile(np.linalg.norm(pts - median, axis=1), 75))
        facts[lid] = {"views": len(hits), "spread_m": spread}
        if len(hits) < min_views or spread > max_spread:
            continue
        best = hits[int(np.argmin(np.linalg.norm(pts - median, axis=1)))]
        ids.append(lid)
        face_idx.append(best[1])
        bary.append(best[2])
    embedding = LandmarkEmbedding(np.asarray(face_idx, np.int64), np.asarray(bary), np.asarray(ids, np.int64),
                                  "derived: MediaPipe on renders")
    return embedding, facts


def write_embedding(path, embedding: LandmarkEmbedding, facts: dict) -> Path:
    """FLAME's mediapipe_landmark_embedding.npz layout, plus each kept id's spread."""
    import io

    from sa0.fsutil import write_bytes_atomic

    spread = np.array([facts[int(i)]["spread_m"] for i in embedding.ids])
    buffer = io.BytesIO()
    np.savez(buffer, lmk_face_idx=embedding.face_idx, lmk_b_coords=embedding.bary,
             landmark_indices=embedding.ids, spread_m=spread)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def main(argv=None) -> None:
    from sa0.heads.ict import ict_dir
    from sa0.track.mp_detector import MediaPipeDetector

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head", default=None, help="ICT head directory (default: the one sa0 ships)")
    parser.add_argument("--out", default=None, help=f"output file (default HEAD/{MEDIAPIPE_EMBEDDING_FILE})")
    args = parser.parse_args(argv)
    model_dir = Path(args.head or ict_dir())
    head = ict_textured_head(model_dir)
    with MediaPipeDetector(static=True) as detector:
        embedding, facts = derive_embedding(head, detector)
    out = write_embedding(args.out or model_dir / MEDIAPIPE_EMBEDDING_FILE, embedding, facts)
    print(f"wrote {out}: {len(embedding)} of {len(facts)} landmarks seen kept (spread <= 3 mm)")


if __name__ == "__main__":
    main()

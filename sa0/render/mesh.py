"""A z-buffered triangle-mesh rasteriser in numpy: sa0's renderer that knows nothing of Gaussians.

It makes ground truth a Gaussian avatar never produced (the novel-view benchmark's textured heads)
and finds which surface point a pixel sees (landmark embeddings from detections on renders). Per
pixel it returns the nearest face (or -1) and perspective-correct barycentric weights; colours
come from `shade` (per-vertex or UV-texture colours, optional Lambert light). Conventions as
everywhere in sa0: OpenCV world-to-camera view matrix, pixel intrinsics, pixel centres at +0.5.
A pixel is covered when its centre is inside the projected triangle (edges included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEAR = 1e-3
MAX_CANDIDATES = 4_000_000  # pixel x triangle tests held at once


@dataclass(frozen=True)
class Fragments:
    """face (H, W) int64, -1 where empty; bary (H, W, 3) perspective-correct; depth (H, W) camera z
    (inf where empty)."""

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def _candidates(lo: np.ndarray, hi: np.ndarray):
    """Every (triangle, pixel x, pixel y) in each triangle's pixel box [lo, hi] (inclusive)."""
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    counts = nx * ny
    tri = np.repeat(np.arange(len(lo)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return tri, lo[tri, 0] + local % nx[tri], lo[tri, 1] + local // nx[tri]


def _chunks(counts: np.ndarray):
    start, total = 0, 0
    for i, c in enumerate(counts):
        if total and total + c > MAX_CANDIDATES:
            yield start, i
            start, total = i, 0
        total += c
    yield start, len(counts)


def rasterize(verts: np.ndarray, faces: np.ndarray, viewmat: np.ndarray, K: np.ndarray,
              height: int, width: int) -> Fragments:
    """Rasterise world-space verts (V, 3) / faces (F, 3) with one camera."""
    cam = np.asarray(verts, np.float64) @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[:, 2]
    pix = cam[:, :2] / np.maximum(z, NEAR)[:, None] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    tri_z = z[faces]
    keep = np.nonzero((tri_z > NEAR).all(1))[0]
    p = pix[faces[keep]]  # (F', 3, 2)
    area = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1])
    lo = np.floor(p.min(1) - 0.5).astype(np.int64) + 1
    hi = np.floor(p.max(1) - 0.5).astype(np.int64)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, [width - 1, height - 1])
    ok = (np.abs(area) > 1e-12) & (hi >= lo).all(1)
    keep, p, area, lo, hi = keep[ok], p[ok], area[ok], lo[ok], hi[ok]
    best = np.full(height * width, np.inf)
    face = np.full(height * width, -1, np.int64)
    bary = np.zeros((height * width, 3))
    counts = (hi[:, 0] - lo[:, 0] + 1) * (hi[:, 1] - lo[:, 1] + 1)
    for a, b in _chunks(counts):
        tri, px, py = _candidates(lo[a:b], hi[a:b])
        tri += a
        cx, cy = px + 0.5, py + 0.5
        q = p[tri]
        # screen-space barycentrics from the edge functions
        l0 = ((q[:, 1, 0] - cx) * (q[:, 2, 1] - cy) - (q[:, 2, 0] - cx) * (q[:, 1, 1] - cy)) / area[tri]
        l1 = ((q[:, 2, 0] - cx) * (q[:, 0, 1] - cy) - (q[:, 0, 0] - cx) * (q[:, 2, 1] - cy)) / area[tri]
        l2 = 1.0 - l0 - l1
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        tri, l = tri[inside], np.stack((l0, l1, l2), -1)[inside]
        pixel = (py * width + px)[inside]
        inv_z = l / tri_z[keep[tri]]
        depth = 1.0 / inv_z.sum(1)
        order = np.lexsort((depth, pixel))
        first = np.ones(len(order), bool)
        first[1:] = pixel[order][1:] != pixel[order][:-1]
        sel = order[first]
        closer = depth[sel] < best[pixel[sel]]
        sel = sel[closer]
        best[pixel[sel]] = depth[sel]
        face[pixel[sel]] = keep[tri[sel]]
        bary[pixel[sel]] = inv_z[sel] * depth[sel, None]
    return Fragments(face.reshape(height, width), bary.reshape(height, width, 3), best.reshape(height, width))


def interpolate(frags: Fragments, faces: np.ndarray, values: np.ndarray, background=0.0) -> np.ndarray:
    """Per-vertex values (V, C) at each pixel (H, W, C); `background` where empty."""
    out = np.empty((*frags.face.shape, values.shape[1]))
    out[:] = background
    m = frags.mask
    corners = values[faces[frags.face[m]]]  # (P, 3, C)
    out[m] = (frags.bary[m][..., None] * corners).sum(1)
    return out


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of texture (T, T, C) at uv (..., 2) in [0, 1] (v = 1 at the top row)."""
    size = texture.shape[0]
    x = np.clip(uv[..., 0] * size - 0.5, 0, size - 1)
    y = np.clip((1 - uv[..., 1]) * size - 0.5, 0, size - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, size - 1), np.minimum(y0 + 1, size - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def textured(frags: Fragments, face_uv: np.ndarray, texture: np.ndarray, background=0.0) -> np.ndarray:
    """Colours (H, W, C) from a UV texture; face_uv (F, 3, 2) per face corner."""
    out = np.empty((*frags.face.shape, texture.shape[2]))
    out[:] = background
    m = frags.mask
    uv = (frags.bary[m][..., None] * face_uv[frags.face[m]]).sum(1)
    out[m] = sample_texture(texture, uv)
    return out


def lambert(frags: Fragments, verts: np.ndarray, faces: np.ndarray, viewmat: np.ndarray,
            ambient: float = 0.35) -> np.ndarray:
    """Per-pixel diffuse factor (H, W) for a light at the camera: ambient + (1 - ambient) |n . view|."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    out = np.zeros(frags.face.shape)
    m = frags.mask
    centre = -viewmat[:3, :3].T @ viewmat[:3, 3]
    point = (frags.bary[m][..., None] * tri[frags.face[m]]).sum(1)
    view = centre - point
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    out[m] = ambient + (1 - ambient) * np.abs((normal[frags.face[m]] * view).sum(1))
    return out

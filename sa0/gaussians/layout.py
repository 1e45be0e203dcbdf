"""UV texel layout: one Gaussian per valid texel of an R x R UV grid (METHOD §1 "Layout").

A texel is valid when its centre falls inside some face's UV triangle; it is then bound to that
face with barycentric weights. The layout depends only on the UV asset and R, so every subject
and frame shares the same count N and binding. Texel (row i, col j) has its centre at
u = (j + 0.5) / R, v = 1 - (i + 0.5) / R (row 0 is the top of the UV image, v = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class UVLayout:
    """N valid texels: rows/cols (N,) int64, face index (N,) int64, barycentrics (N, 3) float64.

    index_map (R, R) int64 gives each texel's Gaussian index, -1 where invalid.
    face_uv_area (F,) float64: each face's area in UV units (the unit square has area 1).
    """

    resolution: int
    rows: torch.Tensor
    cols: torch.Tensor
    face_idx: torch.Tensor
    bary: torch.Tensor
    index_map: torch.Tensor
    face_uv_area: torch.Tensor

    @property
    def num_gaussians(self) -> int:
        return self.face_idx.shape[0]

    @property
    def mask(self) -> torch.Tensor:
        """(R, R) bool, True at valid texels."""
        return self.index_map >= 0


def _barycentric_2d(p, a, b, c):
    """Barycentric weights (..., 3) of 2D points p in triangles (a, b, c); NaN for degenerate ones."""
    det = (b[..., 1] - c[..., 1]) * (a[..., 0] - c[..., 0]) + (c[..., 0] - b[..., 0]) * (a[..., 1] - c[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        l0 = ((b[..., 1] - c[..., 1]) * (p[..., 0] - c[..., 0]) + (c[..., 0] - b[..., 0]) * (p[..., 1] - c[..., 1])) / det
        l1 = ((c[..., 1] - a[..., 1]) * (p[..., 0] - c[..., 0]) + (a[..., 0] - c[..., 0]) * (p[..., 1] - c[..., 1])) / det
    l0 = np.where(np.abs(det) > 1e-14, l0, np.nan)
    return np.stack((l0, l1, 1.0 - l0 - l1), axis=-1)


def build_uv_layout(vt: np.ndarray, ft: np.ndarray, resolution: int) -> UVLayout:
    """Rasterise the UV triangles (vt (T, 2), ft (F, 3)) into an R x R texel grid.

    Texels covered by several triangles (overlapping UV islands, shared edges) go to the lowest
    face index, so the result is deterministic.
    """
    if resolution < 2:
        raise ValueError(f"UV resolution must be >= 2, got {resolution}")
    vt = np.asarray(vt, dtype=np.float64)
    ft = np.asarray(ft, dtype=np.int64)
    r = resolution
    tri = vt[ft] * [r, r]  # UV in texel units, x = u * R
    tri[..., 1] = r - tri[..., 1]  # y grows downward with rows
    lo = np.clip(np.floor(tri.min(1) - 0.5).astype(np.int64), 0, r - 1)
    hi = np.clip(np.ceil(tri.max(1) - 0.5).astype(np.int64), 0, r - 1)
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    counts = nx * ny
    face = np.repeat(np.arange(len(ft)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    col = lo[face, 0] + local % nx[face]
    row = lo[face, 1] + local // nx[face]
    centre = np.stack((col + 0.5, row + 0.5), -1)
    bary = _barycentric_2d(centre, tri[face, 0], tri[face, 1], tri[face, 2])
    inside = np.all(bary >= -1e-9, axis=-1)
    face, row, col, bary = face[inside], row[inside], col[inside], bary[inside]
    texel = row * r + col
    order = np.lexsort((face, texel))  # by texel, then lowest face first
    texel, face, bary = texel[order], face[order], bary[order]
    first = np.ones(len(texel), dtype=bool)
    first[1:] = texel[1:] != texel[:-1]
    texel, face, bary = texel[first], face[first], np.clip(bary[first], 0.0, 1.0)
    bary = bary / bary.sum(-1, keepdims=True)
    index_map = np.full(r * r, -1, dtype=np.int64)
    index_map[texel] = np.arange(len(texel))
    return UVLayout(
        resolution=r,
        rows=torch.from_numpy(texel // r),
        cols=torch.from_numpy(texel % r),
        face_idx=torch.from_numpy(face),
        bary=torch.from_numpy(bary),
        index_map=torch.from_numpy(index_map.reshape(r, r)),
        face_uv_area=torch.from_numpy(_uv_areas(vt[ft])),
    )


def _uv_areas(tri: np.ndarray) -> np.ndarray:
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    return 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def texel_points(verts: torch.Tensor, faces: torch.Tensor, layout: UVLayout) -> torch.Tensor:
    """Each texel's 3D point on the mesh: (..., V, 3) vertices -> (..., N, 3)."""
    corners = verts[..., faces[layout.face_idx], :]  # (..., N, 3 corners, 3)
    return (layout.bary.to(verts.dtype)[..., None] * corners).sum(-2)

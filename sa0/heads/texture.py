"""Procedural colour textures for the ICT head: plausible faces sa0 makes itself.

Used where sa0 needs a human-looking head with known ground truth: the renders its MediaPipe
embedding is derived from (sa0.track.embedding) and the subjects of the novel-view benchmark
(benchmarks/bm_novel_view.py). A texture lives in the head's UV atlas (sa0.heads.ict_rig); each texel
is coloured from its 3D point on the neutral mesh: skin (tone per seed, blotches, pores and
freckles at 2-4 mm), lips inside the outer-lip landmark polygon, brows along the brow landmarks,
hair above a hairline, irises and pupils on the eyeballs, mouth interior, with soft lighting from
above-front baked in (a light fixed to the head, so every view sees the same colours, as a
Gaussian avatar's view-independent colours can). Nothing here is measured from a person.
"""

from __future__ import annotations

import numpy as np

from sa0.gaussians.layout import build_uv_layout
from sa0.heads.ict import IctFacts
from sa0.heads.ict_rig import LEFT_EYE, RIGHT_EYE

SKIN = np.array([[0.93, 0.75, 0.63], [0.85, 0.64, 0.5], [0.72, 0.52, 0.38], [0.55, 0.38, 0.27], [0.38, 0.25, 0.18]])
HAIR = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.55, 0.4, 0.22], [0.6, 0.58, 0.55], [0.35, 0.12, 0.05]])
IRIS = np.array([[0.25, 0.15, 0.08], [0.2, 0.35, 0.55], [0.3, 0.4, 0.25], [0.12, 0.08, 0.05]])
INTERIOR = {"mouth_socket": (0.35, 0.1, 0.1), "gums_tongue": (0.72, 0.36, 0.38), "teeth": (0.9, 0.87, 0.78),
            "eye_socket_left": (0.55, 0.3, 0.3), "eye_socket_right": (0.55, 0.3, 0.3)}


def _noise(points: np.ndarray, rng: np.random.Generator, wavelength: float, count: int = 12) -> np.ndarray:
    """A smooth random field in [-1, 1] at about `wavelength` metres: a sum of random plane waves."""
    dirs = rng.normal(size=(count, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    freq = 2 * np.pi / (wavelength * rng.uniform(0.7, 1.3, count))
    phase = rng.uniform(0, 2 * np.pi, count)
    return np.sin(points @ (dirs * freq[:, None]).T + phase).sum(1) / np.sqrt(count / 2)


def _inside_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule: points (P, 2) inside polygon (K, 2)."""
    inside = np.zeros(len(xy), bool)
    for a, b in zip(poly, np.roll(poly, -1, 0)):
        crosses = (a[1] > xy[:, 1]) != (b[1] > xy[:, 1])
        x_at = a[0] + (xy[:, 1] - a[1]) * (b[0] - a[0]) / np.where(b[1] != a[1], b[1] - a[1], 1e-12)
        inside ^= crosses & (xy[:, 0] < x_at)
    return inside


def _polyline_distance(xy: np.ndarray, line: np.ndarray) -> np.ndarray:
    best = np.full(len(xy), np.inf)
    for a, b in zip(line[:-1], line[1:]):
        t = np.clip(((xy - a) @ (b - a)) / max((b - a) @ (b - a), 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(xy - (a + t[:, None] * (b - a)), axis=1))
    return best


def _blend(base: np.ndarray, colour, weight: np.ndarray) -> np.ndarray:
    return base * (1 - weight[:, None]) + np.asarray(colour) * weight[:, None]


def texel_colours(points, normals, part_names, facts: IctFacts, neutral, eyes, seed: int, detail: bool):
    """Colour (P, 3) of surface points (P, 3) with normals and part names (P,), ICT neutral frame."""
    rng = np.random.default_rng(seed)
    skin = SKIN[seed % len(SKIN)] * rng.uniform(0.95, 1.05, 3)
    hair, iris = HAIR[(seed // 2) % len(HAIR)], IRIS[seed % len(IRIS)]
    col = np.tile(skin, (len(points), 1)) * (1 + 0.05 * _noise(points, rng, 0.05))[:, None]
    if detail:  # pores, freckles, fine blotches
        col *= (1 + 0.04 * _noise(points, rng, 0.004, 24) + 0.03 * _noise(points, rng, 0.012))[:, None]
    lm = neutral[facts.landmarks68]
    xy = points[:, :2]
    face_front = np.isin(part_names, ["face"]) & (points[:, 2] > lm[30, 2] - 0.06)
    lips = face_front & _inside_polygon(xy, lm[48:60, :2]) & (points[:, 2] > lm[51, 2] - 0.02)
    col = _blend(col, skin * [0.8, 0.45, 0.45], lips * 0.85)
    for brow in (lm[17:22, :2], lm[22:27, :2]):
        d = _polyline_distance(xy, brow + [0, 0.003])
        w = np.clip(1.3 - d / 0.005, 0, 1) * face_front
        if detail:
            w *= np.clip(0.85 + 0.3 * _noise(points, rng, 0.0025, 16), 0, 1)
        col = _blend(col, hair * 0.8, w)
    top = np.interp(points[:, 2], [-0.03, 0.07], [0.0, lm[19, 1] + 0.045])
    ears = (np.abs(points[:, 0]) > 0.062) & (points[:, 1] < lm[19, 1] + 0.005)
    hairy = np.isin(part_names, ["face", "head_neck"]) & (points[:, 1] > top) & ~ears
    strands = 1 + (0.2 * _noise(points * [1, 0.15, 1], rng, 0.003, 24) if detail else 0)
    col = _blend(col, np.clip(hair * strands[:, None], 0, 1) if detail else hair, hairy.astype(float))
    for name, colour in INTERIOR.items():
        col[part_names == name] = colour
    for name, joint in (("eyeball_left", LEFT_EYE), ("eyeball_right", RIGHT_EYE)):
        sel = part_names == name
        d = points[sel] - eyes[joint]
        theta = np.degrees(np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1), -1, 1)))
        c = np.tile([0.92, 0.9, 0.88], (sel.sum(), 1))
        c = _blend(c, iris * (0.8 + 0.4 * (theta / 32)[:, None]), (theta < 32).astype(float))
        c = _blend(c, [0.02, 0.02, 0.02], (theta < 13).astype(float))
        col[sel] = c
    light = np.array([0.0, 0.5, 1.0]) / np.sqrt(1.25)
    shade = 0.55 + 0.45 * np.clip(normals @ light, 0, 1)
    return np.clip(col * shade[:, None], 0, 1)


def procedural_texture(neutral: np.ndarray, faces: np.ndarray, face_uv: np.ndarray, facts: IctFacts,
                       eyes: np.ndarray, seed: int = 0, size: int = 1024, detail: bool = True) -> np.ndarray:
    """A (size, size, 3) float texture in the atlas; empty texels take their nearest chart's colour."""
    layout = build_uv_layout(face_uv.reshape(-1, 2), np.arange(3 * len(faces)).reshape(-1, 3), size)
    fi, bary = layout.face_idx.numpy(), layout.bary.numpy()
    tri = neutral[faces[fi]]
    points = (bary[..., None] * tri).sum(1)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    part_index = facts.part_of_vertex(len(neutral))[faces[fi, 0]]
    names = np.asarray(list(facts.parts))[part_index]
    colours = texel_colours(points, normals, names, facts, neutral, eyes, seed, detail)
    tex = np.zeros((size, size, 3))
    filled = np.zeros((size, size), bool)
    tex[layout.rows.numpy(), layout.cols.numpy()] = colours
    filled[layout.rows.numpy(), layout.cols.numpy()] = True
    return _dilate(tex, filled, 4)


def _dilate(tex: np.ndarray, filled: np.ndarray, steps: int) -> np.ndarray:
    """Grow charts by `steps` texels (mean of filled neighbours), so bilinear lookups at chart edges
    never mix in empty texels."""
    for _ in range(steps):
        acc, cnt = np.zeros_like(tex), np.zeros(filled.shape)
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            acc += np.roll(tex * filled[..., None], (dy, dx), (0, 1))
            cnt += np.roll(filled, (dy, dx), (0, 1))
        grow = ~filled & (cnt > 0)
        tex[grow] = acc[grow] / cnt[grow, None]
        filled = filled | grow
    return tex

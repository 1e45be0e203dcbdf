"""The synthetic head's deformations (sa0.flame.synthetic): smooth bumps on the sphere of directions,
the shape and expression blend shapes, and the pose correctives. Every random draw comes from the
caller's generator in a fixed order, so the head stays deterministic per seed."""

from __future__ import annotations

import numpy as np

from sa0.flame.synthetic_landmarks import CHIN_DIR, MOUTH_THETA, NOSE_DIR, _dir, _unit


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bump(dirs, center, width):
    """A smooth bump on the unit sphere of directions, 1 at `center`, falling off over `width`."""
    d2 = ((dirs - _unit(center)) ** 2).sum(-1)
    return np.exp(-d2 / (2 * width**2))


def _random_smooth_field(rng, dirs, normals, num_bumps, width_range, centers=None):
    """A smooth displacement field: a few random bumps, each along a random mix of normal/tangent."""
    field = np.zeros_like(dirs)
    for _ in range(num_bumps):
        center = _unit(rng.normal(size=3)) if centers is None else centers(rng)
        width = rng.uniform(*width_range)
        direction = rng.normal(size=3) * 0.5
        weight = _bump(dirs, center, width)[:, None]
        field += weight * (normals * rng.choice([-1.0, 1.0]) + direction)
    scale = np.abs(field).max()
    return field / max(scale, 1e-12)


def _face_center(rng) -> np.ndarray:
    return _dir(rng.uniform(70, 125), rng.uniform(-60, 60))


def _shape_fields(rng, head, head_pos: np.ndarray, hn: np.ndarray, count: int) -> list[np.ndarray]:
    """Proportions (width, height, depth), nose, jaw, chin, then random smooth fields, decaying."""
    centered = head_pos - head_pos.mean(0)
    lower = _smoothstep(100, 125, np.degrees(head.theta)) * (1 - _smoothstep(135, 150, np.degrees(head.theta)))
    out = [
        centered * [0.10, 0, 0],
        centered * [0, 0.07, 0],
        centered * [0, 0, 0.07],
        0.008 * _bump(head.dirs, _dir(*NOSE_DIR), 0.12)[:, None] * hn,
        centered * [0.12, 0, 0] * lower[:, None],
        0.008 * _bump(head.dirs, _dir(*CHIN_DIR), 0.15)[:, None] * np.array([0, -0.5, 1.0]),
    ]
    for k in range(len(out), count):
        amp = 0.005 / (1 + k / 8)
        out.append(amp * _random_smooth_field(rng, head.dirs, hn, 3, (0.3, 0.9)))
    return out


def _expression_fields(rng, head, hn: np.ndarray, count: int) -> list[np.ndarray]:
    """Smile, mouth stretch, brows, furrow, pucker, puff, lips, squint, then random localised fields."""
    pair = lambda t, ph, w: _bump(head.dirs, _dir(t, ph), w) + _bump(head.dirs, _dir(t, -ph), w)  # noqa: E731
    side = np.sign(head.dirs[:, 0])[:, None]
    mouth_corners, lips = pair(MOUTH_THETA, 25, 0.12), _bump(head.dirs, _dir(MOUTH_THETA, 0), 0.12)
    brows, inner_brows = pair(74, 22, 0.12), pair(76, 10, 0.08)
    cheeks, under_eyes = pair(100, 35, 0.15), pair(90, 21, 0.07)
    upper_lip = _bump(head.dirs, _dir(MOUTH_THETA - 3, 0), 0.07)
    lower_lip = _bump(head.dirs, _dir(MOUTH_THETA + 4, 0), 0.07)
    out = [
        mouth_corners[:, None] * [0, 0.006, -0.003],  # smile
        mouth_corners[:, None] * side * [0.005, 0, 0],  # mouth stretch
        brows[:, None] * [0, 0.005, 0],  # brow raise
        inner_brows[:, None] * (-side * [0.003, 0, 0] + [0, -0.002, 0]),  # furrow
        lips[:, None] * [0, 0, 0.006] - mouth_corners[:, None] * side * [0.003, 0, 0],  # pucker
        cheeks[:, None] * 0.006 * hn,  # puff
        upper_lip[:, None] * [0, 0.004, 0.001],
        lower_lip[:, None] * [0, -0.004, 0.001],
        under_eyes[:, None] * [0, 0.003, 0.001],  # squint
    ]
    face_region = np.clip(head.dirs[:, 2], 0, None) * (1 - _smoothstep(120, 140, np.degrees(head.theta)))
    for k in range(len(out), count):
        amp = 0.004 / (1 + k / 6)
        field = _random_smooth_field(rng, head.dirs, hn, 2, (0.08, 0.25), centers=_face_center)
        out.append(amp * field * face_region[:, None])
    return out


def blendshapes(rng, head, head_pos: np.ndarray, hn: np.ndarray, num_verts: int, num_shape: int,
                num_expression: int) -> np.ndarray:
    """(V, 3, S + E) shape then expression directions on the head surface (the first len(head_pos)
    vertices; the rest, the eyes, left at 0 for the caller). hn: the head's vertex normals."""
    shapedirs = np.zeros((num_verts, 3, num_shape + num_expression))
    fields = _shape_fields(rng, head, head_pos, hn, num_shape) + _expression_fields(rng, head, hn, num_expression)
    for k, field in enumerate(fields):
        shapedirs[:len(head_pos), :, k] = field
    return shapedirs


def pose_correctives(rng, head, hn: np.ndarray, num_verts: int) -> np.ndarray:
    """(V, 3, 36) pose correctives: small random neck and jaw terms on the head surface."""
    posedirs = np.zeros((num_verts, 3, 36))
    neck_region = _bump(head.dirs, _dir(130, 0), 0.5)[:, None]
    jaw_region = (_bump(head.dirs, _dir(110, 40), 0.2) + _bump(head.dirs, _dir(110, -40), 0.2))[:, None]
    for c in range(9):
        posedirs[:len(hn), :, c] = 0.004 * neck_region * _unit(rng.normal(size=3))
        posedirs[:len(hn), :, 9 + c] = 0.006 * jaw_region * hn * rng.uniform(-1, 1)
    return posedirs

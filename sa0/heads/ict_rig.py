"""Turning ICT-FaceKit Light into a head sa0 poses: parts kept, joints, skinning, jaw, UV atlas.

sa0 poses every head with FLAME's five-joint rig (root, neck, jaw, left eye, right eye; linear
blend skinning, shape and expression blend shapes added before skinning), so the tracker, the
reference-frame rule (smallest jaw rotation), the generator and the web viewer read an ICT head as
they read FLAME. What this module derives from ICT's meshes, and how:

* Parts. ICT's parts 0-8 (face, head and neck, mouth socket, eye sockets, gums and tongue, teeth,
  eyeballs) are kept; lacrimal fluid, eye blend, eye occlusion and eyelash strips (9-16: shader
  geometry for Unreal's eye materials) are dropped. Their vertices are the tail of ICT's order, so
  kept vertex ids are ICT's own.
* Eyes: a joint at each eyeball's centre (least-squares sphere through the sclera), eyeball
  vertices skinned to it alone. ICT's eyeLook* shapes move only the lids, so they stay expressions.
* Jaw: the lower teeth move rigidly in `jawOpen`; the rotation that carries them (Kabsch) gives the
  jaw joint (the point on its axis nearest the lower teeth) and the angle of a full `jawOpen`.
  Each vertex's jaw weight is the share of that rotation its `jawOpen` motion shows; the rest of
  `jawOpen` (sliding along the axis, soft tissue) stays an expression, computed so that jaw = that
  angle with the `jawOpen` expression at 1 reproduces ICT's mesh exactly.
* Neck and root: the root joint at the bottom of the neck, the neck joint in the neck at the height
  of the chin; weight moves from root to neck up the neck.
* Joint regressors are affine combinations of vertices (weights summing to 1) that hit the joint on
  the neutral, so identity modes move the joints with the shape.
* UV atlas (one square, as sa0's layout needs): ICT's face tile, its head-and-neck tile (with the
  mouth and eye sockets), the gums and the teeth tiles scaled into their own regions, and each
  eyeball's front cap (sclera within 80 degrees of its axis) as a disc; other faces (iris under the
  cornea, back of the eyeballs) get no texel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name: (first vertex, last vertex + 1, first polygon, last polygon + 1), ICT's README
PARTS = {
    "face": (0, 9409, 0, 9230),
    "head_neck": (9409, 11248, 9230, 11144),
    "mouth_socket": (11248, 13294, 11144, 13226),
    "eye_socket_left": (13294, 13678, 13226, 13630),
    "eye_socket_right": (13678, 14062, 13630, 14034),
    "gums_tongue": (14062, 17039, 14034, 17006),
    "teeth": (17039, 21451, 17006, 21496),
    "eyeball_left": (21451, 23021, 21496, 23094),
    "eyeball_right": (23021, 24591, 23094, 24692),
}
NUM_KEPT_VERTICES, NUM_KEPT_POLYGONS = 24591, 24692
SCLERA = {"eyeball_left": (21451, 22221), "eyeball_right": (23021, 23791)}
LOWER_TEETH = (19247, 21451)
ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)
# atlas: ICT UV tile -> (offset u, offset v, scale) in sa0's unit square; eyes: (centre u, centre v, radius)
TILE_PLACEMENT = {0: (0.0, 0.0, 0.6), 1: (0.6, 0.0, 0.4), 2: (0.6, 0.6, 0.2), 3: (0.8, 0.6, 0.2)}
EYE_DISCS = {"eyeball_left": (0.7, 0.5, 0.095), "eyeball_right": (0.9, 0.5, 0.095)}
EYE_CAP_DEGREES = 80.0
MIN_JAW_WEIGHT = 0.02  # smaller shares of the jaw's rotation go to the jawOpen expression instead


@dataclass(frozen=True)
class Rig:
    """joints (5, 3) at the neutral; J_regressor (5, V); weights (V, 5); parents (5,); jaw_axis (3,)
    unit; jaw_angle: radians of a full jawOpen; jaw_residual (V, 3): the jawOpen expression."""

    joints: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    jaw_axis: np.ndarray
    jaw_angle: float
    jaw_residual: np.ndarray


def triangulate(polygons: list[list[int]], polygon_uvs: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fan-split polygons -> faces (F, 3), face UV indices (F, 3), source polygon of each face (F,)."""
    faces, uvs, source = [], [], []
    for p, (poly, puv) in enumerate(zip(polygons, polygon_uvs)):
        for k in range(1, len(poly) - 1):
            faces.append((poly[0], poly[k], poly[k + 1]))
            uvs.append((puv[0], puv[k], puv[k + 1]))
            source.append(p)
    return np.asarray(faces, np.int64), np.asarray(uvs, np.int64), np.asarray(source, np.int64)


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """Least-squares sphere through points (P, 3): |p|^2 = 2 p.c + (r^2 - |c|^2), linear in c."""
    a = np.concatenate((2 * points, np.ones((len(points), 1))), 1)
    sol = np.linalg.lstsq(a, (points ** 2).sum(1), rcond=None)[0]
    return sol[:3]


def point_regressor(verts: np.ndarray, candidates: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Minimum-norm weights over `candidates` (summing to 1) whose combination of `verts` is `point`."""
    a = np.concatenate((verts[candidates].T, np.ones((1, len(candidates)))), 0)  # (4, n)
    b = np.concatenate((point, [1.0]))
    w = a.T @ np.linalg.solve(a @ a.T, b)
    row = np.zeros(len(verts))
    row[candidates] = w
    return row


def kabsch(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R and translation t with dst ~ src @ R.T + t (least squares)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((src - mu_s).T @ (dst - mu_d))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, mu_d - rot @ mu_s


def rotation_axis_angle(rot: np.ndarray) -> tuple[np.ndarray, float]:
    angle = float(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
    axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    return axis / np.linalg.norm(axis), angle


def jaw_pivot(neutral: np.ndarray, jaw_open: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The lower teeth's rigid motion in jawOpen -> (pivot on the rotation axis, rotation, angle)."""
    lo, hi = LOWER_TEETH
    rot, t = kabsch(neutral[lo:hi], jaw_open[lo:hi])
    p0 = neutral[lo:hi].mean(0)
    # rotation about c: x -> R (x - c) + c, i.e. t = (I - R) c; the nearest such c to p0 (the
    # component of t along the axis, a slide, cannot come from a rotation and is left out)
    delta = np.linalg.lstsq(np.eye(3) - rot, t - (np.eye(3) - rot) @ p0, rcond=1e-6)[0]
    _, angle = rotation_axis_angle(rot)
    return p0 + delta, rot, angle


def jaw_weights(neutral: np.ndarray, jaw_open: np.ndarray, pivot: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Per vertex, the share of the jaw's rotation its jawOpen displacement shows, in [0, 1]."""
    rigid = (neutral - pivot) @ rot.T + pivot - neutral
    moved = jaw_open - neutral
    norm2 = (rigid ** 2).sum(1)
    share = np.where(norm2 > 1e-12, (moved * rigid).sum(1) / np.maximum(norm2, 1e-12), 0.0)
    share[np.linalg.norm(moved, axis=1) < 1e-3] = 0.0  # untouched by jawOpen (cm)
    share[share < MIN_JAW_WEIGHT] = 0.0  # skin far from the jaw that jawOpen barely stretches
    return np.clip(share, 0.0, 1.0)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def neck_joints(neutral: np.ndarray, chin_vertex: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Root and neck regressor rows and the neck's blend band (y from, y to), from the head-and-neck
    part: root = centre of its bottom 1.5 cm, neck = centre of the ring at the chin's height."""
    lo, hi = PARTS["head_neck"][:2]
    ids = np.arange(lo, hi)
    y = neutral[ids, 1]
    bottom = ids[y < y.min() + 1.5]
    ring = ids[np.abs(y - neutral[chin_vertex, 1]) < 1.0]
    root = point_regressor(neutral, bottom, neutral[bottom].mean(0))
    neck = point_regressor(neutral, ring, neutral[ring].mean(0))
    return root, neck, float(y.min() + 2.0), float(neutral[chin_vertex, 1] - 1.0)


def build_rig(neutral: np.ndarray, jaw_open: np.ndarray, chin_vertex: int) -> Rig:
    """The five-joint rig of an ICT head (module docstring); neutral and jaw_open (V, 3) in cm."""
    num = len(neutral)
    regressor = np.zeros((5, num))
    regressor[ROOT], regressor[NECK], band_lo, band_hi = neck_joints(neutral, chin_vertex)
    pivot, rot, angle = jaw_pivot(neutral, jaw_open)
    # the jaw joint is regressed from vertices jawOpen leaves where they are, so the jawOpen expression
    # (added before the joints are regressed, as in FLAME) cannot move its own pivot
    still = np.nonzero(np.linalg.norm(jaw_open - neutral, axis=1)[:PARTS["head_neck"][1]] < 1e-6)[0]
    near = still[np.argsort(np.linalg.norm(neutral[still] - pivot, axis=1))[:64]]
    regressor[JAW] = point_regressor(neutral, near, pivot)
    weights = np.zeros((num, 5))
    jaw = jaw_weights(neutral, jaw_open, pivot, rot)
    up = smoothstep((neutral[:, 1] - band_lo) / max(band_hi - band_lo, 1e-6))
    weights[:, JAW] = jaw
    weights[:, NECK] = (1 - jaw) * up
    weights[:, ROOT] = (1 - jaw) * (1 - up)
    for joint, name in ((LEFT_EYE, "eyeball_left"), (RIGHT_EYE, "eyeball_right")):
        lo, hi = PARTS[name][:2]
        sclera = np.arange(*SCLERA[name])
        regressor[joint] = point_regressor(neutral, sclera, sphere_centre(neutral[sclera]))
        weights[lo:hi] = 0.0
        weights[lo:hi, joint] = 1.0
    joints = regressor @ neutral
    axis, _ = rotation_axis_angle(rot)
    residual = jaw_residual(neutral, jaw_open, weights, joints, axis * angle)
    return Rig(joints, regressor, weights, np.array([-1, 0, 1, 1, 1]), axis, angle, residual)


def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle)
    if angle < 1e-12:
        return np.eye(3)
    k = axis_angle / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def jaw_residual(neutral, jaw_open, weights, joints, jaw_pose) -> np.ndarray:
    """The expression d with LBS(neutral + d; jaw = jaw_pose) == jaw_open for every vertex: each
    vertex's blended transform A x + b is inverted (A = (1 - w) I + w R is invertible for w in [0, 1]
    and a rotation under 180 degrees)."""
    rot = rodrigues(jaw_pose)
    pivot = joints[JAW]
    w = weights[:, JAW][:, None, None]
    a = (1 - w) * np.eye(3) + w * rot  # (V, 3, 3); the other joints are at rest
    b = weights[:, JAW][:, None] * (pivot - rot @ pivot)
    rest = np.linalg.solve(a, (jaw_open - b)[..., None])[..., 0]
    return rest - neutral


def part_of_polygons(num_polygons: int) -> np.ndarray:
    """Part name index (into PARTS) of each kept polygon."""
    out = np.empty(num_polygons, np.int64)
    for k, (_, _, lo, hi) in enumerate(PARTS.values()):
        out[lo:hi] = k
    return out


def atlas_uvs(neutral: np.ndarray, faces: np.ndarray, face_uv: np.ndarray, source: np.ndarray,
              uvs: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Per face corner UVs (F, 3, 2) in sa0's unit square (module docstring); a face that carries no
    Gaussian gets three equal corners (zero area: no texel)."""
    out = np.zeros((len(faces), 3, 2))
    part = part_of_polygons(NUM_KEPT_POLYGONS)[source]
    names = list(PARTS)
    eye_parts = {names.index(n): n for n in EYE_DISCS}
    corner_uv = uvs[face_uv]  # (F, 3, 2) in ICT's stacked tiles
    tile = np.floor(corner_uv[..., 0].mean(1)).astype(np.int64)
    for k, (du, dv, scale) in TILE_PLACEMENT.items():
        sel = (tile == k) & ~np.isin(part, list(eye_parts))
        local = corner_uv[sel] - [k, 0]
        out[sel] = np.clip(local, 0.0, 1.0) * scale + [du, dv]
    for k, name in eye_parts.items():
        joint = LEFT_EYE if name == "eyeball_left" else RIGHT_EYE
        cu, cv, radius = EYE_DISCS[name]
        d = neutral[faces] - joints[joint]
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        theta = np.degrees(np.arccos(np.clip(d[..., 2], -1, 1)))  # from the eye's forward axis (+z)
        phi = np.arctan2(d[..., 1], d[..., 0])
        r = radius * theta / EYE_CAP_DEGREES
        disc = np.stack((cu + r * np.cos(phi), cv + r * np.sin(phi)), -1)
        sclera = (faces >= SCLERA[name][0]) & (faces < SCLERA[name][1])
        sel = (part == k) & sclera.all(1) & (theta <= EYE_CAP_DEGREES).all(1)
        out[part == k] = [cu, cv]
        out[sel] = disc[sel]
    return out

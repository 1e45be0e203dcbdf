"""A synthetic head in FLAME's file format, so sa0 runs end to end without licensed FLAME files.

`python -m sa0.flame.synthetic --out DIR --seed S` writes into DIR:
  FLAME_NEUTRAL.pkl          v_template, f, shapedirs (V, 3, 400: 300 shape + 100 expression),
                             posedirs (V, 3, 36), J_regressor (5, V), weights (V, 5), kintree_table
                             (2, 5) -- the keys and array conventions of FLAME (and what smplx reads)
  flame_static_embedding.pkl lmk_face_idx (51,), lmk_b_coords (51, 3) (smplx's landmark file)
  mediapipe_landmark_embedding.npz  lmk_face_idx (L,), lmk_b_coords (L, 3), landmark_indices (L,):
                             MediaPipe Face Mesh ids on the head, as FLAME's file of that name
  head_template_mesh.obj     the rest mesh with UV coordinates (vt, f v/vt), like FLAME's UV asset
  synthetic_albedo.npz       vertex_colors (V, 3) and mouth_faces (M,), for previews
  synthetic.json             seed and counts

The mesh: a closed, smooth head (y up, +z forward, metres) made of a latitude-longitude sphere
bent into a cranium, face and neck, plus two closed eyeballs. A jaw joint opens the mouth (the ring
of faces along the lip line stretches), two eye joints rotate the eyeballs, the neck joint turns the
head. Shape components change proportions (width, height, depth, nose, jaw, chin, then random smooth
fields with decaying amplitude); expression components move the face (smile, mouth stretch, brows,
pucker, cheeks, lips, squint, then random localised fields). Everything is deterministic per seed.
"""

from __future__ import annotations

import argparse
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sa0.flame.synthetic_fields import _bump, _smoothstep, blendshapes, pose_correctives
from sa0.flame.synthetic_landmarks import (
    CHIN_DIR,
    EYE_DIR,
    MOUTH_THETA,
    NOSE_DIR,
    _dir,
    _unit,
    mediapipe_embedding,
    static_embedding,
)

NUM_SHAPE, NUM_EXPRESSION = 300, 100
HEAD_RINGS, HEAD_COLUMNS = 40, 56
EYE_RINGS, EYE_COLUMNS = 12, 16
EYE_RADIUS = 0.0125
JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")


@dataclass
class _Sphere:
    dirs: np.ndarray  # (V, 3) unit directions, pole axis +y
    theta: np.ndarray  # (V,) polar angle from +y
    phi: np.ndarray  # (V,) longitude, 0 = +z, increasing toward +x
    ring: np.ndarray  # (V,) ring index, 0 = top pole
    faces: np.ndarray  # (F, 3) outward-facing (counter-clockwise seen from outside)
    vt: np.ndarray  # (T, 2) in [0, 1]^2 of the unit square
    ft: np.ndarray  # (F, 3)


def _lat_long_sphere(rings: int, columns: int) -> _Sphere:
    """A closed latitude-longitude sphere; UV seam at the back (phi = +-pi), fan-shaped poles."""
    theta = [0.0]
    phi = [0.0]
    ring = [0]
    for r in range(1, rings):
        for j in range(columns):
            theta.append(np.pi * r / rings)
            phi.append(-np.pi + 2 * np.pi * j / columns)
            ring.append(r)
    theta.append(np.pi)
    phi.append(0.0)
    ring.append(rings)
    theta, phi, ring = np.array(theta), np.array(phi), np.array(ring)
    dirs = np.stack((np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)), -1)
    bottom = len(theta) - 1

    def vid(r, j):
        return 1 + (r - 1) * columns + (j % columns)

    vt = [[j / columns, 1 - r / rings] for r in range(1, rings) for j in range(columns + 1)]

    def tid(r, j):
        return (r - 1) * (columns + 1) + j

    top_vt = len(vt)
    vt += [[(j + 0.5) / columns, 1.0] for j in range(columns)]
    bottom_vt = len(vt)
    vt += [[(j + 0.5) / columns, 0.0] for j in range(columns)]
    faces, ft = [], []
    for j in range(columns):
        faces.append([0, vid(1, j), vid(1, j + 1)])
        ft.append([top_vt + j, tid(1, j), tid(1, j + 1)])
    for r in range(1, rings - 1):
        for j in range(columns):
            a, b, c, d = vid(r, j), vid(r, j + 1), vid(r + 1, j), vid(r + 1, j + 1)
            ta, tb, tc, td = tid(r, j), tid(r, j + 1), tid(r + 1, j), tid(r + 1, j + 1)
            faces += [[a, c, d], [a, d, b]]
            ft += [[ta, tc, td], [ta, td, tb]]
    for j in range(columns):
        faces.append([vid(rings - 1, j), bottom, vid(rings - 1, j + 1)])
        ft.append([tid(rings - 1, j), bottom_vt + j, tid(rings - 1, j + 1)])
    return _Sphere(dirs, theta, phi, ring, np.array(faces), np.array(vt), np.array(ft))


def _head_positions(s: _Sphere, axes: np.ndarray) -> np.ndarray:
    """Cranium + face features + neck, from unit directions."""
    u = s.dirs
    th = np.degrees(s.theta)
    p = u * axes
    bumps = (
        (NOSE_DIR, 0.10, 0.020),
        ((86.0, 0.0), 0.07, 0.006),  # nose bridge
        ((EYE_DIR[0], EYE_DIR[1]), 0.11, -0.011),  # eye sockets
        ((EYE_DIR[0], -EYE_DIR[1]), 0.11, -0.011),
        ((74.0, 22.0), 0.10, 0.005),  # brows
        ((74.0, -22.0), 0.10, 0.005),
        ((100.0, 35.0), 0.16, 0.006),  # cheeks
        ((100.0, -35.0), 0.16, 0.006),
        ((MOUTH_THETA - 3, 0.0), 0.08, 0.006),  # upper lip
        ((MOUTH_THETA + 4, 0.0), 0.08, 0.005),  # lower lip
        (CHIN_DIR, 0.14, 0.016),
        ((92.0, 90.0), 0.10, 0.016),  # ears
        ((92.0, -90.0), 0.10, 0.016),
    )
    for (t, ph), width, amp in bumps:
        p = p + amp * _bump(u, _dir(t, ph), width)[:, None] * u
    # Lower face pushed forward so the chin sits in front of the neck.
    front = np.clip(u[:, 2], 0, None)
    p[:, 2] += 0.012 * front * _smoothstep(95, 120, th)
    # Neck: blend toward a column of radius 0.05 that ends in a cap at y = -0.2.
    s_neck = _smoothstep(118, 142, th)
    depth = np.clip((th - 118) / (180 - 118), 0, 1)
    radius = 0.05 * (1 - _smoothstep(168, 180, th))
    neck = np.stack(
        (radius * np.sin(s.phi), -0.06 - 0.14 * depth, radius * np.cos(s.phi) - 0.015), -1
    )
    return p * (1 - s_neck[:, None]) + neck * s_neck[:, None]


def _mouth_ring(s: _Sphere) -> int:
    rings = np.unique(s.ring)
    return int(rings[np.argmin(np.abs(np.pi * rings / HEAD_RINGS - np.radians(MOUTH_THETA)))])


def _head_weights(s: _Sphere) -> np.ndarray:
    """(V, 5) skinning weights for the head surface: root, neck, jaw (eyes get none)."""
    th = np.degrees(s.theta)
    lateral = 1 - _smoothstep(28, 55, np.degrees(np.abs(s.phi)))
    below_mouth = (s.ring > _mouth_ring(s)).astype(np.float64)
    jaw = below_mouth * lateral * (1 - _smoothstep(128, 145, th))
    root = _smoothstep(140, 170, th)
    jaw = jaw * (1 - root)
    w = np.zeros((len(th), 5))
    w[:, 0] = root
    w[:, 2] = jaw
    w[:, 1] = 1 - root - jaw
    return w


def _skinning(head: _Sphere, num_head: int, num_eye: int, num_verts: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, 5) skinning weights and (5, V) joint regressor: rows average the vertices that define each
    joint (the neck's bottom ring, a neck ring, the jaw hinges, each eyeball)."""
    weights = np.zeros((num_verts, 5))
    weights[:num_head] = _head_weights(head)
    weights[num_head : num_head + num_eye, 3] = 1.0
    weights[num_head + num_eye :, 4] = 1.0
    j_reg = np.zeros((5, num_verts))
    bottom_ring = np.where(head.ring == HEAD_RINGS - 1)[0]
    neck_ring = np.where(head.ring == int(round(HEAD_RINGS * 140 / 180)))[0]
    hinge = [int(np.argmin(((head.dirs - _dir(100, side * 90)) ** 2).sum(-1))) for side in (1, -1)]
    for row, idx in ((0, bottom_ring), (1, neck_ring), (2, np.array(hinge))):
        j_reg[row, idx] = 1.0 / len(idx)
    j_reg[3, num_head : num_head + num_eye] = 1.0 / num_eye
    j_reg[4, num_head + num_eye :] = 1.0 / num_eye
    return weights, j_reg


def _eyes(head: _Sphere, eye: _Sphere, axes: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Eyeballs: the unit sphere with its pole axis turned from +y to +z (looking forward), and the
    centres of the two sockets (left eye, +x, first, as FLAME's joint order)."""
    to_front = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # rotation about x by +90 deg
    centers = []
    for side in (1.0, -1.0):
        d = _dir(EYE_DIR[0], side * EYE_DIR[1])
        socket = _Sphere(d[None], np.radians([EYE_DIR[0]]), np.radians([side * EYE_DIR[1]]), np.array([0]),
                         head.faces, head.vt, head.ft)
        centers.append(_head_positions(socket, axes)[0] - 0.004 * d)
    return eye.dirs @ to_front.T, centers


def build_synthetic_head(seed: int = 0) -> dict:
    """Build every array of the synthetic head; returns a dict (see the module docstring)."""
    rng = np.random.default_rng(seed)
    head = _lat_long_sphere(HEAD_RINGS, HEAD_COLUMNS)
    eye = _lat_long_sphere(EYE_RINGS, EYE_COLUMNS)
    axes = np.array([0.078, 0.108, 0.096]) * (1 + 0.03 * rng.uniform(-1, 1, size=3))
    head_pos = _head_positions(head, axes)
    num_head = len(head_pos)

    eye_unit, eye_centers = _eyes(head, eye, axes)
    eye_pos = [c + EYE_RADIUS * eye_unit for c in eye_centers]
    verts = np.concatenate([head_pos] + eye_pos)
    num_eye = len(eye_unit)
    faces = np.concatenate([head.faces, eye.faces + num_head, eye.faces + num_head + num_eye])

    # UV atlas: head in v in [0.2, 1]; the eyes in two squares below it.
    vt_head = head.vt * [1.0, 0.79] + [0.0, 0.21]
    vt_eye_l = eye.vt * 0.18 + [0.02, 0.015]
    vt_eye_r = eye.vt * 0.18 + [0.24, 0.015]
    vt = np.concatenate([vt_head, vt_eye_l, vt_eye_r])
    n_vt_head, n_vt_eye = len(vt_head), len(eye.vt)
    ft = np.concatenate([head.ft, eye.ft + n_vt_head, eye.ft + n_vt_head + n_vt_eye])

    weights, j_reg = _skinning(head, num_head, num_eye, len(verts))

    normals = _vertex_normals(verts, faces)
    shapedirs = blendshapes(rng, head, head_pos, normals[:num_head], len(verts), NUM_SHAPE, NUM_EXPRESSION)
    # Eyeballs follow the displacement at their centre rigidly (shape), and ignore expressions.
    for e, center in enumerate(eye_centers):
        nearest = int(np.argmin(((head_pos - center) ** 2).sum(-1)))
        sl = slice(num_head + e * num_eye, num_head + (e + 1) * num_eye)
        shapedirs[sl, :, :NUM_SHAPE] = shapedirs[nearest, :, :NUM_SHAPE][None]
    posedirs = pose_correctives(rng, head, normals[:num_head], len(verts))

    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
    colors, mouth_faces = _albedo(head, eye, num_head, faces)
    return {
        "v_template": verts,
        "f": faces.astype(np.uint32),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": j_reg,
        "weights": weights,
        "kintree_table": kintree,
        "vt": vt,
        "ft": ft,
        "landmarks": static_embedding(head.dirs, faces[: len(head.faces)]),
        "mediapipe_landmarks": mediapipe_embedding(head.dirs, faces[: len(head.faces)]),
        "vertex_colors": colors,
        "mouth_faces": mouth_faces,
        "seed": seed,
    }


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v0, v1, v2 = (verts[faces[:, i]] for i in range(3))
    face_n = np.cross(v1 - v0, v2 - v0)
    normals = np.zeros_like(verts)
    for i in range(3):
        np.add.at(normals, faces[:, i], face_n)
    return _unit(normals + 1e-20)


def _albedo(head: _Sphere, eye: _Sphere, num_head: int, faces: np.ndarray):
    """Vertex colours (skin, hair, lips, eye white, iris, pupil) and the faces of the lip line."""
    th, ph = np.degrees(head.theta), np.degrees(head.phi)
    skin = np.array([0.86, 0.66, 0.54])
    hair = np.array([0.23, 0.15, 0.10])
    lip = np.array([0.70, 0.33, 0.33])
    colors = np.tile(skin, (num_head, 1))
    is_face = (np.abs(ph) < 62) & (th > 55)
    is_hair = ((th < 62) | (np.abs(ph) > 100) & (th < 118)) & ~is_face
    colors[is_hair] = hair
    lips = (np.abs(ph) < 28) & (np.abs(th - MOUTH_THETA) < 6)
    colors[lips] = lip
    eye_th = np.degrees(eye.theta)
    eye_colors = np.tile([0.95, 0.95, 0.93], (len(eye_th), 1))
    eye_colors[eye_th < 38] = [0.25, 0.42, 0.55]
    eye_colors[eye_th < 17] = [0.03, 0.03, 0.03]
    colors = np.concatenate([colors, eye_colors, eye_colors])
    mouth_ring = _mouth_ring(head)
    band = []
    for fi, face in enumerate(faces[: len(head.faces)]):
        rings = head.ring[face]
        if rings.min() == mouth_ring and rings.max() == mouth_ring + 1 and np.abs(ph[face]).max() < 30:
            band.append(fi)
    return colors, np.array(band, dtype=np.int64)


MODEL_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")


def write_synthetic_flame(out_dir, seed: int = 0) -> Path:
    """Write the synthetic head's files into `out_dir` (created); returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = build_synthetic_head(seed)
    with open(out / "FLAME_NEUTRAL.pkl", "wb") as fh:
        pickle.dump({k: head[k] for k in MODEL_KEYS}, fh, protocol=2)
    with open(out / "flame_static_embedding.pkl", "wb") as fh:
        pickle.dump(head["landmarks"], fh, protocol=2)
    from sa0.flame.io import MEDIAPIPE_EMBEDDING_FILE

    np.savez(out / MEDIAPIPE_EMBEDDING_FILE, **head["mediapipe_landmarks"])
    with open(out / "head_template_mesh.obj", "w") as fh:
        fh.write(f"# sa0 synthetic head, seed {seed}\n")
        fh.writelines(f"v {x:.8f} {y:.8f} {z:.8f}\n" for x, y, z in head["v_template"])
        fh.writelines(f"vt {u:.8f} {v:.8f}\n" for u, v in head["vt"])
        fh.writelines(
            f"f {a + 1}/{ta + 1} {b + 1}/{tb + 1} {c + 1}/{tc + 1}\n"
            for (a, b, c), (ta, tb, tc) in zip(head["f"], head["ft"])
        )
    np.savez(out / "synthetic_albedo.npz", vertex_colors=head["vertex_colors"], mouth_faces=head["mouth_faces"])
    meta = {
        "generator": "sa0.flame.synthetic",
        "seed": seed,
        "num_vertices": int(len(head["v_template"])),
        "num_faces": int(len(head["f"])),
        "num_shape": NUM_SHAPE,
        "num_expression": NUM_EXPRESSION,
        "joints": list(JOINT_NAMES),
    }
    (out / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write the model files into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    args = parser.parse_args(argv)
    out = write_synthetic_flame(args.out, args.seed)
    meta = json.loads((out / "synthetic.json").read_text())
    print(f"wrote synthetic FLAME-format head to {out}: {meta['num_vertices']} vertices, {meta['num_faces']} faces")


if __name__ == "__main__":
    main()

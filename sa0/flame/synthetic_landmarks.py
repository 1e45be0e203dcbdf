"""Landmark embeddings of the synthetic head, in the layouts FLAME ships beside its model.

- `static_embedding`: 51 points (brows, nose, eyes, mouth in the order of FLAME's
  `flame_static_embedding.pkl`: lmk_face_idx (51,), lmk_b_coords (51, 3)).
- `mediapipe_embedding`: MediaPipe Face Mesh landmark ids placed on the synthetic head, in the
  layout of FLAME's `mediapipe_landmark_embedding.npz`: lmk_face_idx (L,), lmk_b_coords (L, 3),
  landmark_indices (L,) = the MediaPipe ids. Each id's place (polar angle from the top, longitude
  from the front, degrees; negative longitude = the subject's right, as MediaPipe's "right" ids
  33 / 133 / 61 / 468 ...) follows what the id marks on a face (eye corners and lids, brows,
  nose, lips, the face oval), checked against MediaPipe's output on a frontal photo. The iris
  centres (468, 473) are not here: sa0.track adds them on each eyeball's front pole, for FLAME too.

Points are exact barycentric positions on the head surface, not face centroids, so the embedding
moves smoothly with the mesh.
"""

from __future__ import annotations

import numpy as np

# Facial feature directions on the head sphere (polar angle from the top, longitude from the front).
EYE_DIR = (84.0, 21.0)
NOSE_DIR = (97.0, 0.0)
MOUTH_THETA = 108.0
CHIN_DIR = (122.0, 0.0)


def _dir(theta_deg, phi_deg):
    t, p = np.radians(theta_deg), np.radians(phi_deg)
    return np.array([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)])


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _mirrored(pairs: list[tuple[int, int, float, float]]) -> dict[int, tuple[float, float]]:
    """(right id, left id, theta, |phi|) rows -> {id: (theta, phi)}, right at -phi, left at +phi."""
    out = {}
    for right, left, theta, phi in pairs:
        out[right] = (theta, -phi)
        out[left] = (theta, phi)
    return out


MEDIAPIPE_TARGETS: dict[int, tuple[float, float]] = {
    10: (62.0, 0.0), 152: (125.0, 0.0),  # forehead top, chin bottom
    168: (86.0, 0.0), 6: (88.0, 0.0), 197: (91.0, 0.0), 5: (95.0, 0.0), 4: (97.0, 0.0), 1: (98.0, 0.0),
    2: (101.0, 0.0),  # nose ridge, tip, below the tip
    0: (104.0, 0.0), 13: (106.5, 0.0), 14: (113.5, 0.0), 17: (116.0, 0.0),  # lips on the midline
    **_mirrored([
        (33, 263, 84.0, 29.0), (133, 362, 84.0, 13.0),  # eye corners: outer, inner
        (160, 387, 82.0, 25.0), (159, 386, 81.5, 21.0), (158, 385, 82.0, 17.0),  # upper lids
        (144, 373, 86.0, 25.0), (145, 374, 86.5, 21.0), (153, 380, 86.0, 17.0),  # lower lids
        (70, 300, 74.0, 36.0), (63, 293, 73.0, 30.0), (105, 334, 72.5, 23.0), (66, 296, 73.0, 16.0),
        (107, 336, 74.0, 9.0),  # brows, outer to inner
        (98, 327, 100.0, 9.0),  # nostril wings
        (61, 291, 108.0, 24.0), (40, 270, 105.0, 16.0), (37, 267, 104.3, 7.0),  # upper lip, outer
        (91, 321, 112.5, 16.0), (84, 314, 115.5, 7.0),  # lower lip, outer
        (78, 308, 108.0, 18.0), (82, 312, 106.7, 6.0), (87, 317, 113.3, 6.0),  # lips, inner
        (234, 454, 92.0, 60.0), (93, 323, 100.0, 58.0), (132, 361, 106.0, 55.0), (58, 288, 113.0, 50.0),
        (172, 397, 118.0, 42.0), (136, 365, 121.0, 32.0), (148, 377, 124.0, 12.0),  # face oval, cheek to chin
        (103, 332, 66.0, 30.0), (67, 297, 63.0, 15.0),  # face oval, forehead
    ]),
}


def _place(dirs: np.ndarray, faces: np.ndarray, targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each target direction -> the face of the unit-sphere mesh (`dirs`, `faces`) its ray from the
    origin crosses and barycentric coordinates of the crossing (the face whose centroid direction is
    nearest when no ray hits); the coordinates carry over to the head the sphere is bent into."""
    tri = dirs[faces]
    centroid_dirs = _unit(tri.mean(1))
    face_idx, bary = [], []
    for d in targets:
        d = _unit(d)
        order = np.argsort(((centroid_dirs - d) ** 2).sum(-1))[:12]
        for fi in order:  # Moller-Trumbore on the nearest few faces
            a, b, c = tri[fi]
            e1, e2 = b - a, c - a
            p = np.cross(d, e2)
            det = e1 @ p
            if abs(det) < 1e-14:
                continue
            s = -a
            u = (s @ p) / det
            q = np.cross(s, e1)
            v = (d @ q) / det
            if u >= -1e-9 and v >= -1e-9 and u + v <= 1 + 1e-9 and (e2 @ q) / det > 0:
                face_idx.append(int(fi))
                bary.append(np.clip([1 - u - v, u, v], 0, 1))
                break
        else:
            face_idx.append(int(order[0]))
            bary.append(np.full(3, 1.0 / 3))
    bary = np.asarray(bary)
    return np.asarray(face_idx, dtype=np.int64), bary / bary.sum(1, keepdims=True)


def static_embedding(head_dirs: np.ndarray, head_faces: np.ndarray) -> dict:
    """51 landmarks (brows, nose, eyes, mouth as in FLAME's static embedding) on face centroids."""
    targets = []
    targets += [(74, p) for p in (-38, -30, -22, -14, -6, 6, 14, 22, 30, 38)]  # brows
    targets += [(86, 0), (90, 0), (94, 0), (97, 0), (100, -9), (101, -4), (101, 0), (101, 4), (100, 9)]
    for c in (-EYE_DIR[1], EYE_DIR[1]):
        targets += [(84, c - 8), (82, c - 3), (82, c + 3), (84, c + 8), (86, c + 3), (86, c - 3)]
    targets += [(MOUTH_THETA + dt, p) for dt, p in
                ((0, -24), (-3, -16), (-4, -7), (-3.5, 0), (-4, 7), (-3, 16), (0, 24),
                 (4, 16), (5, 7), (5, 0), (5, -7), (4, -16))]
    targets += [(MOUTH_THETA + dt, p) for dt, p in
                ((0, -18), (-1, -6), (-1, 0), (-1, 6), (0, 18), (1, 6), (1, 0), (1, -6))]
    centroids = _unit(head_dirs[head_faces].mean(1))
    idx = [int(np.argmin(((centroids - _dir(t, p)) ** 2).sum(-1))) for t, p in targets]
    assert len(idx) == 51
    return {"lmk_face_idx": np.array(idx, dtype=np.int64), "lmk_b_coords": np.full((51, 3), 1.0 / 3)}


def mediapipe_embedding(head_dirs: np.ndarray, head_faces: np.ndarray) -> dict:
    """The MediaPipe ids of MEDIAPIPE_TARGETS on the head surface (FLAME's .npz layout)."""
    ids = np.array(sorted(MEDIAPIPE_TARGETS), dtype=np.int64)
    face_idx, bary = _place(head_dirs, head_faces, [_dir(*MEDIAPIPE_TARGETS[i]) for i in ids])
    return {"lmk_face_idx": face_idx, "lmk_b_coords": bary, "landmark_indices": ids}

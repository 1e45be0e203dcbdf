"""Landmarks on FLAME: the MediaPipe embedding FLAME ships, and a layer that poses only them.

FLAME's `mediapipe_landmark_embedding.npz` (beside its model files; the synthetic head writes one
of its own) holds lmk_face_idx (L,) mesh faces, lmk_b_coords (L, 3) barycentric coordinates in
them, and landmark_indices (L,) the MediaPipe Face Mesh ids they stand for. `with_irises` adds
the two iris centres (MediaPipe 468 = right, 473 = left) on each eyeball's front pole, found from
the skinning weights, so the eye joints can be fitted to the iris landmarks on any FLAME.

`LandmarkLayer` poses just the vertices the landmarks sit on (a few hundred of FLAME's 5,023):
the same blend shapes, pose correctives and skinning as `FlameLayer` (its slow twin; the tests
compare them), with the joints regressed from the full shaped mesh through precomputed products.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues

from sa0.flame.io import MEDIAPIPE_EMBEDDING_FILE, FlameFileError, resolve_flame_dir
from sa0.flame.layer import FlameLayer, bake_identity
from sa0.types import FlameParams

MEDIAPIPE_NUM_LANDMARKS = 478  # Face Mesh with refined irises
RIGHT_IRIS, LEFT_IRIS = 468, 473
LEFT_EYE_JOINT, RIGHT_EYE_JOINT = 3, 4


@dataclass(frozen=True)
class LandmarkEmbedding:
    """face_idx (L,) int64; bary (L, 3) float64 rows summing to 1; ids (L,) the detector's landmark
    ids (MediaPipe); source names the file."""

    face_idx: np.ndarray
    bary: np.ndarray
    ids: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.ids)


def load_mediapipe_embedding(model_dir=None, num_faces: int | None = None) -> LandmarkEmbedding:
    """Read and check `mediapipe_landmark_embedding.npz` in the FLAME directory (or ${SA0_FLAME_DIR})."""
    path = resolve_flame_dir(model_dir) / MEDIAPIPE_EMBEDDING_FILE
    if not path.is_file():
        raise FlameFileError(f"{path}: not found. FLAME ships mediapipe_landmark_embedding.npz with its models "
                             "(download it from the FLAME site into this directory); sa0's synthetic head writes "
                             "its own (python -m sa0.flame.synthetic --out DIR)")
    try:
        with np.load(path) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except Exception as exc:
        raise FlameFileError(f"{path}: cannot be read as .npz ({exc})") from exc
    for key in ("lmk_face_idx", "lmk_b_coords", "landmark_indices"):
        if key not in arrays:
            raise FlameFileError(f"{path}: missing key '{key}'; has {sorted(arrays)}")
    face_idx = arrays["lmk_face_idx"].astype(np.int64).reshape(-1)
    bary = arrays["lmk_b_coords"].astype(np.float64)
    ids = arrays["landmark_indices"].astype(np.int64).reshape(-1)
    count = len(face_idx)
    if bary.shape != (count, 3) or ids.shape != (count,):
        raise FlameFileError(f"{path}: lmk_b_coords must be ({count}, 3) and landmark_indices ({count},) to match "
                             f"lmk_face_idx, got {bary.shape} and {ids.shape}")
    if num_faces is not None and (face_idx.min() < 0 or face_idx.max() >= num_faces):
        raise FlameFileError(f"{path}: key 'lmk_face_idx' must lie in [0, {num_faces}), got "
                             f"[{face_idx.min()}, {face_idx.max()}]")
    if ids.min() < 0 or ids.max() >= MEDIAPIPE_NUM_LANDMARKS or len(set(ids.tolist())) != count:
        raise FlameFileError(f"{path}: key 'landmark_indices' must be distinct MediaPipe ids in "
                             f"[0, {MEDIAPIPE_NUM_LANDMARKS}), got [{ids.min()}, {ids.max()}]")
    if not np.isfinite(bary).all() or (bary < -1e-6).any() or np.abs(bary.sum(1) - 1).max() > 1e-3:
        raise FlameFileError(f"{path}: key 'lmk_b_coords' rows must be barycentric (>= 0, summing to 1)")
    return LandmarkEmbedding(face_idx, bary / bary.sum(1, keepdims=True), ids, str(path))


def with_irises(embedding: LandmarkEmbedding, flame: FlameLayer) -> LandmarkEmbedding:
    """The embedding plus the iris centres on the eyeballs' front poles (unless it has them)."""
    faces = flame.faces.cpu().numpy()
    weights = flame.lbs_weights.cpu().numpy()
    rest = flame.v_template.cpu().numpy()
    face_idx, bary, ids = list(embedding.face_idx), list(embedding.bary), list(embedding.ids)
    for joint, iris in ((LEFT_EYE_JOINT, LEFT_IRIS), (RIGHT_EYE_JOINT, RIGHT_IRIS)):
        if iris in ids:
            continue
        eyeball = np.nonzero(weights[:, joint] > 0.5)[0]
        if len(eyeball) == 0:
            raise FlameFileError(f"{flame.__class__.__name__}: no vertices skinned to eye joint {joint}; cannot "
                                 "place the iris landmarks")
        pole = int(eyeball[np.argmax(rest[eyeball, 2])])
        fi = int(np.nonzero((faces == pole).any(1))[0][0])
        corner = np.zeros(3)
        corner[list(faces[fi]).index(pole)] = 1.0
        face_idx.append(fi)
        bary.append(corner)
        ids.append(iris)
    return LandmarkEmbedding(np.asarray(face_idx, np.int64), np.asarray(bary), np.asarray(ids, np.int64),
                             embedding.source)


class LandmarkLayer(torch.nn.Module):
    """FLAME coefficients -> posed landmark positions (B, L, 3), posing only the vertices they use."""

    def __init__(self, flame: FlameLayer, embedding: LandmarkEmbedding):
        super().__init__()
        corners = flame.faces[torch.as_tensor(embedding.face_idx)]  # (L, 3) vertex ids
        used, local = torch.unique(corners, return_inverse=True)
        dtype = flame.v_template.dtype
        num_pose = flame.posedirs.shape[0]
        self.register_buffer("corners", local.reshape(corners.shape))
        self.register_buffer("bary", torch.as_tensor(embedding.bary, dtype=dtype))
        self.register_buffer("v_template", flame.v_template[used])
        self.register_buffer("shapedirs", flame.shapedirs[used])
        self.register_buffer("posedirs", flame.posedirs.reshape(num_pose, -1, 3)[:, used].reshape(num_pose, -1))
        self.register_buffer("lbs_weights", flame.lbs_weights[used])
        self.register_buffer("parents", flame.parents)
        self.register_buffer("j_template", flame.J_regressor @ flame.v_template)  # (J, 3)
        self.register_buffer("j_dirs", torch.einsum("jv,vck->jck", flame.J_regressor, flame.shapedirs))
        self.num_shape, self.num_expression = flame.num_shape, flame.num_expression
        self.ids = embedding.ids.copy()

    def with_identity(self, shape: torch.Tensor) -> "LandmarkLayer":
        """A copy with the identity `shape` (num_shape,) baked in (as FlameLayer.with_identity): it
        takes a (B, 0) shape, and each pass multiplies only the expression basis."""
        baked, s = copy.deepcopy(self), self.num_shape
        baked.v_template, baked.shapedirs = bake_identity(self.v_template, self.shapedirs, s, shape)
        baked.j_template, baked.j_dirs = bake_identity(self.j_template, self.j_dirs, s, shape)
        baked.num_shape = 0
        return baked

    def _skin(self, params: FlameParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> posed-before-skinning vertices (B, U, 3), per-vertex transforms (B, U, 4, 4), joints (B, 5, 3)."""
        dtype = self.v_template.dtype
        betas = torch.cat((params.shape, params.expression), dim=-1).to(dtype)
        pose = torch.cat((params.global_rot, params.neck, params.jaw, params.eyes), dim=-1).to(dtype)
        batch = betas.shape[0]
        v_shaped = self.v_template + torch.einsum("bk,vck->bvc", betas, self.shapedirs)
        joints = self.j_template + torch.einsum("bk,jck->bjc", betas, self.j_dirs)
        rot = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, -1, 3, 3)
        eye = torch.eye(3, dtype=dtype, device=rot.device)
        v_posed = v_shaped + ((rot[:, 1:] - eye).reshape(batch, -1) @ self.posedirs).reshape(batch, -1, 3)
        posed_joints, transforms = batch_rigid_transform(rot, joints, self.parents, dtype=dtype)
        per_vertex = torch.einsum("vj,bjmn->bvmn", self.lbs_weights, transforms)
        return v_posed, per_vertex, posed_joints

    def forward_with_joints(self, params: FlameParams) -> tuple[torch.Tensor, torch.Tensor]:
        """-> landmarks (B, L, 3) and joints (B, 5, 3), translated (as FlameLayer.forward_with_joints)."""
        return self._landmarks(self._skin(params), params.translation)

    def _landmarks(self, skin, translation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_posed, per_vertex, posed_joints = skin
        verts = (per_vertex[..., :3, :3] @ v_posed[..., None])[..., 0] + per_vertex[..., :3, 3]
        offset = translation.to(v_posed.dtype)[:, None, :]
        landmarks = (verts[:, self.corners] * self.bary[:, :, None]).sum(2)
        return landmarks + offset, posed_joints + offset

    def expression_jacobian(self, params: FlameParams) -> torch.Tensor:
        """d landmarks / d expression, (B, L, 3, E), with the joints held where `params` put them
        (expression moves FLAME's joints only through the joint regressor: a small term left out).
        Expression enters before skinning and linearly, so each column is the skinned expression
        direction: the live fit's Jacobian without a pass per coefficient (tested against finite
        differences of forward)."""
        return self._expression_jacobian(self._skin(params)[1])

    def _expression_jacobian(self, per_vertex: torch.Tensor) -> torch.Tensor:
        dirs = self.shapedirs[:, :, self.num_shape:]  # (U, 3, E)
        moved = per_vertex[..., :3, :3] @ dirs  # (B, U, 3, E)
        return (moved[:, self.corners] * self.bary[None, :, :, None, None]).sum(2)

    def forward_and_expression_jacobian(self, params: FlameParams, rows: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """-> landmarks (B, L, 3) (as forward) and the expression Jacobian of the first `rows` rows
        (rows, L, 3, E) (as expression_jacobian), from one skinning pass."""
        skin = self._skin(params)
        return self._landmarks(skin, params.translation)[0], self._expression_jacobian(skin[1][:rows])

    def forward(self, params: FlameParams) -> torch.Tensor:
        return self.forward_with_joints(params)[0]

    def moved(self, device: torch.device | str) -> "LandmarkLayer":
        """This layer on `device`: itself if it is there, else a copy (nn.Module.to would move this one
        in place, under every caller that holds it)."""
        device, here = torch.device(device), self.v_template.device
        if device.type == here.type and device.index in (None, here.index):
            return self
        return copy.deepcopy(self).to(device)


def landmarks_from_vertices(verts: torch.Tensor, faces: torch.Tensor, embedding: LandmarkEmbedding) -> torch.Tensor:
    """Landmarks of full posed meshes (B, V, 3) -> (B, L, 3): the slow, obvious twin of LandmarkLayer."""
    tri = verts[:, faces[torch.as_tensor(embedding.face_idx)]]  # (B, L, 3, 3)
    return (tri * torch.as_tensor(embedding.bary, dtype=verts.dtype)[None, :, :, None]).sum(2)


"""The animatable avatar package: everything needed to drive a refined avatar with new FLAME motion.

`avatar.npz` (numpy only, no pickles):
  positions (N, 3), rotations (N, 4), log_scales (N, 3), colors (N, 3), opacity_logits (N,)
      the local Gaussian attributes (sa0.types.LocalGaussians, METHOD §1);
  face_idx (N,), bary (N, 3), rows (N,), cols (N,), uv_resolution ()   the texel binding;
  shape (S,)      the subject's FLAME identity;
  meta_json ()    JSON: format version, FLAME model file, reference frame, subject.
Drive it: pose FLAME (with this shape) -> bind(local, vertices, faces, layout) -> render.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sa0.types import LocalGaussians

PACKAGE_VERSION = 1
LOCAL_FIELDS = ("positions", "rotations", "log_scales", "colors", "opacity_logits")


@dataclass(frozen=True)
class AvatarPackage:
    local: LocalGaussians
    face_idx: np.ndarray
    bary: np.ndarray
    uv_resolution: int
    shape: np.ndarray
    meta: dict


def save_package(path, local: LocalGaussians, layout, shape: np.ndarray, meta: dict) -> Path:
    """Write avatar.npz atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(local, name).detach().cpu().numpy().astype(np.float32) for name in LOCAL_FIELDS}
    arrays.update(face_idx=layout.face_idx.numpy(), bary=layout.bary.numpy(), rows=layout.rows.numpy(),
                  cols=layout.cols.numpy(), uv_resolution=np.array(layout.resolution),
                  shape=np.asarray(shape, np.float32),
                  meta_json=np.array(json.dumps({"version": PACKAGE_VERSION, **meta}, sort_keys=True)))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_package(path) -> AvatarPackage:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta_json"]))
        if meta.get("version") != PACKAGE_VERSION:
            raise ValueError(f"{path}: avatar package version {meta.get('version')}, this sa0 reads {PACKAGE_VERSION}")
        local = LocalGaussians(*(torch.from_numpy(data[name]) for name in LOCAL_FIELDS))
        return AvatarPackage(local, data["face_idx"], data["bary"], int(data["uv_resolution"]), data["shape"], meta)


@contextlib.contextmanager
def package_head(package: AvatarPackage, flame_dir: str | None = None):
    """The head `package` was bound to, at its UV resolution (a context: a synthetic head lives in a
    temporary directory): its recorded head, or `flame_dir` (refused if it contradicts the record;
    needed for FLAME, which is never shipped). Raises FlameFileError."""
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.head import load_head_model
    from sa0.heads import SYNTHETIC_NAME, chosen_head

    with chosen_head(flame_dir, package.meta.get("head"), SYNTHETIC_NAME) as (directory, _):
        yield load_head_model(FlameConfig(model_dir=directory), LayoutConfig(uv_resolution=package.uv_resolution))

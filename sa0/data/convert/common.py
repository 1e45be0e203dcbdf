"""Helpers shared by the converters: images, mattes, boxes, intrinsics, axis flips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from sa0.data.schema import ClipError, Skip

# OpenCV camera axes from other conventions: x_cv = FLIP @ x_other.
FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # OpenGL / Blender cameras (y up, z backward)
FLIP_XY = np.diag([-1.0, -1.0, 1.0])  # PyTorch3D cameras (x left, y up, z forward)


def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float32)


def view_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    view = np.eye(4, dtype=np.float32)
    view[:3, :3] = rotation
    view[:3, 3] = translation
    return view


def read_rgb(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """-> RGB (H, W, 3) uint8 and the alpha channel (H, W) if the file has one."""
    if not path.is_file():
        raise ClipError(f"{path}: image file not found")
    try:
        with Image.open(path) as img:
            alpha = np.asarray(img.getchannel("A")) if img.mode in ("RGBA", "LA") else None
            return np.asarray(img.convert("RGB")), alpha
    except Exception as exc:
        raise ClipError(f"{path}: cannot be decoded as an image ({exc})") from exc


def read_matte(path: Path, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise ClipError(f"{path}: matte file not found")
    try:
        with Image.open(path) as img:
            matte = np.asarray(img.convert("L"))
    except Exception as exc:
        raise ClipError(f"{path}: cannot be decoded as an image ({exc})") from exc
    if matte.shape != shape:
        raise ClipError(f"{path}: matte is {matte.shape[::-1]} pixels but its image is {shape[::-1]}")
    return matte


def box_from_matte(matte: np.ndarray) -> np.ndarray:
    """Tight (x0, y0, x1, y1) box of the foreground (matte > 127); the whole image if empty."""
    ys, xs = np.nonzero(matte > 127)
    if len(xs) == 0:
        return np.array([0, 0, matte.shape[1], matte.shape[0]], dtype=np.float32)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def as_width(values, width: int, source: str, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.size != width:
        raise ClipError(f"{source}: field '{name}' has {arr.size} values, expected {width}")
    return arr


def skip_from(exc: ClipError) -> Skip:
    """A timestep-level problem as a Skip: ClipError messages read 'file: what is wrong'."""
    where, _, reason = str(exc).partition(": ")
    return Skip(where, reason or where)

"""Geometry helpers: quaternions (wxyz, Hamilton), cameras (OpenCV world-to-camera)."""

from sa0.geometry.camera import intrinsics_from_fov, look_at
from sa0.geometry.quaternion import (
    matrix_to_quat,
    quat_multiply,
    quat_normalize,
    quat_to_matrix,
)

__all__ = [
    "intrinsics_from_fov",
    "look_at",
    "matrix_to_quat",
    "quat_multiply",
    "quat_normalize",
    "quat_to_matrix",
]

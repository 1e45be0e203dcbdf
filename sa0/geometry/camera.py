"""Camera helpers in sa0's one internal convention: OpenCV world-to-camera.

Camera axes: +x right, +y down, +z forward (into the scene). A view matrix maps world points to
camera points: x_cam = R @ x_world + t, stored as a (4, 4) matrix [[R, t], [0, 0, 0, 1]].
Intrinsics K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels, pixel centres at integer + 0.5.
"""

from __future__ import annotations

import math

import torch


def look_at(
    eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None
) -> torch.Tensor:
    """(..., 3) eye/target positions -> (..., 4, 4) OpenCV world-to-camera matrices.

    `up` is the world direction that should appear upward in the image (default +y).
    """
    eye = torch.as_tensor(eye, dtype=torch.float32)
    target = torch.as_tensor(target, dtype=eye.dtype)
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype)
    up = torch.as_tensor(up, dtype=eye.dtype).expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up, dim=-1), dim=-1)
    down = torch.linalg.cross(forward, right, dim=-1)
    rot = torch.stack((right, down, forward), dim=-2)  # rows: camera axes in world coordinates
    trans = -(rot @ eye[..., :, None])[..., 0]
    view = torch.zeros(eye.shape[:-1] + (4, 4), dtype=eye.dtype)
    view[..., :3, :3] = rot
    view[..., :3, 3] = trans
    view[..., 3, 3] = 1.0
    return view


def intrinsics_from_fov(fov_y_degrees: float, width: int, height: int) -> torch.Tensor:
    """Pinhole (3, 3) intrinsics with square pixels and the principal point at the image centre."""
    if not 0.0 < fov_y_degrees < 180.0:
        raise ValueError(f"fov_y_degrees must be in (0, 180), got {fov_y_degrees}")
    focal = 0.5 * height / math.tan(math.radians(fov_y_degrees) / 2.0)
    return torch.tensor(
        [[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]]
    )


def orbit(view, pivot, yaw_degrees: float):
    """The (4, 4) view matrix (numpy float64) of `view` after turning the world by -yaw about the
    vertical (+y) line through `pivot` (3,): the camera circles the subject by +yaw and the pivot keeps
    its pixel."""
    import numpy as np

    a = math.radians(-yaw_degrees)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    world = np.eye(4)
    pivot = np.asarray(pivot, np.float64)
    world[:3, :3], world[:3, 3] = rot, pivot - rot @ pivot
    return np.asarray(view, np.float64) @ world

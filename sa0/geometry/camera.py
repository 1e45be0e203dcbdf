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


def camera_up(view):
    """The world direction (3,) a (4, 4) OpenCV view matrix shows as up in its image (-y of the camera)."""
    import numpy as np

    return -np.asarray(view, np.float64)[1, :3]


def orbit(view, pivot, yaw_degrees: float, axis=None):
    """The (4, 4) view matrix (numpy float64) of `view` after turning the world by -yaw about the
    line through `pivot` (3,) along `axis` (3,; default the world's vertical, +y): the camera circles
    the subject by +yaw and the pivot keeps its pixel. With axis=camera_up(view) the camera circles
    about its own image's vertical, whatever the world's axes (a tracked clip's world is the head's)."""
    import numpy as np

    a = math.radians(-yaw_degrees)
    k = np.array([0.0, 1.0, 0.0]) if axis is None else np.asarray(axis, np.float64) / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + math.sin(a) * cross + (1 - math.cos(a)) * cross @ cross  # Rodrigues
    world = np.eye(4)
    pivot = np.asarray(pivot, np.float64)
    world[:3, :3], world[:3, 3] = rot, pivot - rot @ pivot
    return np.asarray(view, np.float64) @ world

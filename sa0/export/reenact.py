"""Drive an avatar package with another clip's motion (cross-reenactment) and write a video.

The avatar keeps its own identity (FLAME shape from the package); expression, jaw, eyes, neck,
global rotation, translation and the camera of every frame come from the driver clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.export.package import AvatarPackage
from sa0.gaussians import bind
from sa0.head import HeadModel
from sa0.render.api import render
from sa0.types import Cameras


def check_layout(package: AvatarPackage, head: HeadModel) -> None:
    if package.uv_resolution != head.layout.resolution or not np.array_equal(package.face_idx, head.layout.face_idx.numpy()):
        raise ValueError(f"the avatar was built on a different UV layout (R = {package.uv_resolution}, "
                         f"{len(package.face_idx)} Gaussians) than this head model (R = {head.layout.resolution}, "
                         f"{head.num_gaussians}); use the same FLAME files and --uv-resolution")


def reenact_frames(package: AvatarPackage, head: HeadModel, driver: Clip, camera: int = 0,
                   background: float = 1.0) -> np.ndarray:
    """-> uint8 frames (T, H, W, 3) of the avatar moving like the driver, seen by its camera `camera`."""
    check_layout(package, head)
    verts = head.pose_track(driver.flame.as_dict(), shape=package.shape)
    h, w = driver.image_size
    frames = []
    with torch.no_grad():
        for i in range(driver.num_timesteps):
            cams = Cameras(torch.as_tensor(driver.viewmats[i, camera])[None], torch.as_tensor(driver.Ks[i, camera])[None], w, h)
            out = render(bind(package.local, verts[i], head.faces, head.layout), cams, torch.full((3,), background))
            frames.append((out.image[0].clamp(0, 1) * 255).round().byte().numpy())
    return np.stack(frames)


def write_video(frames: np.ndarray, path, fps: int = 25) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frames, fps=fps, codec="libx264", macro_block_size=1)
    return path

"""IMavatar / INSTA data (the SplattingAvatar monocular benchmark).

Layout: flame_params.json with intrinsics [fx, fy, cx, cy] normalised by the image size,
shape_params (100,), and frames[] of file_path (an image path without extension, e.g.
"./image/1"), world_mat (3x4 world-to-camera), expression (50,), pose (15,) = global, neck, jaw,
eyes, optional bbox; mattes in the sibling `mask/` directory. The last `test_frames` (350)
frames are the test split, as in that benchmark.
IMavatar's FLAME scales vertices by 4; its camera has y and z flipped against OpenCV. So:
R_cv = diag(1, -1, -1) R, t_cv = diag(1, -1, -1) t / flame_scale, fx = |W fx_n|, cx = |W cx_n|.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sa0.data.convert.common import (
    FLIP_YZ,
    as_width,
    box_from_matte,
    pinhole,
    read_matte,
    read_rgb,
    skip_from,
    view_matrix,
)
from sa0.data.schema import ClipError, ClipMeta, ClipSource, Timestep, materialise


def _image_path(src: Path, file_path: str, ext: str) -> Path:
    path = src / file_path
    return path if path.suffix else path.with_suffix(ext)


def _mask_path(image: Path) -> Path:
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("image", "images"):
            parts[i] = "mask"
            return Path(*parts)
    raise ClipError(f"{image}: cannot locate its mask (expected a sibling 'mask/' of the 'image/' directory)")


def units(src) -> list[str]:
    """One unit per subject directory (its train and test clips are cut from one frame list)."""
    path = Path(src) / "flame_params.json"
    if not path.is_file():
        raise ClipError(f"{path}: not found (an IMavatar/INSTA subject directory has flame_params.json)")
    return ["subject"]


def convert_imavatar(src, dataset: str = "imavatar", subject: str | None = None, domain: str | None = None,
                     test_frames: int = 350, flame_scale: float = 4.0, image_ext: str = ".png"):
    """Yield the test clip then the train clip (last `test_frames` frames = test) of one subject."""
    for source in sources(src, units(src), dataset=dataset, subject=subject, domain=domain, test_frames=test_frames,
                          flame_scale=flame_scale, image_ext=image_ext):
        yield materialise(source)


def sources(src, units_=("subject",), dataset: str = "imavatar", subject: str | None = None, domain: str | None = None,
            test_frames: int = 350, flame_scale: float = 4.0, image_ext: str = ".png"):
    """ClipSources of the subject's test and train clips, in key order; a frame whose image, mask or
    parameters are unusable becomes a Skip naming the file and field."""
    src = Path(src)
    path = src / "flame_params.json"
    units(src)
    data = json.loads(path.read_text())
    frames = data.get("frames") or []
    if len(frames) < 2:
        raise ClipError(f"{path}: needs at least 2 frames, has {len(frames)}")
    intr = as_width(data["intrinsics"], 4, str(path), "intrinsics")
    shape = np.asarray(data["shape_params"], np.float32).reshape(-1)
    cut = max(1, len(frames) - test_frames)
    subject = subject or src.name
    for split, part in (("test", frames[cut:]), ("train", frames[:cut])):
        if part:
            meta = ClipMeta(subject=subject, clip_id=split, dataset=dataset, domain=domain or dataset, split=split)
            yield ClipSource(meta, _timesteps(src, path, part, intr, shape, flame_scale, image_ext), str(path),
                             {"head": "flame"})


def _timesteps(src, path, frames, intr, shape, scale, ext):
    def timesteps():
        for i, frame in enumerate(frames):
            try:
                yield _timestep(src, path, i, frame, intr, shape, scale, ext)
            except ClipError as exc:
                yield skip_from(exc)

    return timesteps


def _timestep(src, path, i, frame, intr, shape, scale, ext) -> Timestep:
    source = f"{path} frame {i} ('{frame.get('file_path')}')"
    image_path = _image_path(src, frame["file_path"], ext)
    rgb, _ = read_rgb(image_path)
    h, w = rgb.shape[:2]
    matte = read_matte(_mask_path(image_path), (h, w))
    world = np.asarray(frame["world_mat"], dtype=np.float64).reshape(3, 4)
    view = view_matrix(FLIP_YZ @ world[:, :3], FLIP_YZ @ world[:, 3] / scale)
    K = pinhole(abs(w * intr[0]), abs(h * intr[1]), abs(w * intr[2]), abs(h * intr[3]))
    if frame.get("bbox") is not None:
        box = as_width(frame["bbox"], 4, source, "bbox")
        box = box * [w, h, w, h] if np.abs(box).max() <= 1.5 else box
    else:
        box = box_from_matte(matte)
    pose = as_width(frame["pose"], 15, source, "pose")
    flame = {"shape": shape, "expression": np.asarray(frame["expression"], np.float32).reshape(-1),
             "global_rot": pose[0:3], "neck": pose[3:6], "jaw": pose[6:9], "eyes": pose[9:15],
             "translation": np.zeros(3, np.float32)}
    return Timestep(rgb[None], matte[None], view[None], K[None], np.asarray(box, np.float32)[None], flame, source)

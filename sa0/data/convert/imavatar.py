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

from sa0.data.convert.common import FLIP_YZ, as_width, box_from_matte, pinhole, read_matte, read_rgb, view_matrix
from sa0.data.schema import Clip, ClipError, ClipMeta, FlameTrack, validate_clip


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


def convert_imavatar(src, dataset: str = "imavatar", subject: str | None = None, domain: str | None = None,
                     test_frames: int = 350, flame_scale: float = 4.0, image_ext: str = ".png"):
    """Yield the train clip then the test clip (last `test_frames` frames) of one subject."""
    src = Path(src)
    path = src / "flame_params.json"
    if not path.is_file():
        raise ClipError(f"{path}: not found (an IMavatar/INSTA subject directory has flame_params.json)")
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
            yield _clip(src, path, part, intr, shape, split, subject, dataset, domain or dataset, flame_scale, image_ext)


def _clip(src, path, frames, intr, shape, split, subject, dataset, domain, scale, ext) -> Clip:
    images, mattes, views, Ks, boxes = [], [], [], [], []
    flame = {k: [] for k in ("shape", "expression", "global_rot", "neck", "jaw", "eyes", "translation")}
    for i, frame in enumerate(frames):
        source = f"{path} frame {i} ('{frame.get('file_path')}')"
        image_path = _image_path(src, frame["file_path"], ext)
        rgb, _ = read_rgb(image_path)
        h, w = rgb.shape[:2]
        matte = read_matte(_mask_path(image_path), (h, w))
        world = np.asarray(frame["world_mat"], dtype=np.float64).reshape(3, 4)
        views.append(view_matrix(FLIP_YZ @ world[:, :3], FLIP_YZ @ world[:, 3] / scale))
        Ks.append(pinhole(abs(w * intr[0]), abs(h * intr[1]), abs(w * intr[2]), abs(h * intr[3])))
        if frame.get("bbox") is not None:
            box = as_width(frame["bbox"], 4, source, "bbox")
            boxes.append(box * [w, h, w, h] if np.abs(box).max() <= 1.5 else box)
        else:
            boxes.append(box_from_matte(matte))
        pose = as_width(frame["pose"], 15, source, "pose")
        flame["shape"].append(shape)
        flame["expression"].append(np.asarray(frame["expression"], np.float32).reshape(-1))
        flame["global_rot"].append(pose[0:3])
        flame["neck"].append(pose[3:6])
        flame["jaw"].append(pose[6:9])
        flame["eyes"].append(pose[9:15])
        flame["translation"].append(np.zeros(3, np.float32))
        images.append(rgb)
        mattes.append(matte)
    clip = Clip(
        meta=ClipMeta(subject=subject, clip_id=split, dataset=dataset, domain=domain, split=split),
        images=np.stack(images)[:, None], mattes=np.stack(mattes)[:, None], viewmats=np.stack(views)[:, None],
        Ks=np.stack(Ks)[:, None], face_boxes=np.stack(boxes).astype(np.float32)[:, None],
        flame=FlameTrack(**{k: np.stack(v).astype(np.float32) for k, v in flame.items()}),
    )
    return validate_clip(clip, str(path))

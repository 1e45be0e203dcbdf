"""VHAP / GaussianAvatars / LAM exports (NeRSemble multi-view or monocular).

Layout: transforms_{train,val,test}.json (or one transforms.json) with per-frame file_path,
fg_mask_path, flame_param_path, transform_matrix (4x4 camera-to-world, OpenGL axes: x right,
y up, z backward), fl_x, fl_y, cx, cy (per frame or top level), timestep_index, camera_index;
flame_param/<t>.npz with shape, expr, rotation, neck_pose, jaw_pose, eyes_pose, translation
(and static_offset, which sa0's FLAME layer does not model: a non-zero one is recorded in extras).
One clip per split file; its frames must form a full timestep x camera grid.
World-to-camera in OpenCV axes: inv(c2w) with the y and z rows negated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sa0.data.convert.common import FLIP_YZ, box_from_matte, pinhole, read_matte, read_rgb, view_matrix
from sa0.data.schema import Clip, ClipError, ClipMeta, FlameTrack, validate_clip

NPZ_FIELDS = {"shape": "shape", "expr": "expression", "rotation": "global_rot", "neck_pose": "neck",
              "jaw_pose": "jaw", "eyes_pose": "eyes", "translation": "translation"}


def _split_files(src: Path) -> list[tuple[str, Path]]:
    files = [(s, src / f"transforms_{s}.json") for s in ("train", "val", "test") if (src / f"transforms_{s}.json").is_file()]
    if not files and (src / "transforms.json").is_file():
        files = [("train", src / "transforms.json")]
    if not files:
        raise ClipError(f"{src}: no transforms.json or transforms_{{train,val,test}}.json found (VHAP export)")
    return files


def convert_vhap(src, dataset: str = "nersemble", subject: str | None = None, domain: str | None = None):
    """Yield one validated Clip per split file, in key order."""
    src = Path(src)
    subject = subject or src.name
    for split, path in sorted(_split_files(src), key=lambda sp: sp[0]):
        yield _split_clip(src, path, split, subject, dataset, domain or dataset)


def _flame_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ClipError(f"{path}: FLAME parameter file not found")
    with np.load(path) as data:
        missing = [k for k in NPZ_FIELDS if k not in data]
        if missing:
            raise ClipError(f"{path}: missing keys {missing} (VHAP flame_param npz)")
        out = {name: np.asarray(data[k], np.float32).reshape(-1) for k, name in NPZ_FIELDS.items()}
        offset = float(np.abs(data["static_offset"]).max()) if "static_offset" in data else 0.0
    return out, offset


def _split_clip(src, path, split, subject, dataset, domain) -> Clip:
    meta = json.loads(path.read_text())
    frames = meta.get("frames") or []
    if not frames:
        raise ClipError(f"{path}: no frames")
    times = sorted({int(f["timestep_index"]) for f in frames})
    cams = sorted({int(f["camera_index"]) for f in frames})
    grid = {(int(f["timestep_index"]), int(f["camera_index"])): f for f in frames}
    missing = [(t, c) for t in times for c in cams if (t, c) not in grid]
    if missing:
        raise ClipError(f"{path}: frames do not form a full timestep x camera grid; missing (t, c) {missing[:5]}")
    images, mattes, views, Ks, boxes = [], [], [], [], []
    flame = {name: [] for name in NPZ_FIELDS.values()}
    max_offset = 0.0
    for t in times:
        row = [grid[(t, c)] for c in cams]
        params, offset = _flame_npz(src / row[0]["flame_param_path"])
        max_offset = max(max_offset, offset)
        for name, value in params.items():
            flame[name].append(value)
        img_row, matte_row, view_row, k_row, box_row = [], [], [], [], []
        for frame in row:
            rgb, alpha = read_rgb(src / frame["file_path"])
            mask_path = frame.get("fg_mask_path")
            matte = read_matte(src / mask_path, rgb.shape[:2]) if mask_path else alpha
            if matte is None:
                raise ClipError(f"{path}: frame {frame['file_path']} has no fg_mask_path and no alpha channel")
            c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
            w2c = np.linalg.inv(c2w)
            view_row.append(view_matrix(FLIP_YZ @ w2c[:3, :3], FLIP_YZ @ w2c[:3, 3]))
            get = lambda k: float(frame.get(k, meta.get(k)))  # noqa: E731
            k_row.append(pinhole(get("fl_x"), get("fl_y"), get("cx"), get("cy")))
            img_row.append(rgb)
            matte_row.append(matte)
            box_row.append(box_from_matte(matte))
        images.append(img_row)
        mattes.append(matte_row)
        views.append(view_row)
        Ks.append(k_row)
        boxes.append(box_row)
    clip = Clip(
        meta=ClipMeta(subject=subject, clip_id=split, dataset=dataset, domain=domain, split=split),
        images=np.asarray(images, np.uint8), mattes=np.asarray(mattes, np.uint8),
        viewmats=np.asarray(views, np.float32), Ks=np.asarray(Ks, np.float32), face_boxes=np.asarray(boxes, np.float32),
        flame=FlameTrack(**{k: np.stack(v) for k, v in flame.items()}),
        extras={"static_offset_max": max_offset, "timesteps": times, "cameras": cams},
    )
    return validate_clip(clip, str(path))

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

from sa0.data.convert.common import FLIP_YZ, box_from_matte, pinhole, read_matte, read_rgb, skip_from, view_matrix
from sa0.data.schema import ClipError, ClipMeta, ClipSource, Timestep, materialise

NPZ_FIELDS = {"shape": "shape", "expr": "expression", "rotation": "global_rot", "neck_pose": "neck",
              "jaw_pose": "jaw", "eyes_pose": "eyes", "translation": "translation"}


def _split_files(src: Path) -> list[tuple[str, Path]]:
    files = [(s, src / f"transforms_{s}.json") for s in ("train", "val", "test") if (src / f"transforms_{s}.json").is_file()]
    if not files and (src / "transforms.json").is_file():
        files = [("train", src / "transforms.json")]
    if not files:
        raise ClipError(f"{src}: no transforms.json or transforms_{{train,val,test}}.json found (VHAP export)")
    return files


def _has_frames(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("frames"))
    except (ValueError, OSError, AttributeError):
        return True  # unreadable: let the conversion name the problem


def units(src) -> list[str]:
    """The clips of one VHAP export: its split names (one clip each), in key order; a split file
    with no frames is left out when another split has some (see `notes`)."""
    files = _split_files(Path(src))
    full = [split for split, path in files if _has_frames(path)]
    return sorted(full or [split for split, _ in files])


def notes(src) -> list[str]:
    """What `units` left out and why (LAM's monocular exports carry an empty transforms_val.json)."""
    files = _split_files(Path(src))
    full = {split for split, path in files if _has_frames(path)}
    return [f"{path}: no frames; split '{split}' skipped ({', '.join(sorted(full))} converted)"
            for split, path in files if full and split not in full]


def convert_vhap(src, dataset: str = "nersemble", subject: str | None = None, domain: str | None = None):
    """Yield one validated Clip per split file, in key order (any bad frame raises ClipError)."""
    for source in sources(src, units(src), dataset=dataset, subject=subject, domain=domain):
        yield materialise(source)


def sources(src, splits, dataset: str = "nersemble", subject: str | None = None, domain: str | None = None):
    """One ClipSource per split (streaming: a timestep's C frames at a time; a timestep whose
    files are missing, undecodable or non-finite becomes a Skip naming the file and field)."""
    src = Path(src)
    files = dict(_split_files(src))
    subject = subject or src.name
    for split in sorted(splits):
        yield _split_source(src, files[split], split, subject, dataset, domain or dataset)


def _flame_npz(path: Path) -> tuple[dict[str, np.ndarray], float]:
    if not path.is_file():
        raise ClipError(f"{path}: FLAME parameter file not found")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ClipError(f"{path}: not a readable .npz ({exc})") from exc
    with data:
        missing = [k for k in NPZ_FIELDS if k not in data]
        if missing:
            raise ClipError(f"{path}: missing keys {missing} (VHAP flame_param npz)")
        out = {}
        for key, name in NPZ_FIELDS.items():
            value = np.asarray(data[key], np.float32).reshape(-1)
            bad = np.flatnonzero(~np.isfinite(value))
            if len(bad):
                raise ClipError(f"{path}: field '{key}' (flame.{name}) has a non-finite value {value[bad[0]]} "
                                f"at index {int(bad[0])}")
            out[name] = value
        offset = float(np.abs(data["static_offset"]).max()) if "static_offset" in data else 0.0
    return out, offset


def _split_source(src, path, split, subject, dataset, domain) -> ClipSource:
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
    extras = {"timesteps": times, "cameras": cams, "head": "flame"}

    def timesteps():
        for t in times:
            try:
                step, offset = _timestep(src, path, meta, [grid[(t, c)] for c in cams])
            except ClipError as exc:
                yield skip_from(exc)
                continue
            extras["static_offset_max"] = max(extras.get("static_offset_max", 0.0), offset)
            yield step

    return ClipSource(ClipMeta(subject=subject, clip_id=split, dataset=dataset, domain=domain, split=split),
                      timesteps, str(path), extras)


def _timestep(src, path, meta, row) -> tuple[Timestep, float]:
    params, offset = _flame_npz(src / row[0]["flame_param_path"])
    images, mattes, views, Ks, boxes = [], [], [], [], []
    for frame in row:
        rgb, alpha = read_rgb(src / frame["file_path"])
        mask_path = frame.get("fg_mask_path")
        matte = read_matte(src / mask_path, rgb.shape[:2]) if mask_path else alpha
        if matte is None:
            raise ClipError(f"{path}: frame {frame['file_path']} has no fg_mask_path and no alpha channel")
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        w2c = np.linalg.inv(c2w)
        views.append(view_matrix(FLIP_YZ @ w2c[:3, :3], FLIP_YZ @ w2c[:3, 3]))
        get = lambda k: float(frame.get(k, meta.get(k)))  # noqa: E731
        Ks.append(pinhole(get("fl_x"), get("fl_y"), get("cx"), get("cy")))
        images.append(rgb)
        mattes.append(matte)
        boxes.append(box_from_matte(matte))
    if len({im.shape for im in images}) != 1:
        raise ClipError(f"{src / row[0]['file_path']}: cameras of one timestep have different image sizes "
                        f"{sorted({im.shape[:2] for im in images})}")
    return Timestep(np.stack(images), np.stack(mattes), np.stack(views), np.stack(Ks), np.stack(boxes), params,
                    str(src / row[0]["flame_param_path"])), offset

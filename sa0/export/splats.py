"""An avatar frame as a splat file in the standard formats (.glb, .spz, .ply), one frame or a sequence.

`posed_gaussians` binds the package's local Gaussians to the head posed at one frame of a motion (the
avatar's identity, the driver's expression and pose), in sa0's world. `write_splats` / `read_splats`
pick the format by name or suffix; `write_sequence` writes every frame of a motion into a folder
(frame_00000.spz, ...) with `sequence.json` (format, fps, frame count, each frame's file and time),
the shape splat-sequence players in engines read. Every write is atomic; a sequence is written
into a staging folder renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from sa0.data.schema import Clip
from sa0.export.gltf import read_glb, write_glb
from sa0.export.package import AvatarPackage
from sa0.export.ply import export_ply, load_ply
from sa0.export.reenact import check_layout
from sa0.export.spz import read_spz, write_spz
from sa0.gaussians import bind
from sa0.head import HeadModel
from sa0.types import Gaussians

FORMATS = ("glb", "spz", "ply")
SEQUENCE = "sequence.json"
_WRITERS = {"glb": write_glb, "spz": write_spz, "ply": export_ply}
_READERS = {"glb": read_glb, "spz": read_spz, "ply": load_ply}


def posed_gaussians(package: AvatarPackage, head: HeadModel, motion: Clip, frames: list[int]) -> Iterator[Gaussians]:
    """World-space Gaussians of the avatar at each of `frames` (timesteps of `motion`), one at a time;
    the frames are checked (ValueError naming --frame) before anything is posed."""
    check_layout(package, head)
    bad = [t for t in frames if not 0 <= t < motion.num_timesteps]
    if bad:
        raise ValueError(f"--frame {bad[0]}: the motion ({motion.meta.key}) has frames 0..{motion.num_timesteps - 1}")
    verts = head.pose_track(motion.flame.as_dict(), shape=package.shape)
    return _bound(package, head, verts, frames)


def _bound(package: AvatarPackage, head: HeadModel, verts, frames: list[int]) -> Iterator[Gaussians]:
    for t in frames:
        with torch.no_grad():
            yield bind(package.local, verts[t], head.faces, head.layout)


def format_of(path, fmt: str | None = None) -> str:
    """The format named, else the file's suffix; ValueError for anything else."""
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} ({path}): choose one of {', '.join(FORMATS)}")
    return fmt


def write_splats(gaussians: Gaussians, path, fmt: str | None = None) -> Path:
    return _WRITERS[format_of(path, fmt)](gaussians, path)


def read_splats(path) -> Gaussians:
    return _READERS[format_of(path)](path)


def write_sequence(package: AvatarPackage, head: HeadModel, motion: Clip, out, fmt: str, fps: float) -> Path:
    """Every frame of `motion` as OUT/frame_%05d.<fmt> plus OUT/sequence.json (replaced atomically)."""
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    frames, count = [], motion.num_timesteps
    try:
        posed = posed_gaussians(package, head, motion, list(range(count)))
        for t, gaussians in enumerate(tqdm(posed, total=count, desc=f"export {fmt}", unit="frame", dynamic_ncols=True)):
            name = f"frame_{t:05d}.{fmt}"
            write_splats(gaussians, staging / name, fmt)
            frames.append({"file": name, "time": t / fps})
        meta = {"format": fmt, "fps": fps, "count": len(frames), "frames": frames, "subject": package.meta.get("subject"),
                "driver": motion.meta.subject, "coordinates": "sa0 world: metres, y up, the face toward +z"}
        (staging / SEQUENCE).write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out

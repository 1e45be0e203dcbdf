"""Real videos as a novel-view test: train on the frames nearest frontal, score the ones turned furthest.

A phone video has no second camera, but its subject turns a little: the frames with the largest tracked
yaw are the nearest thing to a novel view that real pixels offer. `yaw_split` holds those out, and as
many near-frontal frames spread over the clip (a held-out control the training frames surround), and
trains on the rest; the two held-out PSNRs side by side say how much of a frontal avatar's quality
survives a turn of the head, on a real face with hair, teeth and lighting no synthetic subject has.
The yaw is the face's own (from its eye and mouth corners on the posed mesh, sa0.refine.silhouette
.face_frame) in the camera's frame, so the neck's turn counts and any head model works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.head import HeadModel
from sa0.refine.silhouette import face_frame
from sa0.refine.subjects import slice_timesteps


def head_yaws(head: HeadModel, clip: Clip, camera: int = 0) -> np.ndarray:
    """(T,) degrees: how far the tracked face turns from looking into camera `camera`, left or right
    (0: facing it; the sign says which way). Raises ValueError when the head cannot place its face."""
    frame = face_frame(head, head.pose_track(clip.flame.as_dict()))
    if frame is None:
        raise ValueError(f"{head.model_dir}: no MediaPipe embedding with eye and mouth corners to find the face by")
    rot = torch.as_tensor(np.asarray(clip.viewmats[:, camera, :3, :3], np.float64))
    forward = (rot @ frame.forward[..., None])[..., 0]  # camera coordinates: the camera looks along +z
    return np.degrees(np.arctan2(forward[:, 0].numpy(), -forward[:, 2].numpy()))


@dataclass(frozen=True)
class YawSplit:
    """Timestep indices (sorted): train, frontal (held-out near-frontal control), side (held-out,
    largest |yaw|); yaws (T,) degrees."""

    train: np.ndarray
    frontal: np.ndarray
    side: np.ndarray
    yaws: np.ndarray

    def clips(self, clip: Clip) -> tuple[Clip, Clip, Clip]:
        """(train, frontal, side) sub-clips of `clip`."""
        return tuple(slice_timesteps(clip, idx) for idx in (self.train, self.frontal, self.side))


def yaw_split(yaws: np.ndarray, fraction: float = 0.2) -> YawSplit:
    """Hold out the `fraction` of timesteps with the largest |yaw| (side) and as many of the rest spread
    evenly over time (frontal); train on what remains."""
    count = len(yaws)
    held = max(1, int(round(fraction * count)))
    if count < 2 * held + 2:
        raise ValueError(f"yaw split: {count} frames, need at least {2 * held + 2} to hold {held} + {held} out")
    order = np.argsort(np.abs(yaws), kind="stable")
    side = np.sort(order[-held:])
    rest = np.sort(order[:-held])
    frontal = rest[np.round(np.linspace(0, len(rest) - 1, held + 2)[1:-1]).astype(int)]
    train = np.setdiff1d(rest, frontal)
    return YawSplit(train, frontal, side, np.asarray(yaws, np.float64))


def summary(split: YawSplit) -> dict:
    """Mean and max |yaw| of each part (degrees), for a report."""
    out = {}
    for name in ("train", "frontal", "side"):
        turn = np.abs(split.yaws[getattr(split, name)])
        out[f"{name}_frames"] = int(len(turn))
        out[f"{name}_yaw_mean"] = round(float(turn.mean()), 2)
        out[f"{name}_yaw_max"] = round(float(turn.max()), 2)
    return out



def real_case(shard_dir, cfg, fraction: float = 0.2, uv_resolution: int = 128) -> dict:
    """Refine the one subject of a tracked shard folder (track.py's output) on its `yaw_split` training
    frames with RefineConfig `cfg` and score both held-out sets -> a row: frontal_psnr / side_psnr
    (and SSIM), their gap, the yaws of each part, the head, seconds. The head is the one it was
    tracked with."""
    import json
    import time
    from pathlib import Path

    from sa0.config import FlameConfig, LayoutConfig
    from sa0.head import load_head_model
    from sa0.heads import chosen_head
    from sa0.refine.batched import refine_subject
    from sa0.refine.refine import evaluate
    from sa0.refine.subjects import load_subject_clips, recorded_head

    manifest = Path(shard_dir) / "manifest.json"
    subjects = json.loads(manifest.read_text())["subjects"] if manifest.is_file() else []
    if len(subjects) != 1:
        raise ValueError(f"{manifest}: field 'subjects' must name one subject (a track.py output), got {subjects}")
    clip = max(load_subject_clips(subjects[0], [str(shard_dir)]), key=lambda c: c.num_timesteps)
    start = time.perf_counter()
    with chosen_head(None, recorded_head(subjects, [str(shard_dir)])) as (directory, name):
        head = load_head_model(FlameConfig(model_dir=directory), LayoutConfig(uv_resolution=uv_resolution))
        split = yaw_split(head_yaws(head, clip), fraction)
        train, frontal, side = split.clips(clip)
        local = refine_subject(head, train, cfg).local
        scores = {part: evaluate(head, local, held, cfg.render) for part, held in (("frontal", frontal), ("side", side))}
    row = {"subject": subjects[0], "head": name, "seconds": round(time.perf_counter() - start, 1), **summary(split)}
    for part, got in scores.items():
        row[f"{part}_psnr"], row[f"{part}_ssim"] = round(got["psnr"], 3), round(got["ssim"], 4)
    row["gap_db"] = round(row["frontal_psnr"] - row["side_psnr"], 3)
    return row

"""Driving frames from a source, paced like a camera, posed onto the avatar's head.

Every source yields `DriveFrame`s (frame index, when it was read, FLAME parameters for one frame)
at its own frame rate: a frame whose time has passed while the previous one was being worked on is
dropped, as a webcam's would be. `drive` poses each frame with the avatar's identity and hands the
vertices to a sink (the live hub). Head pose: the stream's head rotation (about FLAME's root joint),
no translation, so the head stays where the avatar's own camera sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from sa0.drive.fastfit import LiveFitter
from sa0.drive.streams import POSE_FIELDS, Motion
from sa0.head import HeadModel, to_width
from sa0.types import FlameParams


@dataclass(frozen=True)
class DriveFrame:
    """index: the source's frame number; read_at: perf_counter seconds when it was read; params:
    FlameParams (1, ...) with the avatar's shape; error_px: the live fit's landmark RMS (None for
    streams of parameters)."""

    index: int
    read_at: float
    params: FlameParams
    error_px: float | None = None


@dataclass
class DriveCounts:
    read: int = 0
    dropped: int = 0
    no_face: int = 0
    posed: int = 0


def paced(items: Iterable, fps: float, counts: DriveCounts, realtime: bool = True) -> Iterator[tuple[int, object]]:
    """(index, item) at `fps`; items already a frame period late are dropped (counted). The clock
    starts once the first item has been worked on (its cold start is not the stream's delay)."""
    start = time.perf_counter()
    for k, item in enumerate(items):
        counts.read += 1
        if k == 1:
            start = time.perf_counter() - 1.0 / fps
        if realtime and k > 0:
            due = start + k / fps
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            elif now - due > 1.0 / fps:
                counts.dropped += 1
                continue
        yield k, item


def _frame_params(motion: Motion, k: int, shape: torch.Tensor) -> FlameParams:
    values = {name: torch.as_tensor(motion.params[name][k:k + 1]) for name in POSE_FIELDS}
    return FlameParams(shape=shape, **values)


def motion_frames(motion: Motion, shape: np.ndarray, counts: DriveCounts, realtime: bool = True) -> Iterator[DriveFrame]:
    """A parameter stream (ARKit weights, FLAME sequences) played at its frame rate."""
    shape_t = torch.as_tensor(np.asarray(shape, np.float32))[None]
    for k, _ in paced(range(motion.num_frames), motion.fps, counts, realtime):
        yield DriveFrame(k, time.perf_counter(), _frame_params(motion, k, shape_t))


def video_frames(images: Iterable[np.ndarray], fps: float, detector, make_fitter: Callable[[tuple], LiveFitter],
                 ids: np.ndarray, counts: DriveCounts, realtime: bool = True) -> Iterator[DriveFrame]:
    """Frames (H, W, 3) uint8 -> MediaPipe landmarks (detector) -> the live fit, one frame at a time.
    make_fitter((H, W)) builds the fit at the first frame (the principal point needs the size)."""
    fitter = None
    for k, image in paced(images, fps, counts, realtime):
        read_at = time.perf_counter()
        found = detector.detect(image).faces
        if not found:
            counts.no_face += 1
            continue
        fitter = fitter or make_fitter(image.shape[:2])
        params, error = fitter.fit(np.asarray(found[0], np.float32)[ids])
        yield DriveFrame(k, read_at, params, error)


class Poser:
    """FlameParams (1, ...) -> (V, 3) float32 world vertices of the avatar's head, translation dropped.
    shape: the avatar's identity, baked into a copy of the head's layer so that each frame multiplies
    only the expression basis (a frame with another identity takes the head's own layer)."""

    def __init__(self, head: HeadModel, shape: np.ndarray | None = None):
        self.head, self.shape, self.baked = head, None, None
        if shape is not None:
            self.shape = to_width(torch.as_tensor(np.asarray(shape, np.float32))[None], head.flame.num_shape)[0]
            self.baked = head.flame.with_identity(self.shape.to(head.faces.device))

    def __call__(self, params: FlameParams) -> np.ndarray:
        track = {f.name: torch.as_tensor(getattr(params, f.name)).detach().cpu().float() for f in fields(params)}
        track["translation"] = torch.zeros_like(track["translation"])
        if self.baked is None or not torch.equal(to_width(track["shape"], self.head.flame.num_shape)[0], self.shape):
            return self.head.pose_track({k: v.numpy() for k, v in track.items()})[0].cpu().numpy()
        track["shape"] = track["shape"].new_zeros(1, 0)
        track["expression"] = to_width(track["expression"], self.head.flame.num_expression)
        device = self.head.faces.device
        with torch.no_grad():
            return self.baked(FlameParams(**{k: v.to(device) for k, v in track.items()}))[0].cpu().numpy()


def drive(frames: Iterable[DriveFrame], poser: Poser, publish: Callable[[int, float, np.ndarray], None],
          counts: DriveCounts, record: list | None = None) -> DriveCounts:
    """Pose and publish every frame; append each frame's parameters to `record` if given."""
    for frame in frames:
        publish(frame.index, frame.read_at, poser(frame.params))
        counts.posed += 1
        if record is not None:
            record.append(frame.params)
    return counts


def recorded_motion(record: list[FlameParams], fps: float, source: str, head: str) -> Motion:
    """Parameters of the published frames -> a Motion (drive.py --record)."""
    params = {name: torch.cat([getattr(p, name) for p in record]).float().numpy() for name in POSE_FIELDS}
    return Motion(params, fps, source, head)

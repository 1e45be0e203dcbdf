"""Face detection and landmarks behind a small protocol, so tests can substitute ground truth.

A detector maps one RGB frame to a `Detection`: every face it found, each as (478, 2) pixel
coordinates (x right, y down; MediaPipe Face Mesh ids, NaN where a detector does not know an id),
and optionally a foreground matte. sa0's default is MediaPipe (sa0.track.mp_detector), which runs in
its own Python environment; `ProjectedDetector` replays known landmarks (ground truth in tests and
benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

NUM_LANDMARKS = 478


@dataclass(frozen=True)
class Detection:
    """faces: list of (478, 2) float32 pixel positions; matte: (H, W) uint8 (255 = person) or None."""

    faces: list = field(default_factory=list)
    matte: np.ndarray | None = None


class LandmarkDetector(Protocol):
    def detect(self, image: np.ndarray) -> Detection:
        """image: (H, W, 3) uint8 RGB."""

    def close(self) -> None:
        """Release what the detector holds (a worker process, ...)."""


class ProjectedDetector:
    """Replays given landmarks: frame number -> Detection (e.g. projected ground truth plus noise).
    Frames are counted in the order `detect` is called."""

    def __init__(self, detections: Callable[[int], Detection]):
        self.detections = detections
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detection:
        out = self.detections(self.calls)
        self.calls += 1
        return out

    def close(self) -> None:
        pass


def full_landmarks(ids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(L,) ids and (L, 2) points -> (478, 2) with NaN for the ids not given."""
    out = np.full((NUM_LANDMARKS, 2), np.nan, dtype=np.float32)
    out[ids] = points
    return out

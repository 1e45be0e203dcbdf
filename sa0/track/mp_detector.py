"""The default LandmarkDetector: MediaPipe Face Mesh (478 landmarks with irises) and its selfie
segmentation as the matte, in sa0's MediaPipe environment (sa0.track.mediapipe_env), one worker
process per detector."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from sa0.track.detect import NUM_LANDMARKS, Detection
from sa0.track.mediapipe_env import env_python

WORKER = Path(__file__).with_name("mediapipe_worker.py")


class MediaPipeDetector:
    """static=True: every frame on its own (portraits); False: MediaPipe tracks across frames (video).
    matte=False: landmarks only (no segmentation; live driving). Its chatter goes to `log` (a file
    path; default a temporary file). `send` then `receive` is `detect` in two halves, so a caller can
    work on the previous frame while the worker detects the next."""

    def __init__(self, static: bool = True, log: str | None = None, matte: bool = True):
        python = env_python()
        self.log_path = log or tempfile.mkstemp(prefix="sa0-mediapipe-", suffix=".log")[1]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(python), str(WORKER), "--static", str(int(static)),
                                      "--matte", str(int(matte))], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log)
        ready = self._line()
        if not ready.get("ready"):
            raise RuntimeError(f"MediaPipe worker did not start (log: {self.log_path})")
        self.version = ready.get("mediapipe")

    def _line(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"MediaPipe worker stopped (exit {self.proc.poll()}); see {self.log_path}")
        return json.loads(line)

    def _read(self, count: int) -> bytes:
        data = self.proc.stdout.read(count)
        if len(data) != count:
            raise RuntimeError(f"MediaPipe worker sent {len(data)} of {count} bytes; see {self.log_path}")
        return data

    def detect(self, image: np.ndarray) -> Detection:
        return self.receive(self.send(image))

    def send(self, image: np.ndarray) -> tuple[int, int]:
        """Hand the worker one frame; -> its (height, width), for `receive`."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        h, w = image.shape[:2]
        self.proc.stdin.write((json.dumps({"h": h, "w": w}) + "\n").encode())
        self.proc.stdin.write(image.tobytes())
        self.proc.stdin.flush()
        return h, w

    def receive(self, size: tuple[int, int]) -> Detection:
        h, w = size
        header = self._line()
        faces = [np.frombuffer(self._read(NUM_LANDMARKS * 2 * 4), np.float32).reshape(NUM_LANDMARKS, 2).copy()
                 for _ in range(header["faces"])]
        matte = np.frombuffer(self._read(h * w), np.uint8).reshape(h, w).copy() if header.get("matte") else None
        return Detection(faces, matte)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

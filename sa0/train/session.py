"""Where a training loop runs: the small interface it steps, checkpoints and reports through.

The loop (sa0.train.loop.train_phase) asks its Session for its rank and world size, its device,
the checkpoint to resume from, and hands it metrics and finished checkpoint directories. Two
implementations: `LocalSession` runs the loop in this process with no Ray (a debugger steps through
a training step; tests pin its loss curve), and sa0.train.on_ray's RaySession, the same interface
over Ray Train (the only training module that imports Ray).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Protocol

import torch

from sa0.fsutil import replace_dir


class Session(Protocol):
    rank: int
    world: int
    data_runner: str  # how the data stream builds examples: "ray" (Ray Data) or "local" (this process)

    def device(self, use_gpu: bool) -> torch.device: ...

    def latest_checkpoint(self) -> contextlib.AbstractContextManager[str | None]: ...

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None: ...


class LocalSession:
    """Rank 0 of 1 in this process. A reported checkpoint is copied to ROOT/checkpoint (replaced
    atomically, so a rerun on the same root resumes from it); metrics accumulate in `reports`."""

    rank, world, data_runner = 0, 1, "local"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.reports: list[dict] = []

    def device(self, use_gpu: bool) -> torch.device:
        if not use_gpu:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
        return torch.device("cuda" if use_gpu else "cpu")

    @contextlib.contextmanager
    def latest_checkpoint(self):
        path = self.root / "checkpoint"
        yield str(path) if path.is_dir() else None

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = self.root / ".checkpoint.partial"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(checkpoint_dir, staging)
            replace_dir(staging, self.root / "checkpoint")


def ensure_local_process_group() -> None:
    """Make the one-process torch.distributed environment DeepSpeed needs (rank 0 of 1, gloo on a free
    local port) unless one exists. The group, once DeepSpeed creates it, stays for the process's
    life: DeepSpeed caches it, so a second run in the same process reuses it."""
    import torch.distributed as dist

    if dist.is_initialized() or os.environ.get("MASTER_PORT"):
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))

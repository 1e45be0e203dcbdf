"""Checkpoint completeness and the exported generator (ARCHITECTURE convention 6).

Training checkpoints are directories that every rank writes into (Ray Train merges them). A rank's
part counts only once its marker `loop_rank<r>.json` exists: it is written last, temp-then-rename,
and lists every file that rank wrote with its size, next to the loop state (step, data position,
resolved config, schema version). `verify_checkpoint` refuses a directory where any rank's marker
is missing or a listed file is missing or has another size, naming what is wrong.

The exported generator (`export_generator` / `load_generator`) is what phase 2, refinement and
evaluation start from: a directory with generator.pt (the model's state dict), meta.json (configs,
phase, step, schema version) and a COMPLETE marker, written to a temporary sibling and renamed into
place, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from sa0.fsutil import write_json_atomic

SCHEMA_VERSION = 1
RANK_MARKER = "loop_rank{rank}.json"
COMPLETE = "COMPLETE"


class IncompleteCheckpointError(RuntimeError):
    """A checkpoint or exported generator that was not completely written."""


def write_rank_marker(directory: str | os.PathLike, rank: int, state: dict) -> None:
    """Mark this rank's part of a checkpoint complete: state + {file: size} of what it wrote."""
    directory = Path(directory)
    marker = RANK_MARKER.format(rank=rank)
    files = {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*"))
             if p.is_file() and p.name != marker and not p.name.endswith(".tmp")}
    write_json_atomic(directory / marker, {**state, "schema_version": SCHEMA_VERSION, "files": files})


def verify_checkpoint(directory: str | os.PathLike, world_size: int) -> list[dict]:
    """-> every rank's loop state; raises IncompleteCheckpointError if any part is missing."""
    directory = Path(directory)
    written = sorted(directory.glob(RANK_MARKER.format(rank="*")))
    if len(written) > world_size:
        raise IncompleteCheckpointError(f"checkpoint {directory} was written by {len(written)} workers, this run has "
                                        f"{world_size}; resume with train.num_workers={len(written)} or use a new run name")
    states = []
    for rank in range(world_size):
        marker = directory / RANK_MARKER.format(rank=rank)
        if not marker.is_file():
            raise IncompleteCheckpointError(f"checkpoint {directory}: rank {rank}'s marker {marker.name} is missing "
                                            f"(that rank never finished writing, or only {len(written)} workers wrote "
                                            "this checkpoint); refusing to resume from it")
        state = json.loads(marker.read_text())
        if state.get("schema_version") != SCHEMA_VERSION:
            raise IncompleteCheckpointError(f"checkpoint {directory}: {marker.name} has schema_version "
                                            f"{state.get('schema_version')!r}, this sa0 reads {SCHEMA_VERSION}")
        for name, size in state["files"].items():
            path = directory / name
            if not path.is_file() or path.stat().st_size != size:
                found = path.stat().st_size if path.is_file() else "missing"
                raise IncompleteCheckpointError(f"checkpoint {directory}: {name} (listed by rank {rank}) should have "
                                                f"{size} bytes, found {found}; refusing to resume from it")
        states.append(state)
    steps = {s["step"] for s in states}
    if len(steps) != 1:
        raise IncompleteCheckpointError(f"checkpoint {directory}: ranks disagree on the step: {sorted(steps)}")
    return states


def export_generator(path: str | os.PathLike, state_dict: dict, meta: dict) -> Path:
    """Write a generator's state dict + meta atomically to the directory `path` (replacing an old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / "generator.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "schema_version": SCHEMA_VERSION}, indent=1, default=str))
        (tmp / COMPLETE).write_text("ok\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def is_exported(path: str | os.PathLike) -> bool:
    return (Path(path) / COMPLETE).is_file()


def load_generator(path: str | os.PathLike) -> tuple[dict, dict]:
    """-> (state dict, meta) of an exported generator; refuses an incomplete or foreign one."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"generator checkpoint {path} does not exist (expected a directory written by "
                                "jobs/train_generator.py, e.g. runs/<run-name>/generator)")
    if not is_exported(path):
        raise IncompleteCheckpointError(f"generator checkpoint {path} has no {COMPLETE} marker: it was not completely "
                                        "written (the job died while exporting); rerun the job to finish it")
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise IncompleteCheckpointError(f"{path / 'meta.json'}: schema_version {meta.get('schema_version')!r}, "
                                        f"this sa0 reads {SCHEMA_VERSION}")
    return torch.load(path / "generator.pt", map_location="cpu", weights_only=True), meta

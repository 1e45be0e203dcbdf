"""Checkpoint completeness and the exported generator (ARCHITECTURE convention 6).

Training checkpoints are directories that every rank writes into (Ray Train merges them). A rank's
part counts only once its marker `loop_rank<r>.json` exists: it is written last, temp-then-rename,
and lists every file that rank wrote with its size, next to the loop state (step, data position,
resolved config, schema version). `verify_checkpoint` refuses a directory where any rank's marker
is missing or a listed file is missing or has another size, naming what is wrong.

The exported generator (`export_generator` / `load_generator`, what phase 2, refinement and
evaluation start from) is sa0.model.saved's format; its names are re-exported here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sa0.fsutil import write_json_atomic
from sa0.model.saved import (
    COMPLETE,
    SCHEMA_VERSION,
    IncompleteCheckpointError,
    export_generator,
    is_exported,
    load_generator,
)

__all__ = ["COMPLETE", "SCHEMA_VERSION", "IncompleteCheckpointError", "export_generator", "is_exported",
           "load_generator", "verify_checkpoint", "write_rank_marker"]
RANK_MARKER = "loop_rank{rank}.json"


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

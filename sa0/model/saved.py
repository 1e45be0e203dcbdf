"""A trained generator on disk: what phase 2, refinement and evaluation start from.

`export_generator` writes a directory with generator.pt (the model's state dict), meta.json
(configs, phase, step, schema version) and a COMPLETE marker, to a temporary sibling renamed into
place, so a reader never sees half of one; `load_generator` refuses an incomplete or foreign one.
Training writes exports (sa0.train); inference reads them (sa0.model.inference).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from sa0.fsutil import replace_dir

SCHEMA_VERSION = 1
COMPLETE = "COMPLETE"


class IncompleteCheckpointError(RuntimeError):
    """A checkpoint or exported generator that was not completely written."""


def export_generator(path: str | os.PathLike, state_dict: dict, meta: dict) -> Path:
    """Write a generator's state dict + meta atomically to the directory `path` (replacing an old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp / "generator.pt")
        (tmp / "meta.json").write_text(json.dumps({**meta, "schema_version": SCHEMA_VERSION}, indent=1, default=str))
        (tmp / COMPLETE).write_text("ok\n")
        replace_dir(tmp, path)
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

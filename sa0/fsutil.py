"""Small filesystem helpers shared by every stage that writes results: nothing half-written is ever
visible under its final name (write a temporary file beside it, then rename it into place)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bytes_atomic(path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path, payload, indent: int | None = 1) -> None:
    write_bytes_atomic(path, (json.dumps(payload, indent=indent, default=str) + "\n").encode())


def replace_dir(staging, final) -> Path:
    """Move the finished directory `staging` to `final`, replacing an older one: the old one is set
    aside first, so `final` is at every moment either the complete old or the complete new one."""
    import shutil

    staging, final = Path(staging), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    return final

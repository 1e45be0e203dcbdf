"""WebDataset shards of clips (schema 2): tars whose frames a reader can fetch one at a time.

A shard is a plain tar: webdataset and `ray.data.read_webdataset` read it as one sample per clip.
The members of clip KEY are contiguous and sorted by name:
  KEY.fTTTTT_cCC.png|jpg     RGB of timestep T, camera C
  KEY.fTTTTT_cCC.matte.png   8-bit matte
  KEY.index.npz              the clip's arrays (viewmats, ks, face_boxes, flame_<name>; float32) and
                             frame_offsets (T, C, 2, 2) int64: [rgb | matte] x [byte offset in the tar, size]
  KEY.meta.json              ClipMeta fields + num_timesteps, num_cameras, height, width, image_format, extras
`manifest.json` lists, per shard: file, bytes, SHA-256 and its clips, each with key, subject, split,
timesteps, cameras and the byte ranges of its index and meta members.

Why: an example uses K + 1 of a clip's T x C frames. Read as one sample, a clip costs all its frames
(a 16-camera NeRSemble sequence is gigabytes); here a reader takes the clip's index with one ranged
read (a compressed npz: ~0.1-0.5 KB per frame against 10-500 KB per image) and then only the frames
it chose, so an example costs K + 1 frames whatever T and C (sa0.data.reader).

Writing streams (`ShardWriter.add(ClipSource)`): frames go to disk as each timestep arrives, so a
long multi-view capture is written holding one timestep; a timestep that breaks the contract is
left out and reported (or fatal with strict=True). Shards are written as `.tmp` files and renamed
into place when complete. Schema 1 shards (one sample per clip, no index) are refused by the
readers with the command that rewrites them (`make_shards.py upgrade`).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from sa0.data.schema import (
    FLAME_FIELDS,
    SCHEMA_VERSION,
    Clip,
    ClipError,
    ClipSource,
    Skip,
    clip_source,
    validate_clip,
)
from sa0.fsutil import sha256_file, write_json_atomic

MANIFEST = "manifest.json"
ARRAY_MEMBERS = ("viewmats", "ks", "face_boxes") + tuple(f"flame_{name}" for name in FLAME_FIELDS)
BLOCK, RECORD = 512, 10240  # tar block and record sizes


class ShardError(ValueError):
    """A shard file or sample is unreadable or malformed; the message names the file and member."""


def frame_member(t: int, c: int, kind: str = "rgb", image_format: str = "png") -> str:
    stem = f"f{t:05d}_c{c:02d}"
    return f"{stem}.matte.png" if kind == "matte" else f"{stem}.{image_format}"


def encode_image(array: np.ndarray, image_format: str) -> bytes:
    buf = io.BytesIO()
    if image_format == "jpg":
        Image.fromarray(array).save(buf, format="JPEG", quality=95)
    else:
        Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz with fixed timestamps (same arrays, same bytes; np.savez stamps the time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, npy_bytes(arrays[name]))
    return buf.getvalue()


class _TarFile:
    """An append-only tar being written to `<path>.tmp`: add() returns where a member's data starts;
    rollback() drops everything after a mark; finish() ends the archive and renames it into place."""

    def __init__(self, path: Path):
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.fh = open(self.tmp, "wb")
        self.clips: list[dict] = []

    @property
    def size(self) -> int:
        return self.fh.tell()

    def add(self, name: str, data: bytes) -> int:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self.fh.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
        offset = self.fh.tell()
        self.fh.write(data)
        self.fh.write(b"\0" * (-len(data) % BLOCK))
        return offset

    def rollback(self, mark: int) -> None:
        self.fh.seek(mark)
        self.fh.truncate()

    def finish(self) -> dict | None:
        """-> the shard's manifest entry, or None (and no file) when no clip landed in it."""
        if not self.clips:
            self.fh.close()
            self.tmp.unlink()
            return None
        self.fh.write(b"\0" * (2 * BLOCK))
        self.fh.write(b"\0" * (-self.fh.tell() % RECORD))
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        digest = sha256_file(self.tmp)
        os.replace(self.tmp, self.path)
        return {"file": self.path.name, "bytes": self.path.stat().st_size, "sha256": digest,
                "clips": self.clips}

    def abandon(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


class ShardWriter:
    """Writes ClipSources (or Clips) into size-bounded shards `<prefix>-NNNNNN.tar` in `out_dir`.

    Clips must arrive in strictly ascending key order. add() returns (the clip's manifest record or
    None if nothing of it could be written, the problems found: "file: field value" strings).
    close() -> the manifest entries of the shards written.
    """

    def __init__(self, out_dir, prefix: str = "shard", max_shard_bytes: int = 256 << 20, image_format: str = "png",
                 strict: bool = True):
        if image_format not in ("png", "jpg"):
            raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
        self.out, self.prefix, self.max_bytes = Path(out_dir), prefix, max_shard_bytes
        self.image_format, self.strict = image_format, strict
        self.out.mkdir(parents=True, exist_ok=True)
        self.shards: list[dict] = []
        self._tar: _TarFile | None = None
        self._count, self._previous = 0, None

    def _open(self) -> _TarFile:
        if self._tar is not None and self._tar.size >= self.max_bytes:
            self._close_current()
        if self._tar is None:
            self._tar = _TarFile(self.out / f"{self.prefix}-{self._count:06d}.tar")
            self._count += 1
        return self._tar

    def _close_current(self) -> None:
        entry = self._tar.finish()
        if entry is not None:
            self.shards.append(entry)
        self._tar = None

    def add(self, item: Clip | ClipSource) -> tuple[dict | None, list[str]]:
        src = item if isinstance(item, ClipSource) else clip_source(item, f"clip '{item.meta.key}'")
        key = src.meta.key
        if self._previous is not None and key <= self._previous:
            what = "duplicate clip key" if key == self._previous else "clips out of key order"
            raise ClipError(f"{what}: '{key}' after '{self._previous}'; (dataset, subject, clip_id) must be unique "
                            "and clips written in ascending key order")
        self._previous = key
        tar = self._open()
        mark, problems = tar.size, []
        try:
            record = self._write_clip(tar, src, problems)
        except BaseException:
            tar.rollback(mark)
            raise
        if record is None:
            tar.rollback(mark)
        else:
            tar.clips.append(record)
        return record, problems

    def _problem(self, problems: list[str], message: str) -> None:
        if self.strict:
            raise ClipError(message)
        problems.append(message)

    def _write_clip(self, tar: _TarFile, src: ClipSource, problems: list[str]) -> dict | None:
        key, fmt = src.meta.key, self.image_format
        rows: list = []
        offsets: list[np.ndarray] = []
        shape = None
        for item in src.timesteps():
            if isinstance(item, Skip):
                self._problem(problems, f"{item.source}: {item.reason}")
                continue
            where = item.source or f"{src.source} timestep {len(rows)}"
            try:
                validate_clip(item.as_clip(src.meta), where)
                this = (item.images.shape, {n: np.asarray(item.flame[n]).size for n in FLAME_FIELDS})
                if shape is not None and this != shape:
                    raise ClipError(f"{where}: images {this[0]} / FLAME widths {this[1]} differ from the clip's first "
                                    f"timestep ({shape[0]} / {shape[1]})")
            except ClipError as exc:
                self._problem(problems, str(exc))
                continue
            shape, t = this, len(rows)
            frame = np.zeros((item.images.shape[0], 2, 2), np.int64)
            for c in range(item.images.shape[0]):
                members = [(frame_member(t, c, "rgb", fmt), 0, item.images[c], fmt),
                           (frame_member(t, c, "matte"), 1, item.mattes[c], "png")]
                for name, k, image, kfmt in sorted(members, key=lambda m: m[0]):  # members sorted by name
                    data = encode_image(np.ascontiguousarray(image), kfmt)
                    frame[c, k] = tar.add(f"{key}.{name}", data), len(data)
            offsets.append(frame)
            rows.append((item.viewmats, item.Ks, item.face_boxes, item.flame))
        if not rows:
            self._problem(problems, f"{src.source}: clip '{key}' has no usable timestep; skipped")
            return None
        arrays = {"viewmats": np.stack([r[0] for r in rows]), "ks": np.stack([r[1] for r in rows]),
                  "face_boxes": np.stack([r[2] for r in rows]), "frame_offsets": np.stack(offsets)}
        arrays.update({f"flame_{n}": np.stack([np.asarray(r[3][n]).reshape(-1) for r in rows]) for n in FLAME_FIELDS})
        arrays = {k: v if k == "frame_offsets" else v.astype(np.float32) for k, v in arrays.items()}
        t, c, h, w = (len(rows),) + shape[0][:3]
        meta = {**asdict(src.meta), "num_timesteps": t, "num_cameras": c, "height": h, "width": w,
                "image_format": fmt, "extras": src.extras, "skipped_timesteps": len(problems)}
        index = npz_bytes(arrays)
        index_at = tar.add(f"{key}.index.npz", index)
        meta_bytes = json.dumps(meta, sort_keys=True, default=str).encode()
        meta_at = tar.add(f"{key}.meta.json", meta_bytes)
        return {"key": key, "subject": src.meta.subject, "split": src.meta.split, "timesteps": t, "cameras": c,
                "index": [index_at, len(index)], "meta": [meta_at, len(meta_bytes)]}

    def close(self) -> list[dict]:
        if self._tar is not None:
            self._close_current()
        return self.shards

    def abandon(self) -> None:
        """Drop the shard being written (after an error): no partial file is left behind."""
        if self._tar is not None:
            self._tar.abandon()
            self._tar = None


def build_manifest(shards: list[dict], image_format: str = "png", **extra) -> dict:
    """manifest.json's content for these shard entries (totals recomputed from their clips)."""
    records = [clip for shard in shards for clip in shard["clips"]]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "clips": len(records),
        "frames": sum(r["timesteps"] * r["cameras"] for r in records),
        "subjects": sorted({r["subject"] for r in records}),
        "splits": dict(sorted(Counter(r["split"] for r in records).items())),
        "image_format": image_format,
        **extra,
        "shards": shards,
    }
    return manifest


def write_shards(clips: Iterable[Clip | ClipSource], out_dir, prefix: str = "shard", max_shard_bytes: int = 256 << 20,
                 image_format: str = "png") -> dict:
    """Validate and write clips (strictly: any problem raises ClipError) plus manifest.json, streaming.

    Clips must arrive in strictly ascending key order (ClipMeta.key), which keeps every shard's
    clips sorted and makes duplicates detectable without holding clips in memory.
    """
    writer = ShardWriter(out_dir, prefix, max_shard_bytes, image_format, strict=True)
    try:
        for clip in clips:
            writer.add(clip)
    except BaseException:
        writer.abandon()
        raise
    manifest = build_manifest(writer.close(), image_format)
    write_json_atomic(Path(out_dir) / MANIFEST, manifest)
    return manifest


def read_manifest(directory) -> dict:
    """The manifest of a shard directory; schema 1 and unreadable manifests are refused by name."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ShardError(f"{directory}: no {MANIFEST} (write shards with jobs/make_shards.py)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardError(f"{path}: not valid JSON ({exc})") from exc
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ShardError(f"{path}: shard schema {version}; this sa0 reads schema {SCHEMA_VERSION} (frames indexed "
                         f"per clip). Rewrite it with `python jobs/make_shards.py upgrade {directory} --out NEW_DIR`")
    return manifest


def iter_tar_samples(path: Path):
    """Yield samples (dicts: extension -> bytes) from one tar read front to back, raising
    ShardError on truncation or interleaved keys (validation and schema-1 upgrades read this way)."""
    seen: set[str] = set()
    current: dict | None = None
    try:
        with tarfile.open(path, "r|") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                name = Path(info.name).name
                if "." not in name:
                    raise ShardError(f"{path}: member '{info.name}' has no extension (expected KEY.EXT)")
                key, ext = name.split(".", 1)
                data = tar.extractfile(info).read()
                if current is None or key != current["__key__"]:
                    if current is not None:
                        yield current
                        seen.add(current["__key__"])
                    if key in seen:
                        raise ShardError(f"{path}: members of sample '{key}' are not contiguous (interleaved keys; "
                                         "write members sorted by key)")
                    current = {"__key__": key}
                if ext in current:
                    raise ShardError(f"{path}: duplicate member '{info.name}'")
                current[ext] = data
    except tarfile.TarError as exc:
        raise ShardError(f"{path}: not a readable tar ({exc}); truncated or corrupt") from exc
    if current is not None:
        yield current

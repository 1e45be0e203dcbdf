"""Random access to clips in schema-2 shards: an index read, then only the frames asked for.

    reader = ShardReader()                         # one per process; counts every byte it reads
    index = reader.index(path, clip_record)        # meta + arrays + frame offsets (one ranged read)
    rgb, matte = reader.frame(index, t, c)         # two ranged reads of exactly that frame's members
    clip = load_clip(shard_dir, key)               # a whole Clip (refinement, evaluation)

Memory is one index plus the frames in hand, never a whole clip (unless load_clip is asked for
one). `validate_shards` reads every shard front to back and checks it against its manifest.
"""

from __future__ import annotations

import io
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sa0.data.schema import FLAME_FIELDS, Clip, ClipError, ClipMeta, FlameTrack, validate_clip
from sa0.fsutil import sha256_file
from sa0.data.shards import ARRAY_MEMBERS, MANIFEST, ShardError, frame_member, iter_tar_samples, read_manifest


@dataclass(frozen=True)
class ClipIndex:
    """One clip's index: meta (meta.json), arrays (viewmats (T, C, 4, 4), ks, face_boxes,
    flame_<name> (T, width)), offsets (T, C, 2, 2) [rgb | matte] x [offset, size], path of its shard."""

    meta: dict
    arrays: dict
    offsets: np.ndarray
    path: str

    @property
    def key(self) -> str:
        return ClipMeta(**self.clip_meta_fields()).key

    def clip_meta_fields(self) -> dict:
        return {k: self.meta[k] for k in ("subject", "clip_id", "dataset", "domain", "split", "schema_version")}

    @property
    def num_timesteps(self) -> int:
        return int(self.meta["num_timesteps"])

    @property
    def num_cameras(self) -> int:
        return int(self.meta["num_cameras"])

    def where(self) -> str:
        return f"{self.path} clip '{self.meta.get('dataset')}__{self.meta.get('subject')}__{self.meta.get('clip_id')}'"


def decode_image(data: bytes, mode: str, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert(mode))
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ShardError(f"{where} is not a decodable image ({exc})") from exc


class ShardReader:
    """Ranged reads from shard files (os.pread on a small cache of open files), counting bytes."""

    def __init__(self, max_open: int = 16):
        self.bytes_read = 0
        self.reads = 0
        self._files: OrderedDict[str, int] = OrderedDict()
        self._max_open = max_open

    def read(self, path: str, offset: int, size: int) -> bytes:
        fd = self._files.pop(path, None)
        if fd is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise ShardError(f"{path}: cannot be opened ({exc.strerror})") from exc
            while len(self._files) >= self._max_open:
                os.close(self._files.popitem(last=False)[1])
        self._files[path] = fd
        data = os.pread(fd, size, offset)
        self.bytes_read += len(data)
        self.reads += 1
        if len(data) != size:
            raise ShardError(f"{path}: {size} bytes wanted at offset {offset}, got {len(data)} (truncated shard?)")
        return data

    def index(self, path: str, record: dict) -> ClipIndex:
        """The index of the clip `record` (a manifest clip entry) in shard `path`: one ranged read."""
        (i_off, i_len), (m_off, m_len) = record["index"], record["meta"]
        start, end = min(i_off, m_off), max(i_off + i_len, m_off + m_len)
        span = self.read(path, start, end - start)
        where = f"{path} clip '{record['key']}'"
        try:
            meta = json.loads(span[m_off - start: m_off - start + m_len])
            with np.load(io.BytesIO(span[i_off - start: i_off - start + i_len]), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
            raise ShardError(f"{where}: index or meta member unreadable ({exc})") from exc
        missing = [n for n in ARRAY_MEMBERS + ("frame_offsets",) if n not in arrays]
        if missing:
            raise ShardError(f"{where}: index has no {missing}")
        t, c = int(meta["num_timesteps"]), int(meta["num_cameras"])
        if arrays["frame_offsets"].shape != (t, c, 2, 2) or arrays["viewmats"].shape != (t, c, 4, 4):
            raise ShardError(f"{where}: index arrays {arrays['frame_offsets'].shape} / {arrays['viewmats'].shape} "
                             f"do not match meta's {t} timesteps x {c} cameras")
        return ClipIndex(meta, arrays, arrays.pop("frame_offsets"), path)

    def frame(self, index: ClipIndex, t: int, c: int) -> tuple[np.ndarray, np.ndarray]:
        """-> RGB (H, W, 3) and matte (H, W) uint8 of timestep t, camera c."""
        (rgb_off, rgb_len), (matte_off, matte_len) = index.offsets[t, c].tolist()
        fmt, shape = index.meta.get("image_format", "png"), (int(index.meta["height"]), int(index.meta["width"]))
        where = f"{index.where()} member '{frame_member(t, c, 'rgb', fmt)}'"
        rgb = decode_image(self.read(index.path, rgb_off, rgb_len), "RGB", where)
        matte = decode_image(self.read(index.path, matte_off, matte_len), "L",
                             f"{index.where()} member '{frame_member(t, c, 'matte')}'")
        if rgb.shape[:2] != shape or matte.shape != shape:
            raise ShardError(f"{where}: image {rgb.shape} / matte {matte.shape}, meta says {shape}")
        return rgb, matte

    def clip(self, index: ClipIndex) -> Clip:
        """The whole clip, every frame decoded, validated."""
        t, c, h, w = index.num_timesteps, index.num_cameras, int(index.meta["height"]), int(index.meta["width"])
        images, mattes = np.zeros((t, c, h, w, 3), np.uint8), np.zeros((t, c, h, w), np.uint8)
        for ti in range(t):
            for ci in range(c):
                images[ti, ci], mattes[ti, ci] = self.frame(index, ti, ci)
        a = index.arrays
        clip = Clip(ClipMeta(**index.clip_meta_fields()), images, mattes, a["viewmats"], a["ks"], a["face_boxes"],
                    FlameTrack(**{n: a[f"flame_{n}"] for n in FLAME_FIELDS}), dict(index.meta.get("extras") or {}))
        return validate_clip(clip, index.where())

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def __del__(self):
        self.close()


def clip_records(shard_dirs) -> list[tuple[str, dict]]:
    """(shard file path, manifest clip record) for every clip of the directories, in manifest order."""
    out = []
    for directory in map(Path, shard_dirs):
        for shard in read_manifest(directory)["shards"]:
            out.extend((str(directory / shard["file"]), record) for record in shard["clips"])
    return out


def list_clip_keys(shard_dirs) -> list[tuple[str, str]]:
    """(shard directory, clip key) for every clip the directories' manifests list, in manifest order."""
    return [(str(Path(path).parent), record["key"]) for path, record in clip_records(shard_dirs)]


def load_clip(shard_dir, key: str, reader: ShardReader | None = None) -> Clip:
    """The clip `key` from the shard directory whose manifest lists it."""
    reader = reader or ShardReader()
    for path, record in clip_records([shard_dir]):
        if record["key"] == key:
            return reader.clip(reader.index(path, record))
    raise ShardError(f"{shard_dir}: clip '{key}' is listed nowhere in its manifest")


def validate_shards(shard_dir) -> dict[str, list[str]]:
    """Check every shard in a directory; returns {file: [problems]} (empty lists when fine): manifest
    schema, files missing or unlisted, checksums, tar structure, every clip's index and frames."""
    root = Path(shard_dir)
    report: dict[str, list[str]] = {}
    try:
        manifest = read_manifest(root)
    except ShardError as exc:
        manifest = None
        report[MANIFEST] = [str(exc)]
    expected = {s["file"]: s for s in manifest["shards"]} if manifest else {}
    files = sorted(p.name for p in root.glob("*.tar"))
    if not files:
        report[str(root)] = ["no .tar shards found"]
    for name in sorted(set(expected) - set(files)):
        report[name] = ["listed in the manifest but missing"]
    reader = ShardReader()
    for name in files:
        path, problems = root / name, []
        info = expected.get(name)
        if manifest is not None and info is None:
            problems.append("not listed in the manifest")
        elif info is not None and sha256_file(path) != info["sha256"]:
            problems.append("SHA-256 differs from the manifest (modified or truncated)")
        try:
            keys = [sample["__key__"] for sample in iter_tar_samples(path)]
        except ShardError as exc:
            problems.append(str(exc))
            keys = None
        if info is not None and keys is not None:
            if keys != [r["key"] for r in info["clips"]]:
                problems.append(f"holds clips {keys}, the manifest lists {[r['key'] for r in info['clips']]}")
            for record in info["clips"]:
                try:
                    reader.clip(reader.index(str(path), record))
                except (ShardError, ClipError) as exc:
                    problems.append(str(exc))
        report[name] = problems
    reader.close()
    return report

"""WebDataset shards of clips: writing, decoding, manifest and validation.

One sample per clip, key = ClipMeta.key. Members (all contiguous, written sorted by name):
  KEY.meta.json                 ClipMeta fields + num_timesteps, num_cameras, height, width, image_format
  KEY.viewmats.npy / ks.npy / face_boxes.npy / flame_<name>.npy   arrays (allow_pickle=False)
  KEY.fTTTTT_cCC.png|jpg        RGB of timestep T, camera C
  KEY.fTTTTT_cCC.matte.png      8-bit matte
Clips are written in key order, so keys are sorted across each shard too. A shard closes once it
exceeds `max_shard_bytes`; `manifest.json` lists shards, clips, subjects, frames, splits and each
shard's SHA-256. `validate_shards` checks every file (truncated tars, interleaved keys, missing or
undecodable members, contract violations, checksums) and reports per file.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from sa0.data.schema import FLAME_FIELDS, Clip, ClipError, ClipMeta, FlameTrack, validate_clip

MANIFEST = "manifest.json"
ARRAY_MEMBERS = ("viewmats", "ks", "face_boxes") + tuple(f"flame_{name}" for name in FLAME_FIELDS)


class ShardError(ValueError):
    """A shard file or sample is unreadable or malformed; the message names the file and member."""


def frame_member(t: int, c: int, kind: str = "rgb", image_format: str = "png") -> str:
    stem = f"f{t:05d}_c{c:02d}"
    return f"{stem}.matte.png" if kind == "matte" else f"{stem}.{image_format}"


def _encode_image(array: np.ndarray, image_format: str) -> bytes:
    buf = io.BytesIO()
    if image_format == "jpg":
        Image.fromarray(array).save(buf, format="JPEG", quality=95)
    else:
        Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def clip_to_sample(clip: Clip, image_format: str = "png") -> dict[str, bytes]:
    """Encode a (validated) clip as one WebDataset sample: member extension -> bytes."""
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    t, c, h, w = clip.images.shape[:4]
    meta = {**asdict(clip.meta), "num_timesteps": t, "num_cameras": c, "height": h, "width": w,
            "image_format": image_format}
    sample = {"__key__": clip.meta.key, "meta.json": json.dumps(meta, sort_keys=True).encode()}
    arrays = {"viewmats": clip.viewmats, "ks": clip.Ks, "face_boxes": clip.face_boxes}
    arrays.update({f"flame_{k}": v for k, v in clip.flame.as_dict().items()})
    for name, array in arrays.items():
        sample[f"{name}.npy"] = _npy(array.astype(np.float32))
    for ti in range(t):
        for ci in range(c):
            sample[frame_member(ti, ci, "rgb", image_format)] = _encode_image(clip.images[ti, ci], image_format)
            sample[frame_member(ti, ci, "matte")] = _encode_image(clip.mattes[ti, ci], "png")
    return sample


def _member(sample: dict, name: str, source: str) -> bytes:
    value = sample.get(name)
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ShardError(f"{source}: sample '{sample.get('__key__')}' has no member '{name}'")
    return bytes(value)


def read_meta(sample: dict, source: str) -> dict:
    try:
        return json.loads(_member(sample, "meta.json", source))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardError(f"{source}: sample '{sample.get('__key__')}' member 'meta.json' is not JSON ({exc})") from exc


def read_array(sample: dict, name: str, source: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(_member(sample, f"{name}.npy", source)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ShardError(f"{source}: sample '{sample.get('__key__')}' member '{name}.npy' is not a valid array ({exc})") from exc


def read_image(sample: dict, name: str, source: str, mode: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(_member(sample, name, source))) as img:
            return np.asarray(img.convert(mode))
    except ShardError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ShardError(f"{source}: sample '{sample.get('__key__')}' member '{name}' is not a decodable image ({exc})") from exc


def sample_to_clip(sample: dict, source: str, frames: Iterable[tuple[int, int]] | None = None) -> Clip:
    """Decode a sample into a validated Clip. `frames` limits image decoding to those (t, c)
    pairs (others stay zero) for example building; None decodes every frame."""
    meta = read_meta(sample, source)
    t, c, h, w = (int(meta[k]) for k in ("num_timesteps", "num_cameras", "height", "width"))
    fmt = meta.get("image_format", "png")
    images = np.zeros((t, c, h, w, 3), dtype=np.uint8)
    mattes = np.zeros((t, c, h, w), dtype=np.uint8)
    wanted = [(ti, ci) for ti in range(t) for ci in range(c)] if frames is None else list(frames)
    for ti, ci in wanted:
        rgb = read_image(sample, frame_member(ti, ci, "rgb", fmt), source, "RGB")
        matte = read_image(sample, frame_member(ti, ci, "matte"), source, "L")
        if rgb.shape != (h, w, 3) or matte.shape != (h, w):
            raise ShardError(f"{source}: sample '{sample.get('__key__')}' frame {ti} camera {ci} has image "
                             f"{rgb.shape} / matte {matte.shape}, meta says {(h, w)}")
        images[ti, ci], mattes[ti, ci] = rgb, matte
    arrays = {name: read_array(sample, name, source) for name in ARRAY_MEMBERS}
    clip_meta = ClipMeta(**{k: meta[k] for k in ("subject", "clip_id", "dataset", "domain", "split", "schema_version")})
    clip = Clip(
        meta=clip_meta, images=images, mattes=mattes, viewmats=arrays["viewmats"], Ks=arrays["ks"],
        face_boxes=arrays["face_boxes"],
        flame=FlameTrack(**{name: arrays[f"flame_{name}"] for name in FLAME_FIELDS}),
    )
    return validate_clip(clip, f"{source} sample '{sample.get('__key__')}'")


@dataclass
class ShardInfo:
    file: str
    clips: list[str] = field(default_factory=list)
    bytes: int = 0
    sha256: str = ""


def write_shards(clips: Iterable[Clip], out_dir, prefix: str = "shard", max_shard_bytes: int = 256 << 20,
                 image_format: str = "png") -> dict:
    """Validate and write clips into size-bounded shards plus manifest.json, streaming.

    Clips must arrive in strictly ascending key order (ClipMeta.key), which keeps every shard's
    samples sorted and makes duplicates detectable without holding clips in memory.
    """
    import webdataset as wds

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[ShardInfo] = []
    writer, size, previous = None, 0, None
    totals = {"clips": 0, "frames": 0, "subjects": set(), "splits": Counter()}
    try:
        for clip in clips:
            key = clip.meta.key
            if previous is not None and key <= previous:
                what = "duplicate clip key" if key == previous else "clips out of key order"
                raise ClipError(f"{what}: '{key}' after '{previous}'; (dataset, subject, clip_id) must be unique "
                                "and clips written in ascending key order")
            previous = key
            validate_clip(clip, f"clip '{key}'")
            sample = clip_to_sample(clip, image_format)
            if writer is None or size >= max_shard_bytes:
                if writer is not None:
                    writer.close()
                shards.append(ShardInfo(file=f"{prefix}-{len(shards):06d}.tar"))
                writer, size = wds.TarWriter(str(out / shards[-1].file), encoder=False, mtime=0.0), 0
            size += writer.write(sample)
            shards[-1].clips.append(clip.meta.key)
            totals["clips"] += 1
            totals["frames"] += clip.num_timesteps * clip.num_cameras
            totals["subjects"].add(clip.meta.subject)
            totals["splits"][clip.meta.split] += 1
    finally:
        if writer is not None:
            writer.close()
    for info in shards:
        data = (out / info.file).read_bytes()
        info.bytes, info.sha256 = len(data), hashlib.sha256(data).hexdigest()
    manifest = {
        "schema_version": 1,
        "clips": totals["clips"],
        "frames": totals["frames"],
        "subjects": sorted(totals["subjects"]),
        "splits": dict(sorted(totals["splits"].items())),
        "image_format": image_format,
        "shards": [asdict(info) for info in shards],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def iter_tar_samples(path: Path):
    """Yield samples (dicts) from one tar, raising ShardError on truncation or interleaved keys."""
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


def validate_shards(shard_dir) -> dict[str, list[str]]:
    """Check every shard in a directory; returns {file: [problems]} (empty lists when fine)."""
    root = Path(shard_dir)
    manifest_path = root / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    expected = {s["file"]: s for s in manifest["shards"]} if manifest else {}
    report: dict[str, list[str]] = {}
    files = sorted(p.name for p in root.glob("*.tar"))
    if not files:
        report[str(root)] = ["no .tar shards found"]
    if manifest is None:
        report[MANIFEST] = [f"missing {MANIFEST}"]
    for name in sorted(set(expected) - set(files)):
        report[name] = ["listed in the manifest but missing"]
    for name in files:
        path = root / name
        problems = []
        if manifest is not None:
            info = expected.get(name)
            if info is None:
                problems.append("not listed in the manifest")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != info["sha256"]:
                problems.append("SHA-256 differs from the manifest (modified or truncated)")
        try:
            for sample in iter_tar_samples(path):
                try:
                    sample_to_clip(sample, str(path))
                except (ShardError, ClipError) as exc:
                    problems.append(str(exc))
        except ShardError as exc:
            problems.append(str(exc))
        report[name] = problems
    return report


def list_clip_keys(shard_dirs) -> list[tuple[str, str]]:
    """(shard directory, clip key) for every clip the directories' manifests list, in manifest order."""
    out = []
    for directory in map(Path, shard_dirs):
        manifest = directory / MANIFEST
        if not manifest.is_file():
            raise ShardError(f"{directory}: no {MANIFEST} (not a directory written by make_shards.py)")
        for shard in json.loads(manifest.read_text())["shards"]:
            out.extend((str(directory), key) for key in shard["clips"])
    return out


def load_clip(shard_dir, key: str) -> Clip:
    """The clip `key` from the shard directory whose manifest lists it."""
    directory = Path(shard_dir)
    for shard in json.loads((directory / MANIFEST).read_text())["shards"]:
        if key in shard["clips"]:
            for sample in iter_tar_samples(directory / shard["file"]):
                if sample["__key__"] == key:
                    return sample_to_clip(sample, str(directory / shard["file"]))
    raise ShardError(f"{directory}: clip '{key}' is listed nowhere in its manifest")

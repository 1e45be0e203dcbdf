"""Shards written by sa0 before schema 2 (one WebDataset sample per clip, no frame index):
read front to back and decoded whole, to be rewritten as schema 2 (`make_shards.py upgrade`).

Schema-1 sample members: KEY.meta.json, KEY.<array>.npy (viewmats, ks, face_boxes, flame_<name>),
KEY.fTTTTT_cCC.png|jpg and KEY.fTTTTT_cCC.matte.png.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from sa0.data.reader import decode_image
from sa0.data.schema import FLAME_FIELDS, SCHEMA_VERSION, Clip, ClipError, ClipMeta, FlameTrack, validate_clip
from sa0.data.shards import ARRAY_MEMBERS, MANIFEST, frame_member, iter_tar_samples


def _member(sample: dict, name: str, where: str) -> bytes:
    if name not in sample:
        raise ClipError(f"{where}: no member '{name}'")
    return sample[name]


def sample_to_clip(sample: dict, where: str) -> Clip:
    meta = json.loads(_member(sample, "meta.json", where))
    t, c, h, w = (int(meta[k]) for k in ("num_timesteps", "num_cameras", "height", "width"))
    fmt = meta.get("image_format", "png")
    images, mattes = np.zeros((t, c, h, w, 3), np.uint8), np.zeros((t, c, h, w), np.uint8)
    for ti in range(t):
        for ci in range(c):
            images[ti, ci] = decode_image(_member(sample, frame_member(ti, ci, "rgb", fmt), where), "RGB", where)
            mattes[ti, ci] = decode_image(_member(sample, frame_member(ti, ci, "matte"), where), "L", where)
    arrays = {n: np.load(io.BytesIO(_member(sample, f"{n}.npy", where)), allow_pickle=False) for n in ARRAY_MEMBERS}
    fields = {k: meta[k] for k in ("subject", "clip_id", "dataset", "domain", "split")}
    clip = Clip(ClipMeta(**fields, schema_version=SCHEMA_VERSION), images, mattes, arrays["viewmats"], arrays["ks"],
                arrays["face_boxes"], FlameTrack(**{n: arrays[f"flame_{n}"] for n in FLAME_FIELDS}))
    return validate_clip(clip, where)


def read_schema1(directory):
    """Yield every clip of a schema-1 shard directory, in key order."""
    directory = Path(directory)
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest.get("schema_version") != 1:
        raise ClipError(f"{directory / MANIFEST}: schema {manifest.get('schema_version')}, not a schema-1 directory")
    for shard in manifest["shards"]:
        for sample in iter_tar_samples(directory / shard["file"]):
            yield sample_to_clip(sample, f"{directory / shard['file']} sample '{sample['__key__']}'")

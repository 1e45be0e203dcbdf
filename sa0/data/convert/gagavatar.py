"""GAGAvatar_track outputs (VFHQ, HDTF, CelebV-HQ as preprocessed by that tracker).

Layout: img_lmdb/ (LMDB; key `<video>_<frame>` -> JPEG/PNG bytes of a 512^2 crop, already matted
onto black), optim.pkl (per key: bbox (4,) normalised by 512, shapecode (300,), expcode (100,),
posecode (6,) = global + jaw, eyecode (6,), transform_matrix (3, 4)), dataset.json (split ->
keys). One clip per video.

Camera convention (from GAGAvatar's renderer): the tracker's FLAME vertices are scaled by
verts_scale = 5; transform_matrix [R | T] is used as the 3DGS view matrix [[R, 0], [T, 1]] with
its first two columns negated, i.e. camera = diag(-1, -1, 1) (R^T x + T); the focal length is
12 in units of half the image size, principal point at the centre. So, in metres and OpenCV axes:
R_cv = diag(-1, -1, 1) R^T, t_cv = diag(-1, -1, 1) T / verts_scale, fx = fy = 12 W / 2.
Head motion lives in the camera; the neck pose is zero. Mattes are not stored by the tracker:
sa0 takes pixels brighter than `matte_threshold` in any channel as foreground (an approximation,
recorded in the clip's extras).
"""

from __future__ import annotations

import io
import json
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from sa0.data.convert.common import FLIP_XY, as_width, pinhole, skip_from, view_matrix
from sa0.data.schema import ClipError, ClipMeta, ClipSource, Timestep, materialise


def _frame_index(key: str) -> int:
    return int(key.rsplit("_", 1)[1])


def _video(key: str) -> str:
    return key.rsplit("_", 1)[0]


def _check(src: Path, records: str) -> None:
    for name in (records, "dataset.json", "img_lmdb"):
        if not (src / name).exists():
            raise ClipError(f"{src / name}: not found (a GAGAvatar_track output has img_lmdb/, optim.pkl, dataset.json)")


def _videos(src: Path) -> dict[str, list[str]]:
    splits = json.loads((src / "dataset.json").read_text())
    videos = defaultdict(list)
    for keys in splits.values():
        for key in keys:
            videos[_video(key)].append(key)
    return videos


def units(src, dataset: str = "gagavatar", records: str = "optim.pkl") -> list[str]:
    """One unit per video, in clip-key order."""
    src = Path(src)
    _check(src, records)
    return sorted(_videos(src), key=lambda v: ClipMeta(v, v, dataset, "x", "train").key)


def convert_gagavatar(src, dataset: str = "gagavatar", domain: str | None = None, verts_scale: float = 5.0,
                      focal: float = 12.0, matte_threshold: int = 8, records: str = "optim.pkl"):
    """Yield one validated Clip per video, in key order (any bad frame raises ClipError)."""
    for source in sources(src, units(src, dataset, records), dataset=dataset, domain=domain, verts_scale=verts_scale,
                          focal=focal, matte_threshold=matte_threshold, records=records):
        yield materialise(source)


def sources(src, videos, dataset: str = "gagavatar", domain: str | None = None, verts_scale: float = 5.0,
            focal: float = 12.0, matte_threshold: int = 8, records: str = "optim.pkl"):
    """One ClipSource per listed video (the tracker's records are loaded once for all of them); a
    frame that is missing, undecodable or malformed becomes a Skip naming the key and field."""
    import lmdb

    src = Path(src)
    _check(src, records)
    with open(src / records, "rb") as fh:
        tracks = pickle.load(fh)  # the user's own tracker output
    splits = json.loads((src / "dataset.json").read_text())
    split_of = {key: split for split, keys in splits.items() for key in keys}
    frames = _videos(src)
    env = lmdb.open(str(src / "img_lmdb"), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for video in sorted(videos, key=lambda v: ClipMeta(v, v, dataset, "x", "train").key):
                keys = sorted(frames[video], key=_frame_index)
                split_set = {split_of[k] for k in keys}
                if len(split_set) != 1:
                    raise ClipError(f"{src / 'dataset.json'}: video '{video}' has frames in several splits "
                                    f"{sorted(split_set)}")
                meta = ClipMeta(subject=video, clip_id=video, dataset=dataset, domain=domain or dataset,
                                split=split_set.pop())
                extras = {"matte_source": f"pixels brighter than {matte_threshold}", "frame_keys": keys, "head": "flame"}
                yield ClipSource(meta, _timesteps(src, txn, tracks, keys, verts_scale, focal, matte_threshold),
                                 f"{src} video '{video}'", extras)
    finally:
        env.close()


def _timesteps(src, txn, tracks, keys, verts_scale, focal, threshold):
    def timesteps():
        for key in keys:
            try:
                yield _timestep(src, txn, tracks, key, verts_scale, focal, threshold)
            except ClipError as exc:
                yield skip_from(exc)

    return timesteps


def _timestep(src, txn, tracks, key, verts_scale, focal, threshold) -> Timestep:
    payload = txn.get(key.encode())
    if payload is None:
        raise ClipError(f"{src / 'img_lmdb'}: key '{key}' listed in dataset.json is missing")
    try:
        image = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
    except Exception as exc:
        raise ClipError(f"{src / 'img_lmdb'}: key '{key}' is not a decodable image ({exc})") from exc
    if key not in tracks:
        raise ClipError(f"{src / 'optim.pkl'}: no record for frame '{key}'")
    rec = tracks[key]
    h, w = image.shape[:2]
    source = f"{src / 'optim.pkl'} frame '{key}'"
    M = np.asarray(rec["transform_matrix"], dtype=np.float64).reshape(3, 4)
    view = view_matrix(FLIP_XY @ M[:, :3].T, FLIP_XY @ M[:, 3] / verts_scale)
    K = pinhole(focal * w / 2, focal * h / 2, w / 2, h / 2)
    box = as_width(rec["bbox"], 4, source, "bbox") * [w, h, w, h]
    pose = as_width(rec["posecode"], 6, source, "posecode")
    flame = {"shape": np.asarray(rec["shapecode"], np.float32).reshape(-1),
             "expression": np.asarray(rec["expcode"], np.float32).reshape(-1), "global_rot": pose[:3],
             "neck": np.zeros(3, np.float32), "jaw": pose[3:], "eyes": as_width(rec["eyecode"], 6, source, "eyecode"),
             "translation": np.zeros(3, np.float32)}
    matte = np.where(image.max(-1) > threshold, 255, 0).astype(np.uint8)
    return Timestep(image[None], matte[None], view[None], K[None], np.asarray(box, np.float32)[None], flame, source)

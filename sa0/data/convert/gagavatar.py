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

from sa0.data.convert.common import FLIP_XY, as_width, pinhole, view_matrix
from sa0.data.schema import Clip, ClipError, ClipMeta, FlameTrack, validate_clip


def _frame_index(key: str) -> int:
    return int(key.rsplit("_", 1)[1])


def _video(key: str) -> str:
    return key.rsplit("_", 1)[0]


def convert_gagavatar(src, dataset: str = "gagavatar", domain: str | None = None, verts_scale: float = 5.0,
                      focal: float = 12.0, matte_threshold: int = 8, records: str = "optim.pkl"):
    """Yield one validated Clip per video, in key order."""
    import lmdb

    src = Path(src)
    for name in (records, "dataset.json", "img_lmdb"):
        if not (src / name).exists():
            raise ClipError(f"{src / name}: not found (a GAGAvatar_track output has img_lmdb/, optim.pkl, dataset.json)")
    with open(src / records, "rb") as fh:
        tracks = pickle.load(fh)  # the user's own tracker output
    splits = json.loads((src / "dataset.json").read_text())
    split_of = {key: split for split, keys in splits.items() for key in keys}
    videos = defaultdict(list)
    for key in split_of:
        videos[_video(key)].append(key)
    env = lmdb.open(str(src / "img_lmdb"), readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            for video in sorted(videos, key=lambda v: ClipMeta(v, v, dataset, "x", "train").key):
                keys = sorted(videos[video], key=_frame_index)
                yield _video_clip(src, txn, tracks, split_of, video, keys, dataset, domain or dataset,
                                  verts_scale, focal, matte_threshold)
    finally:
        env.close()


def _video_clip(src, txn, tracks, split_of, video, keys, dataset, domain, verts_scale, focal, threshold) -> Clip:
    split_set = {split_of[k] for k in keys}
    if len(split_set) != 1:
        raise ClipError(f"{src / 'dataset.json'}: video '{video}' has frames in several splits {sorted(split_set)}")
    images, views, Ks, boxes = [], [], [], []
    flame = defaultdict(list)
    for key in keys:
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
        M = np.asarray(rec["transform_matrix"], dtype=np.float64).reshape(3, 4)
        views.append(view_matrix(FLIP_XY @ M[:, :3].T, FLIP_XY @ M[:, 3] / verts_scale))
        Ks.append(pinhole(focal * w / 2, focal * h / 2, w / 2, h / 2))
        boxes.append(as_width(rec["bbox"], 4, f"{src / 'optim.pkl'} frame '{key}'", "bbox") * [w, h, w, h])
        source = f"{src / 'optim.pkl'} frame '{key}'"
        pose = as_width(rec["posecode"], 6, source, "posecode")
        flame["shape"].append(np.asarray(rec["shapecode"], np.float32).reshape(-1))
        flame["expression"].append(np.asarray(rec["expcode"], np.float32).reshape(-1))
        flame["global_rot"].append(pose[:3])
        flame["neck"].append(np.zeros(3, np.float32))
        flame["jaw"].append(pose[3:])
        flame["eyes"].append(as_width(rec["eyecode"], 6, source, "eyecode"))
        flame["translation"].append(np.zeros(3, np.float32))
        images.append(image)
    imgs = np.stack(images)[:, None]
    mattes = np.where(imgs.max(-1) > threshold, 255, 0).astype(np.uint8)
    clip = Clip(
        meta=ClipMeta(subject=video, clip_id=video, dataset=dataset, domain=domain, split=split_set.pop()),
        images=imgs, mattes=mattes, viewmats=np.stack(views)[:, None], Ks=np.stack(Ks)[:, None],
        face_boxes=np.stack(boxes).astype(np.float32)[:, None],
        flame=FlameTrack(**{k: np.stack(v).astype(np.float32) for k, v in flame.items()}),
        extras={"matte_source": f"pixels brighter than {threshold}", "frame_keys": keys},
    )
    return validate_clip(clip, f"{src} video '{video}'")

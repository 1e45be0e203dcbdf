"""A tiny hand-made clip for data tests (no rendering): identity cameras, flat images."""

import numpy as np

from sa0.data.schema import Clip, ClipMeta, FlameTrack


def tiny_clip(timesteps=3, cameras=2, height=8, width=10, subject="s01", clip_id="c0", split="train", seed=0) -> Clip:
    rng = np.random.default_rng(seed)
    t, c = timesteps, cameras
    view = np.tile(np.eye(4, dtype=np.float32), (t, c, 1, 1))
    view[..., 2, 3] = 1.0
    K = np.tile(np.array([[10.0, 0, width / 2], [0, 10.0, height / 2], [0, 0, 1]], dtype=np.float32), (t, c, 1, 1))
    f = lambda n: rng.normal(size=(t, n)).astype(np.float32)  # noqa: E731
    return Clip(
        meta=ClipMeta(subject=subject, clip_id=clip_id, dataset="tiny", domain="test", split=split),
        images=rng.integers(0, 256, size=(t, c, height, width, 3), dtype=np.uint8),
        mattes=rng.integers(0, 256, size=(t, c, height, width), dtype=np.uint8),
        viewmats=view,
        Ks=K,
        face_boxes=np.tile(np.array([1.0, 1.0, width - 1.0, height - 1.0], dtype=np.float32), (t, c, 1)),
        flame=FlameTrack(f(20), f(10), f(3), f(3), f(3), f(6), f(3)),
    )


def indexed(clips, directory):
    """Write clips to shards in `directory`; -> (ShardReader, {key: ClipIndex})."""
    from sa0.data.reader import ShardReader, clip_records
    from sa0.data.shards import write_shards

    write_shards(sorted(clips, key=lambda c: c.meta.key), directory)
    reader = ShardReader()
    return reader, {record["key"]: reader.index(path, record) for path, record in clip_records([directory])}


def corrupt_member(shard_dir, key_part: str, member: str, data: bytes = b"not an image") -> None:
    """Overwrite one member's bytes (same length, so every offset stays valid) in every clip whose
    key contains `key_part`, and update the manifest's checksum: only that member is bad."""
    import json
    import tarfile
    from pathlib import Path

    from sa0.fsutil import sha256_file

    root = Path(shard_dir)
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["shards"]:
        keys = [r["key"] for r in entry["clips"] if key_part in r["key"]]
        if not keys:
            continue
        path = root / entry["file"]
        with tarfile.open(path) as tar:
            spots = [(m.offset_data, m.size) for m in tar.getmembers() if m.name in {f"{k}.{member}" for k in keys}]
        assert spots, f"no member {member} in {path}"
        with open(path, "r+b") as fh:
            for offset, size in spots:
                fh.seek(offset)
                fh.write((data * (size // len(data) + 1))[:size])
        entry["sha256"] = sha256_file(path)
    (root / "manifest.json").write_text(json.dumps(manifest))


def write_vhap(clip, directory, corrupt_png=None, nan_flame=None) -> None:
    """Write a clip as a VHAP export (transforms_train.json, images/, fg_masks/, flame_param/).
    corrupt_png=(t, c): that image's file holds garbage; nan_flame=(t, npz key): a NaN in that field."""
    import json
    from pathlib import Path

    from PIL import Image

    from sa0.data.convert.common import FLIP_YZ

    root = Path(directory)
    for sub in ("images", "fg_masks", "flame_param"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    keys = {"shape": "shape", "expression": "expr", "global_rot": "rotation", "neck": "neck_pose", "jaw": "jaw_pose",
            "eyes": "eyes_pose", "translation": "translation"}
    frames = []
    for t in range(clip.num_timesteps):
        params = {key: getattr(clip.flame, name)[t][None].copy() for name, key in keys.items()}
        if nan_flame is not None and nan_flame[0] == t:
            params[nan_flame[1]][0, 1] = np.nan
        np.savez(root / "flame_param" / f"{t:05d}.npz", **params)
        for c in range(clip.num_cameras):
            image = root / "images" / f"{t:05d}_{c:02d}.png"
            Image.fromarray(clip.images[t, c]).save(image)
            if corrupt_png == (t, c):
                image.write_bytes(b"\x89PNG garbage")
            Image.fromarray(clip.mattes[t, c]).save(root / "fg_masks" / f"{t:05d}_{c:02d}.png")
            w2c = np.eye(4)
            w2c[:3, :3] = FLIP_YZ @ clip.viewmats[t, c, :3, :3]
            w2c[:3, 3] = FLIP_YZ @ clip.viewmats[t, c, :3, 3]
            K = clip.Ks[t, c]
            frames.append({"file_path": f"images/{t:05d}_{c:02d}.png", "fg_mask_path": f"fg_masks/{t:05d}_{c:02d}.png",
                           "flame_param_path": f"flame_param/{t:05d}.npz",
                           "transform_matrix": np.linalg.inv(w2c).tolist(), "fl_x": float(K[0, 0]),
                           "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
                           "timestep_index": t, "camera_index": c})
    (root / "transforms_train.json").write_text(json.dumps({"frames": frames}))

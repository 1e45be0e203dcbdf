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


def corrupt_member(shard_dir, key_part: str, member: str, data: bytes = b"not an image") -> None:
    """Replace one member of every sample whose key contains `key_part` and rewrite its shard,
    keeping manifest.json's byte count in step (so only the member itself is bad)."""
    import io
    import json
    import tarfile
    from pathlib import Path

    from sa0.data.shards import iter_tar_samples

    root = Path(shard_dir)
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["shards"]:
        if not any(key_part in key for key in entry["clips"]):
            continue
        path = root / entry["file"]
        samples = list(iter_tar_samples(path))
        for sample in samples:
            if key_part in sample["__key__"]:
                sample[member] = data
        with tarfile.open(path, "w") as tar:
            for sample in samples:
                for ext in sorted(k for k in sample if k != "__key__"):
                    info = tarfile.TarInfo(f"{sample['__key__']}.{ext}")
                    info.size = len(sample[ext])
                    tar.addfile(info, io.BytesIO(sample[ext]))
        entry["bytes"] = path.stat().st_size
    (root / "manifest.json").write_text(json.dumps(manifest))

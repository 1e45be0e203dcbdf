"""Shards: lossless round trip, size-bounded sharding, manifest, validation of broken files."""

import io
import json
import tarfile

import numpy as np
import pytest

from sa0.data.schema import ClipError
from sa0.data.shards import (
    MANIFEST,
    ShardError,
    clip_to_sample,
    iter_tar_samples,
    sample_to_clip,
    validate_shards,
    write_shards,
)
from tests.data.clips import tiny_clip


@pytest.fixture
def clips():
    return [tiny_clip(subject=s, clip_id=c, seed=i, split="test" if s == "s02" else "train")
            for i, (s, c) in enumerate((("s01", "a"), ("s01", "b"), ("s02", "a")))]


def _read_all(out):
    manifest = json.loads((out / MANIFEST).read_text())
    samples = [s for shard in manifest["shards"] for s in iter_tar_samples(out / shard["file"])]
    return manifest, samples


def test_round_trip_is_lossless_and_sorted(tmp_path, clips):
    manifest = write_shards(clips, tmp_path)
    assert manifest["clips"] == 3 and manifest["frames"] == 3 * 3 * 2
    assert manifest["subjects"] == ["s01", "s02"] and manifest["splits"] == {"test": 1, "train": 2}
    _, samples = _read_all(tmp_path)
    keys = [s["__key__"] for s in samples]
    assert keys == sorted(keys) == ["tiny__s01__a", "tiny__s01__b", "tiny__s02__a"]
    by_key = {c.meta.key: c for c in clips}
    for sample in samples:
        back = sample_to_clip(sample, "test")
        orig = by_key[sample["__key__"]]
        np.testing.assert_array_equal(back.images, orig.images)
        np.testing.assert_array_equal(back.mattes, orig.mattes)
        np.testing.assert_array_equal(back.viewmats, orig.viewmats)
        np.testing.assert_array_equal(back.flame.eyes, orig.flame.eyes)
        assert back.meta == orig.meta
    assert validate_shards(tmp_path) == {"shard-000000.tar": []}


def test_partial_decode_only_touches_requested_frames(clips):
    sample = clip_to_sample(clips[0])
    clip = sample_to_clip(sample, "x", frames=[(1, 1)])
    np.testing.assert_array_equal(clip.images[1, 1], clips[0].images[1, 1])
    assert clip.images[0].max() == 0


def test_jpeg_images_are_close(tmp_path):
    smooth = tiny_clip(height=32, width=32)
    yy, xx = np.mgrid[:32, :32]
    images = np.broadcast_to(np.stack((xx * 8, yy * 8, xx * 4 + yy * 4), -1).astype(np.uint8), smooth.images.shape)
    clip = type(smooth)(**{**smooth.__dict__, "images": np.ascontiguousarray(images)})
    write_shards([clip], tmp_path, image_format="jpg")
    _, (sample,) = _read_all(tmp_path)
    assert "f00000_c00.jpg" in sample
    back = sample_to_clip(sample, "x")
    assert np.abs(back.images.astype(int) - clip.images.astype(int)).mean() < 3


def test_shards_roll_over_at_the_size_bound(tmp_path, clips):
    manifest = write_shards(clips, tmp_path, max_shard_bytes=1)
    assert [s["clips"] for s in manifest["shards"]] == [["tiny__s01__a"], ["tiny__s01__b"], ["tiny__s02__a"]]
    assert all(len(s["sha256"]) == 64 and s["bytes"] > 0 for s in manifest["shards"])
    assert all(not problems for problems in validate_shards(tmp_path).values())


def test_duplicate_and_unsorted_keys_are_refused(tmp_path, clips):
    with pytest.raises(ClipError, match="duplicate clip key: 'tiny__s01__c0'"):
        write_shards([tiny_clip(), tiny_clip(seed=1)], tmp_path)
    with pytest.raises(ClipError, match="out of key order: 'tiny__s01__b' after 'tiny__s02__a'"):
        write_shards(clips[::-1], tmp_path)


def test_truncated_tar_is_named(tmp_path, clips):
    write_shards(clips, tmp_path, max_shard_bytes=1)
    path = tmp_path / "shard-000001.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = validate_shards(tmp_path)
    assert report["shard-000000.tar"] == [] and report["shard-000002.tar"] == []
    problems = " ".join(report["shard-000001.tar"])
    assert "SHA-256 differs" in problems and "truncated" in problems


def _write_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_interleaved_keys_are_named(tmp_path, clips):
    write_shards(clips[:2], tmp_path)
    samples = [clip_to_sample(c) for c in clips[:2]]
    members = [(f"{s['__key__']}.{ext}", data) for s in samples for ext, data in s.items() if ext != "__key__"]
    members.append(members.pop(0))  # first sample's first member moved to the end
    _write_tar(tmp_path / "shard-000000.tar", members)
    problems = " ".join(validate_shards(tmp_path)["shard-000000.tar"])
    assert "not contiguous" in problems and samples[0]["__key__"] in problems
    with pytest.raises(ShardError, match="interleaved"):
        list(iter_tar_samples(tmp_path / "shard-000000.tar"))


def test_undecodable_image_is_named(tmp_path, clips):
    write_shards(clips[:1], tmp_path)
    (sample,) = iter_tar_samples(tmp_path / "shard-000000.tar")
    sample["f00001_c00.png"] = b"\x89PNG but not really"
    _write_tar(tmp_path / "shard-000000.tar",
               [(f"{sample['__key__']}.{k}", v) for k, v in sorted(sample.items()) if k != "__key__"])
    problems = validate_shards(tmp_path)["shard-000000.tar"]
    assert any("member 'f00001_c00.png' is not a decodable image" in p for p in problems)


def test_pickled_arrays_are_refused(clips):
    sample = clip_to_sample(clips[0])
    buf = io.BytesIO()
    np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    sample["viewmats.npy"] = buf.getvalue()
    with pytest.raises(ShardError, match="viewmats.npy' is not a valid array"):
        sample_to_clip(sample, "x.tar")

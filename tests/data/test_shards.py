"""Shards (schema 2): lossless round trip through the frame index, tars readable as WebDataset,
ranged reads of single frames, size-bounded sharding, streaming writes that drop bad timesteps,
validation of broken files, schema-1 refusal."""

import json
import tarfile

import numpy as np
import pytest

from sa0.data.reader import ShardReader, clip_records, load_clip, validate_shards
from sa0.data.schema import ClipError, Skip, Timestep, clip_source
from sa0.data.shards import MANIFEST, ShardError, ShardWriter, iter_tar_samples, read_manifest, write_shards
from tests.data.clips import corrupt_member, tiny_clip


@pytest.fixture
def clips():
    return [tiny_clip(subject=s, clip_id=c, seed=i, split="test" if s == "s02" else "train")
            for i, (s, c) in enumerate((("s01", "a"), ("s01", "b"), ("s02", "a")))]


def test_round_trip_is_lossless_and_sorted(tmp_path, clips):
    manifest = write_shards(clips, tmp_path)
    assert manifest["clips"] == 3 and manifest["frames"] == 3 * 3 * 2 and manifest["schema_version"] == 2
    assert manifest["subjects"] == ["s01", "s02"] and manifest["splits"] == {"test": 1, "train": 2}
    for orig in clips:
        back = load_clip(tmp_path, orig.meta.key)
        for name in ("images", "mattes", "viewmats", "Ks", "face_boxes"):
            np.testing.assert_array_equal(getattr(back, name), getattr(orig, name), err_msg=name)
        np.testing.assert_array_equal(back.flame.eyes, orig.flame.eyes)
        assert back.meta == orig.meta
    assert validate_shards(tmp_path) == {"shard-000000.tar": []}


def test_a_shard_is_one_webdataset_sample_per_clip_with_sorted_members(tmp_path, clips):
    import webdataset as wds

    write_shards(clips, tmp_path)
    samples = list(iter_tar_samples(tmp_path / "shard-000000.tar"))
    assert [s["__key__"] for s in samples] == [c.meta.key for c in clips]
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        names = [m.name for m in tar.getmembers()]
    assert names == sorted(names)  # contiguous per clip and sorted by name within it
    assert sorted(k for k in samples[0] if k != "__key__")[-2:] == ["index.npz", "meta.json"]
    theirs = list(wds.WebDataset(str(tmp_path / "shard-000000.tar"), shardshuffle=False))
    assert [s["__key__"] for s in theirs] == [c.meta.key for c in clips]
    assert theirs[1]["f00002_c01.png"] == samples[1]["f00002_c01.png"]


def test_one_frame_costs_its_own_bytes_and_the_index(tmp_path, clips):
    write_shards(clips, tmp_path)
    (path, record), *_ = clip_records([tmp_path])
    reader = ShardReader()
    index = reader.index(path, record)
    span = max(record["meta"][0] + record["meta"][1], record["index"][0] + record["index"][1]) - record["index"][0]
    assert reader.bytes_read == span and reader.reads == 1
    rgb, matte = reader.frame(index, 2, 1)
    np.testing.assert_array_equal(rgb, clips[0].images[2, 1])
    np.testing.assert_array_equal(matte, clips[0].mattes[2, 1])
    assert reader.bytes_read == span + int(index.offsets[2, 1, :, 1].sum()) and reader.reads == 3


def test_jpeg_images_are_close(tmp_path):
    smooth = tiny_clip(height=32, width=32)
    yy, xx = np.mgrid[:32, :32]
    images = np.broadcast_to(np.stack((xx * 8, yy * 8, xx * 4 + yy * 4), -1).astype(np.uint8), smooth.images.shape)
    clip = type(smooth)(**{**smooth.__dict__, "images": np.ascontiguousarray(images)})
    write_shards([clip], tmp_path, image_format="jpg")
    (sample,) = iter_tar_samples(tmp_path / "shard-000000.tar")
    assert "f00000_c00.jpg" in sample
    back = load_clip(tmp_path, clip.meta.key)
    assert np.abs(back.images.astype(int) - clip.images.astype(int)).mean() < 3


def test_shards_roll_over_at_the_size_bound(tmp_path, clips):
    manifest = write_shards(clips, tmp_path, max_shard_bytes=1)
    assert [[r["key"] for r in s["clips"]] for s in manifest["shards"]] == [["tiny__s01__a"], ["tiny__s01__b"],
                                                                         ["tiny__s02__a"]]
    assert all(len(s["sha256"]) == 64 and s["bytes"] > 0 for s in manifest["shards"])
    assert all(not problems for problems in validate_shards(tmp_path).values())
    assert not list(tmp_path.glob("*.tmp"))


def test_duplicate_and_unsorted_keys_are_refused(tmp_path, clips):
    with pytest.raises(ClipError, match="duplicate clip key: 'tiny__s01__c0'"):
        write_shards([tiny_clip(), tiny_clip(seed=1)], tmp_path)
    with pytest.raises(ClipError, match="out of key order: 'tiny__s01__b' after 'tiny__s02__a'"):
        write_shards(clips[::-1], tmp_path / "b")
    assert not list((tmp_path / "b").glob("*.tar*"))  # the abandoned shard is gone, temp file included


def test_streaming_writer_drops_bad_timesteps_and_names_them(tmp_path):
    clip = tiny_clip(timesteps=4, cameras=2)
    good = list(clip_source(clip).timesteps())
    nan_flame = {**good[2].flame, "jaw": np.array([0.0, np.nan, 0.0], np.float32)}
    bad = Timestep(good[2].images, good[2].mattes, good[2].viewmats, good[2].Ks, good[2].face_boxes, nan_flame,
                   "flame_param/00002.npz")
    steps = [good[0], Skip("images/00001_00.png", "cannot be decoded as an image"), bad, good[3]]
    src = type(clip_source(clip))(clip.meta, lambda: iter(steps), "subjA")
    with pytest.raises(ClipError, match="00001_00.png"):
        ShardWriter(tmp_path / "strict").add(src)
    writer = ShardWriter(tmp_path / "lenient", strict=False)
    record, problems = writer.add(src)
    writer.close()
    assert record["timesteps"] == 2
    assert "images/00001_00.png: cannot be decoded" in problems[0]
    assert "flame_param/00002.npz" in problems[1] and "flame.jaw" in problems[1] and "nan" in problems[1]
    reader = ShardReader()
    back = reader.clip(reader.index(str(tmp_path / "lenient" / "shard-000000.tar"), record))
    np.testing.assert_array_equal(back.images, clip.images[[0, 3]])


def test_a_clip_with_no_usable_timestep_leaves_no_bytes(tmp_path, clips):
    writer = ShardWriter(tmp_path, strict=False)
    writer.add(clips[0])
    size = writer._tar.size
    empty = type(clip_source(clips[1]))(clips[1].meta, lambda: iter([Skip("x.png", "unreadable")]), "subjB")
    record, problems = writer.add(empty)
    assert record is None and "no usable timestep" in problems[-1] and writer._tar.size == size
    (shard,) = writer.close()
    assert [r["key"] for r in shard["clips"]] == [clips[0].meta.key]
    assert [s["__key__"] for s in iter_tar_samples(tmp_path / shard["file"])] == [clips[0].meta.key]


def test_truncated_tar_is_named(tmp_path, clips):
    write_shards(clips, tmp_path, max_shard_bytes=1)
    path = tmp_path / "shard-000001.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = validate_shards(tmp_path)
    assert report["shard-000000.tar"] == [] and report["shard-000002.tar"] == []
    problems = " ".join(report["shard-000001.tar"])
    assert "SHA-256 differs" in problems and "truncated" in problems


def test_undecodable_image_is_named(tmp_path, clips):
    write_shards(clips[:1], tmp_path)
    corrupt_member(tmp_path, "s01__a", "f00001_c00.png")
    problems = validate_shards(tmp_path)["shard-000000.tar"]
    assert any("member 'f00001_c00.png' is not a decodable image" in p for p in problems), problems


def test_schema_1_shards_are_refused_with_the_rewrite_command(tmp_path, clips):
    write_shards(clips[:1], tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps({**manifest, "schema_version": 1}))
    with pytest.raises(ShardError, match=r"shard schema 1; .*make_shards.py upgrade"):
        read_manifest(tmp_path)
    assert "make_shards.py upgrade" in validate_shards(tmp_path)[MANIFEST][0]


def _write_schema1(directory, clip):
    """A shard directory as sa0 wrote it before schema 2: one sample per clip, no index."""
    import io
    from dataclasses import asdict

    from sa0.data.shards import encode_image, frame_member, npy_bytes

    directory.mkdir(parents=True)
    t, c, h, w = clip.images.shape[:4]
    meta = {**asdict(clip.meta), "schema_version": 1, "num_timesteps": t, "num_cameras": c, "height": h, "width": w,
            "image_format": "png"}
    members = {"meta.json": json.dumps(meta).encode(), "viewmats.npy": npy_bytes(clip.viewmats),
               "ks.npy": npy_bytes(clip.Ks), "face_boxes.npy": npy_bytes(clip.face_boxes)}
    members.update({f"flame_{k}.npy": npy_bytes(v) for k, v in clip.flame.as_dict().items()})
    for ti in range(t):
        for ci in range(c):
            members[frame_member(ti, ci)] = encode_image(clip.images[ti, ci], "png")
            members[frame_member(ti, ci, "matte")] = encode_image(clip.mattes[ti, ci], "png")
    with tarfile.open(directory / "shard-000000.tar", "w") as tar:
        for ext in sorted(members):
            info = tarfile.TarInfo(f"{clip.meta.key}.{ext}")
            info.size = len(members[ext])
            tar.addfile(info, io.BytesIO(members[ext]))
    (directory / MANIFEST).write_text(json.dumps({"schema_version": 1, "shards": [
        {"file": "shard-000000.tar", "clips": [clip.meta.key]}]}))


def test_make_shards_upgrade_rewrites_schema_1_losslessly(tmp_path):
    import subprocess
    import sys

    clip = tiny_clip(timesteps=3, cameras=2)
    _write_schema1(tmp_path / "old", clip)
    with pytest.raises(ShardError, match="upgrade"):
        load_clip(tmp_path / "old", clip.meta.key)
    done = subprocess.run([sys.executable, "jobs/make_shards.py", "upgrade", str(tmp_path / "old"), "--out",
                           str(tmp_path / "new")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    back = load_clip(tmp_path / "new", clip.meta.key)
    np.testing.assert_array_equal(back.images, clip.images)
    np.testing.assert_array_equal(back.flame.expression, clip.flame.expression)
    assert validate_shards(tmp_path / "new") == {"shard-000000.tar": []}

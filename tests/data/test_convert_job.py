"""Conversion as a Ray job: bad frames skipped and named, --strict fatal, a converter task killed
mid-write retried without a partial shard, reruns that convert nothing, a driver stopped between
moving a shard and listing it, and the make_shards CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sa0.data.convert.run import REPORT, STAGING, ConversionError, ConvertConfig, convert_dataset
from sa0.data.reader import load_clip, validate_shards
from sa0.data.shards import MANIFEST
from tests.data.clips import tiny_clip, write_vhap
from tests.ray_local import local_ray

pytestmark = pytest.mark.ray
T = 5


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    return tmp_path_factory.mktemp("fault") / "crashed"


@pytest.fixture(scope="module")
def ray_session(marker):
    # The task converting source "crashme" dies (os._exit) after writing its first clip, once.
    with local_ray(num_cpus=2, env_vars={"SA0_FAULT_INJECT": f"convert-crashme:mid-shard:{marker}"}) as ray:
        yield ray


def _sources(root: Path, names=("subjA", "subjB", "subjC"), bad="subjB", cameras=2):
    for i, name in enumerate(names):
        clip = tiny_clip(timesteps=T, cameras=cameras, height=16, width=16, subject=name, seed=i)
        kw = {"corrupt_png": (1, 0), "nan_flame": (3, "jaw_pose")} if name == bad else {}
        write_vhap(clip, root / name, **kw)
    return [str(root / n) for n in names]


def _cfg(sources, out, **kw):
    return ConvertConfig(format="vhap", sources=tuple(sources), out=str(out), dataset="nersemble", **kw)


def test_bad_frames_are_skipped_and_named_good_clips_convert(ray_session, tmp_path):
    sources = _sources(tmp_path / "src")
    report = convert_dataset(_cfg(sources, tmp_path / "out"), progress=False)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["clips"] == 3 and manifest["subjects"] == ["subjA", "subjB", "subjC"]
    timesteps = {r["subject"]: r["timesteps"] for s in manifest["shards"] for r in s["clips"]}
    assert timesteps == {"subjA": T, "subjB": T - 2, "subjC": T}
    problems = [p["problem"] for p in report["problems"]]
    assert len(problems) == 2
    assert "images/00001_00.png" in problems[0] and "cannot be decoded" in problems[0]
    assert "flame_param/00003.npz" in problems[1] and "'jaw_pose'" in problems[1] and "nan" in problems[1]
    assert json.loads((tmp_path / "out" / REPORT).read_text())["problems"] == report["problems"]
    assert all(not p for p in validate_shards(tmp_path / "out").values())
    assert not (tmp_path / "out" / STAGING).exists()
    back = load_clip(tmp_path / "out", "nersemble__subjB__train")
    assert back.num_timesteps == T - 2 and back.num_cameras == 2


def test_strict_stops_at_the_first_problem(ray_session, tmp_path):
    with pytest.raises(ConversionError, match="00001_00.png"):
        convert_dataset(_cfg(_sources(tmp_path / "src"), tmp_path / "out", strict=True), progress=False)


def test_killed_task_is_retried_and_leaves_no_partial_shard(ray_session, tmp_path, marker):
    sources = _sources(tmp_path / "src", names=("crashme", "other"), bad=None, cameras=1)
    # the crash comes after the clip is written into the task's temporary shard, before it is closed
    report = convert_dataset(_cfg(sources, tmp_path / "out", units_per_task=1), progress=False)
    assert marker.exists()  # the task did die once
    assert report["clips"] == 2 and not report["problems"]
    out = tmp_path / "out"
    assert not list(out.rglob("*.tmp")) and not (out / STAGING).exists()
    assert all(not p for p in validate_shards(out).values())


def test_rerun_converts_nothing_and_a_stopped_driver_resumes(ray_session, tmp_path):
    sources = _sources(tmp_path / "src", bad=None)
    out = tmp_path / "out"
    first = convert_dataset(_cfg(sources, out), progress=False)
    manifest_bytes = (out / MANIFEST).read_bytes()
    assert convert_dataset(_cfg(sources, out), progress=False)["tasks_run"] == 0
    assert (out / MANIFEST).read_bytes() == manifest_bytes
    # A driver killed after moving subjC's shard into place but before listing it:
    manifest = json.loads(manifest_bytes)
    (task_id,) = [k for k, v in manifest["conversion"]["tasks"].items() if v["source"].endswith("subjC")]
    del manifest["conversion"]["tasks"][task_id]
    manifest["shards"] = [s for s in manifest["shards"] if task_id not in s["file"]]
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / STAGING / "leftover").mkdir(parents=True)
    again = convert_dataset(_cfg(sources, out), progress=False)
    assert again["tasks_run"] == 1 and again["clips"] == first["clips"] == 3
    assert (out / MANIFEST).read_bytes() == manifest_bytes
    assert not (out / STAGING).exists()


def test_make_shards_convert_cli(tmp_path):
    sources = _sources(tmp_path / "src", names=("subjA", "subjB"))
    job = [sys.executable, "jobs/make_shards.py", "convert", "--format", "vhap", "--src", *sources]
    env = {**__import__("os").environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(job + ["--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr  # finished, with problems to look at
    assert "wrote 2 clips" in done.stdout and "2 problem(s)" in done.stdout
    assert "00001_00.png" in done.stderr and "jaw_pose" in done.stderr
    strict = subprocess.run(job + ["--out", str(tmp_path / "strict"), "--strict"], capture_output=True, text=True,
                            env=env)
    assert strict.returncode == 2 and "error:" in strict.stderr and "00001_00.png" in strict.stderr
    check = subprocess.run([sys.executable, "jobs/make_shards.py", "validate", str(tmp_path / "out")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_an_empty_split_beside_converted_ones_is_a_note_not_a_problem(ray_session, tmp_path):
    """LAM's monocular VHAP exports carry a transforms_val.json with no frames (measured on the real one)."""
    from tests.conftest import shared_data

    src = shared_data("real", "vhap_export_lam")
    report = convert_dataset(_cfg([src], tmp_path / "out"), progress=False)
    assert report["problems"] == [] and report["clips"] == 2
    assert len(report["notes"]) == 1 and "transforms_val.json: no frames" in report["notes"][0]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "transforms_train.json").write_text('{"frames": []}')
    report = convert_dataset(_cfg([empty], tmp_path / "out2"), progress=False)
    assert report["clips"] == 0 and "no frames" in report["problems"][0]["problem"], "all empty stays a problem"

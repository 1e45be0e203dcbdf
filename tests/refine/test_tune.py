"""The anti-spike sweep: a tiny sweep finishes; a killed sweep resumes and finishes."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.refine.shards import mono_shards

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, synthetic_dir):
    root = mono_shards(tmp_path_factory.mktemp("tune_shards"), synthetic_dir, subjects=1, seed=7)
    return root


def _command(tmp_path, shards, synthetic_dir, steps, samples):
    (tmp_path / "val.txt").write_text("subj0000\n")
    return [sys.executable, "jobs/tune_antispike.py", "--subjects", str(tmp_path / "val.txt"), "--shards", str(shards),
            "--storage", str(tmp_path / "tune"), "--name", "sweep", "--samples", str(samples), "--steps", str(steps),
            "--flame-dir", str(synthetic_dir), "--uv-resolution", "16"]


def _env(tmp_path):
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="sa0r", dir="/tmp")  # Unix socket paths must stay short
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp}, ray_tmp


def _stop_leftovers(marker: str) -> None:
    """Stop only processes that belong to this test's Ray temp dir."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def test_tiny_sweep_finishes_and_prints_overrides(tmp_path, shards, synthetic_dir):
    env, marker = _env(tmp_path)
    try:
        done = subprocess.run(_command(tmp_path, shards, synthetic_dir, 20, 2), capture_output=True, text=True,
                              env=env, timeout=600)
    finally:
        _stop_leftovers(marker)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best trial: score" in done.stdout
    assert "--set refine.aspect_weight=" in done.stdout and "--set refine.scale_freeze_steps=" in done.stdout


def test_killed_sweep_resumes(tmp_path, shards, synthetic_dir):
    env, marker = _env(tmp_path)
    cmd = _command(tmp_path, shards, synthetic_dir, 150, 3)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        state = tmp_path / "tune" / "sweep"
        deadline = time.time() + 300
        while time.time() < deadline and not list(state.glob("*/result.json")):
            time.sleep(1)
        assert list(state.glob("*/result.json")), "no trial reported before the deadline"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies mid-sweep
        proc.wait()
        _stop_leftovers(marker)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    finally:
        _stop_leftovers(marker)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "best trial: score" in done.stdout
    assert len([d for d in state.iterdir() if d.is_dir()]) == 3  # the same three trials, not a new sweep

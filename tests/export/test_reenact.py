"""Reenactment: an avatar package driven by another subject's clip."""

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.export.package import load_package, save_package
from sa0.gaussians import init_local_gaussians
from sa0.head import load_head_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory, synthetic_dir):
    root = tmp_path_factory.mktemp("reenact")
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=24))
    write_shards(synthetic_clips(head, "mono", 2, 1, 6, 1, 48, DOMAINS["studio"], seed=5), root / "shards")
    local = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
    save_package(root / "avatar.npz", local, head.layout, np.zeros(300, np.float32), {"subject": "synthetic"})
    return root, head


def test_package_round_trip(setup):
    root, head = setup
    pkg = load_package(root / "avatar.npz")
    assert pkg.uv_resolution == 24 and len(pkg.face_idx) == head.num_gaussians and pkg.meta["subject"] == "synthetic"


def test_reenact_cli_writes_a_moving_video(setup, synthetic_dir, tmp_path):
    root, _ = setup
    out = tmp_path / "drive.mp4"
    job = [sys.executable, "jobs/reenact.py", "--avatar", str(root / "avatar.npz"), "--driver", "subj0001",
           "--shards", str(root / "shards"), "--flame-dir", str(synthetic_dir), "--uv-resolution", "24"]
    done = subprocess.run(job + ["--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    frames = iio.imread(out)
    assert frames.shape == (6, 48, 48, 3)
    assert (frames < 200).any(-1).mean() > 0.1  # the head covers part of the white background
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 30  # it moves
    wrong = subprocess.run(job[:-2] + ["--uv-resolution", "16", "--out", str(tmp_path / "x.mp4")],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "made at UV resolution 24" in wrong.stderr

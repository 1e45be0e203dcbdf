"""Synthetic clips and the make_shards job: valid, deterministic, varied, and validate's exit code."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.schema import validate_clip
from sa0.data.synthetic import DOMAINS, Domain, synthetic_clips
from sa0.head import load_head_model


@pytest.fixture(scope="module")
def head(synthetic_dir):
    return load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=48))


def _clips(head, kind="mono", seed=0, domain="studio", **kw):
    args = dict(subjects=2, clips_per_subject=1, timesteps=3, views=3, resolution=48) | kw
    return list(synthetic_clips(head, kind, args["subjects"], args["clips_per_subject"], args["timesteps"],
                                args["views"], args["resolution"], DOMAINS[domain], seed=seed, test_subjects=1))


def test_mono_and_multiview_clips_are_valid(head):
    mono, mv = _clips(head, "mono"), _clips(head, "multiview")
    for clip in mono + mv:
        validate_clip(clip)
        assert 0.1 < (clip.mattes > 128).mean() < 0.9  # a head in the frame, background around it
    assert mono[0].num_cameras == 1 and mv[0].num_cameras == 3
    assert [c.meta.split for c in mono] == ["train", "test"]
    # mono: one camera that moves; multiview: fixed cameras
    assert not np.allclose(mono[0].viewmats[0], mono[0].viewmats[-1])
    np.testing.assert_array_equal(mv[0].viewmats[0], mv[0].viewmats[-1])


def test_deterministic_per_seed_and_varied_across_subjects(head):
    a, b, c = _clips(head, seed=4), _clips(head, seed=4), _clips(head, seed=5)
    np.testing.assert_array_equal(a[0].images, b[0].images)
    assert not np.array_equal(a[0].images, c[0].images)
    assert not np.allclose(a[0].flame.shape[0], a[1].flame.shape[0])  # different identities


def test_domains_differ(head):
    studio, outdoor = _clips(head, domain="studio", seed=1), _clips(head, domain="outdoor", seed=1)
    assert studio[0].meta.domain == "studio" and outdoor[0].meta.domain == "outdoor"
    background = lambda clip: clip.images[clip.mattes < 5].mean()  # noqa: E731
    assert background(outdoor[0]) > background(studio[0]) + 50
    with pytest.raises(ValueError, match="ambient"):
        Domain(ambient=2.0)


def test_make_shards_synthetic_then_validate(tmp_path, synthetic_dir):
    job = [sys.executable, "jobs/make_shards.py"]
    out = tmp_path / "mv"
    subprocess.run(job + ["synthetic", "--kind", "multiview", "--subjects", "2", "--frames", "2", "--views", "2",
                          "--res", "32", "--uv-resolution", "32", "--flame-dir", str(synthetic_dir), "--out", str(out)],
                   check=True, capture_output=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips"] == 2 and manifest["frames"] == 8
    ok = subprocess.run(job + ["validate", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0 and "1 ok, 0 with problems" in ok.stdout
    shard = out / manifest["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-3000])
    bad = subprocess.run(job + ["validate", str(out)], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL shard-000000.tar" in bad.stdout and "SHA-256" in bad.stdout

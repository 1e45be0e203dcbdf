"""The real-video novel-view split: yaws from the posed face, the split itself, and a whole case on a
tracked clip sa0 renders (its truth known)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from sa0.eval.novel_view import exact_capture, tracked_capture, truth_subject
from sa0.eval.yaw_split import head_yaws, real_case, yaw_split
from sa0.heads import ICT_NAME, chosen_head
from sa0.refine import RefineConfig


@pytest.fixture(scope="module")
def truth():
    return truth_subject(9101, frames=12, size=96, texture_size=256)


def test_split_holds_out_the_largest_turns_and_a_frontal_control():
    yaws = np.array([1.0, -2, 14, 3, -0.5, -12, 2, 0, 9, -1, 4, 0.2])
    split = yaw_split(yaws, fraction=0.25)
    assert sorted(split.side.tolist()) == [2, 5, 8]  # |14|, |-12|, |9|
    assert len(split.frontal) == 3 and not set(split.frontal) & set(split.side)
    assert sorted(np.concatenate((split.train, split.frontal, split.side)).tolist()) == list(range(12))
    assert np.abs(yaws[split.frontal]).max() < 9  # near-frontal, spread over the clip
    assert split.frontal.max() - split.frontal.min() >= 4
    with pytest.raises(ValueError, match="need at least"):
        yaw_split(np.zeros(3), fraction=0.3)


def test_yaws_follow_the_heads_turn(truth):
    capture = exact_capture(truth, 32)
    yaws = head_yaws(capture.head, capture.train)
    true = np.degrees(truth.params.global_rot[: capture.train.num_timesteps, 1].numpy())
    assert np.ptp(true) > 10  # the subject turns
    offset = yaws - np.sign(np.corrcoef(yaws, true)[0, 1]) * true
    assert abs(np.corrcoef(yaws, true)[0, 1]) > 0.99
    assert np.std(offset) < 1.0 and abs(np.mean(offset)) < 6.0  # the face's forward vs the head's rest axis


@pytest.mark.slow
def test_real_case_scores_a_tracked_clip(truth, tmp_path):
    with chosen_head(ICT_NAME) as (directory, _):
        tracked_capture(truth, directory, tmp_path / "tracked", 32, 96, photometric=False)
    cfg = replace(RefineConfig(steps=30, eval_every=0, images=0, log_every=30), unseen_silhouette_size=64)
    row = real_case(tmp_path / "tracked", cfg, fraction=0.25, uv_resolution=32)
    assert row["subject"] == "truth" and row["head"] == ICT_NAME
    assert row["side_frames"] == row["frontal_frames"] == 3 and row["train_frames"] == 6
    assert row["side_yaw_mean"] > row["train_yaw_mean"]
    assert 10 < row["frontal_psnr"] < 60 and 10 < row["side_psnr"] < 60
    assert row["gap_db"] == pytest.approx(row["frontal_psnr"] - row["side_psnr"], abs=1e-2)
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "manifest.json").write_text(json.dumps({"subjects": ["a", "b"]}))
    with pytest.raises(ValueError, match="'subjects' must name one subject"):
        real_case(tmp_path / "two", cfg)

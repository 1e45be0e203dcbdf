"""The optional photometric stage: it lowers the image loss by moving the meshes, not only by
fitting colours, and leaves the landmark fit where the landmarks put it."""

import numpy as np
import pytest

from sa0.track.frames import array_source
from sa0.track.photometric import PhotoConfig, loss_regions
from sa0.track.run import TrackConfig, track
from sa0.track.synthetic import truth_detector


@pytest.fixture(scope="module")
def short(video):
    return array_source(video.frames[:8], name="short")


def test_photometric_stage_lowers_the_image_loss_and_keeps_the_landmark_fit(tmp_path, head, embedding, video, short):
    det = truth_detector(video, noise_px=1.0)
    photo = PhotoConfig(steps=40, warmup=10, size=96, frames_per_step=2)
    plain = track(short, det, head, embedding, tmp_path / "plain", TrackConfig(size=128, overlay=False))
    polished = track(short, det, head, embedding, tmp_path / "photo", TrackConfig(size=128, overlay=False, photo=photo))
    stats = polished["photometric"]
    assert plain["photometric"] is None and stats["l1_after"] < 0.6 * stats["l1_before"], stats
    assert polished["frames_used"] == plain["frames_used"] == 8
    assert "photometric" in polished["frames_per_second"]
    # The landmark anchor and the prior keep each frame where its landmarks are (1 px noise at 512).
    before, after = plain["reprojection_px"]["median"], polished["reprojection_px"]["median"]
    assert after <= before + 0.15, (before, after)
    assert polished["reprojection_px"]["max"] <= 1.5 * np.sqrt(2) * 128 / 512 + 0.5


def test_loss_regions_cover_the_crop_or_the_grown_landmark_box():
    boxes = np.array([[10.0, 20.0, 30.0, 40.0]])
    assert loss_regions(boxes, 64, None).min() == 1.0
    box = loss_regions(boxes, 64, 0.1)[0]
    assert box[30, 20] == 1 and box[30, 45] == 0 and box[5, 20] == 0
    assert box.sum() == pytest.approx(24 * 24, abs=2 * 24 + 1)  # 20 px grown by 2 px each side


@pytest.mark.gpu
def test_tracking_with_the_photometric_stage_on_cuda_matches_cpu(tmp_path, head, embedding, video, short):
    """Fit and photometric stage on CUDA, the clip written from CPU: same frames, landmark error
    within 0.1 px of the CPU run (float order differs)."""
    photo = PhotoConfig(steps=10, warmup=2, size=64, frames_per_step=2)
    runs = {dev: track(short, truth_detector(video, noise_px=1.0), head, embedding, tmp_path / dev,
                       TrackConfig(size=128, overlay=False, device=dev, photo=photo)) for dev in ("cpu", "cuda")}
    assert runs["cuda"]["frames_used"] == runs["cpu"]["frames_used"] == 8
    assert abs(runs["cuda"]["reprojection_px"]["median"] - runs["cpu"]["reprojection_px"]["median"]) < 0.1

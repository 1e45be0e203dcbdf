"""The tracker on a real phone-style video with the ICT-FaceKit head (../shared/data/real/videos)."""

import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame.landmarks import load_mediapipe_embedding, with_irises
from sa0.head import load_head_model
from sa0.heads.ict import ict_dir
from sa0.track.frames import video_source
from sa0.track.photometric import PhotoConfig
from sa0.track.run import TrackConfig, track
from tests.conftest import shared_data
from tests.track.test_mediapipe import needs_mediapipe


@needs_mediapipe
@pytest.mark.slow
def test_ict_head_tracks_lp_d0_within_the_landmark_target(tmp_path):
    """The issue's target: every frame kept, median landmark error <= 2.5 px at 512^2 (5.38 px with
    the synthetic head). The photometric stage runs at a quarter of its default visits here to keep
    the test short; the default (80 visits) measured 2.47 px (benchmarks/results/novel_view_cpu_202612.md)."""
    from sa0.track.mp_detector import MediaPipeDetector

    video = shared_data("real", "videos", "lp_d0.mp4")
    head = load_head_model(FlameConfig(model_dir=str(ict_dir())), LayoutConfig(uv_resolution=64))
    embedding = with_irises(load_mediapipe_embedding(ict_dir(), len(head.faces)), head.flame)
    with MediaPipeDetector(static=False) as detector:
        report = track(video_source(video), detector, head, embedding, tmp_path / "lp_d0",
                       TrackConfig(photo=PhotoConfig(visits=20), overlay=False))
    assert report["frames_used"] == report["frames_read"] == 78
    assert report["reprojection_px"]["median"] <= 2.5, report["reprojection_px"]

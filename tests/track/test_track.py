"""The tracking job end to end: video file -> clip in sa0's contract, report, overlay; bad input."""

import json

import numpy as np
import pytest

from sa0.data.reader import validate_shards
from sa0.refine.subjects import load_subject_clips
from sa0.track.frames import TrackError, array_source, video_source
from sa0.track.photometric import PhotoConfig
from sa0.track.run import OVERLAY, REPORT, TrackConfig, track
from sa0.track.synthetic import truth_detector
from tests.track.conftest import write_mp4


@pytest.fixture(scope="module")
def phone(tmp_path_factory, video):
    """The synthetic video as an mp4, as a phone would give it."""
    return write_mp4(tmp_path_factory.mktemp("phone") / "phone.mp4", video.frames)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, head, embedding, video, phone):
    """Landmarks only; frame 5 has no face, frame 9 two."""
    out = tmp_path_factory.mktemp("track") / "out"
    det = truth_detector(video, noise_px=1.0, no_face=(5,), two_faces=(9,))
    return out, track(video_source(phone), det, head, embedding, out, TrackConfig(size=256, photo=None))


def test_video_becomes_a_valid_clip_with_report_and_overlay(tracked, video):
    out, report = tracked
    problems = validate_shards(out)
    assert problems and not any(problems.values()), problems
    clip = load_subject_clips("phone", [str(out)])[0]
    assert clip.images.shape == (22, 1, 256, 256, 3) and clip.meta.split == "train"
    assert report["frames_read"] == 24 and report["frames_used"] == 22
    assert report["skipped"] == {"no face": 1, "2 faces": 1}
    rows = {r["frame"]: r for r in report["per_frame"]}
    assert rows[5]["reason"] == "no face" and rows[9]["reason"] == "2 faces"
    assert json.loads((out / REPORT).read_text())["frames_used"] == 22
    assert report["reprojection_px"]["max"] <= 1.5 * np.sqrt(2) * 256 / 512 + 0.5
    # The matte is the detector's (here the true alpha) cropped: foreground inside the face box.
    box = clip.face_boxes[0, 0].astype(int)
    assert clip.mattes[0, 0, box[1]:box[3], box[0]:box[2]].mean() > 200
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(out / OVERLAY), format="ffmpeg")
    assert sum(1 for _ in reader) == 24  # every frame read is in it, skipped ones labelled
    reader.close()


def test_crop_is_stable_and_projects_the_fitted_mesh_onto_the_face(tracked):
    out, report = tracked
    clip = load_subject_clips("phone", [str(out)])[0]
    K = clip.Ks[:, 0]
    assert np.ptp(K[:, 0, 0]) < 1e-3 * K[0, 0, 0]  # one crop size for the clip
    assert np.abs(np.diff(K[:, 0, 2])).max() < 6  # principal point (crop centre) moves smoothly


def test_a_video_with_no_face_is_a_clear_error(tmp_path, head, embedding, video):
    blank = array_source(np.zeros((4, 64, 64, 3), np.uint8), name="blank.mp4")
    det = truth_detector(video, no_face=(0, 1, 2, 3))
    with pytest.raises(TrackError, match=r"blank.mp4: no usable frame \(4 read; skipped: \{'no face': 4\}\)"):
        track(blank, det, head, embedding, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(TrackError, match="broken.mp4: cannot be read as a video"):
        video_source(bad)
    with pytest.raises(TrackError, match="missing.mp4: video file not found"):
        video_source(tmp_path / "missing.mp4")


def test_track_job_reports_bad_input_and_exits_2(tmp_path, capsys):
    from jobs.track import main

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"junk")
    assert main(["--video", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "broken.mp4: cannot be read as a video" in capsys.readouterr().err
    assert main(["--images", str(tmp_path / "nothing_here")]) == 2
    assert "nothing_here: no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("photometric", [True, False], ids=["photometric", "landmarks-only"])
def test_refinement_from_tracked_parameters_is_close_to_refinement_from_the_truth(tmp_path_factory, tracked, phone,
                                                                                  head, embedding, video, photometric):
    """Short schedule (200 steps): same crops, same frames, same held-out fifth; only the FLAME
    parameters and cameras differ (fitted vs ground truth). With the photometric stage (the default)
    the issue's target holds: within 1 dB (bm_track: 0.66 dB at 1,000 steps, ~0.3 at 200). Landmarks
    alone leave ~2.3 dB, ~80% of it on the head's outline (cranium and neck carry no
    landmark), and stay within 3.5 dB."""
    from sa0.refine import RefineConfig, refine_subject
    from sa0.refine.subjects import train_test
    from sa0.track.synthetic import truth_twin

    out, report = tracked
    if photometric:
        out = tmp_path_factory.mktemp("photo") / "out"
        det = truth_detector(video, noise_px=1.0, no_face=(5,), two_faces=(9,))
        # sa0's synthetic video is drawn by Gaussians: its matte reaches past its mesh as the stage's own
        # Gaussians do, so the stage's correction for that reach (meant for cameras) is off here
        report = track(video_source(phone), det, head, embedding, out,
                       TrackConfig(size=256, overlay=False, photo=PhotoConfig(reach=False)))
    clip = load_subject_clips("phone", [str(out)])[0]
    cfg = RefineConfig(steps=200, scale_freeze_steps=50, log_every=100, eval_every=0, images=0, seed=0)
    psnr = {}
    for name, c in (("tracked", clip), ("truth", truth_twin(clip, video, report))):
        train, test = train_test([c])
        psnr[name] = refine_subject(head, train, cfg, test=test).metrics["final"]["psnr"]
    assert psnr["truth"] > 18, psnr  # the refinement itself works on these crops
    assert psnr["tracked"] >= psnr["truth"] - (1.0 if photometric else 3.5), psnr


@pytest.mark.ray
@pytest.mark.slow
def test_the_refine_command_track_prints_runs_as_written(tracked, flame_dir, tmp_path):
    """`track.py` ends with `next: python jobs/refine_batch.py --subjects <name> --shards <out>`: a
    subject id, not a list file. Run it as printed (short schedule, no MLflow) on the tracked clip."""
    import os
    import subprocess
    import sys

    out, report = tracked
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "SA0_FLAME_DIR": flame_dir}
    job = os.path.abspath("jobs/refine_batch.py")
    done = subprocess.run([sys.executable, job, "--subjects", report["subject"], "--shards", str(out),
                           "--uv-resolution", "16", "--steps", "5", "--no-mlflow"], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "refine" / report["subject"] / "avatar.npz").is_file()

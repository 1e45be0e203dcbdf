"""The photometric stage: it lowers the image loss by moving the meshes, not only by fitting
colours, and stays near the landmark fit."""

import numpy as np
import pytest

from sa0.track.frames import array_source
from sa0.track.photometric import PhotoConfig, below_chin, grown_mattes, loss_regions, outline_length
from sa0.track.run import TrackConfig, track
from sa0.track.synthetic import truth_detector


@pytest.fixture(scope="module")
def short(video):
    return array_source(video.frames[:8], name="short")


def test_photometric_stage_lowers_the_image_loss_and_keeps_the_landmark_fit(tmp_path, head, embedding, video, short):
    det = truth_detector(video, noise_px=1.0)
    # reach off: the synthetic video's matte is Gaussian alpha, which already reaches past its mesh
    photo = PhotoConfig(visits=10, warmup=10, size=96, frames_per_step=2, reach=False)
    plain = track(short, det, head, embedding, tmp_path / "plain", TrackConfig(size=128, overlay=False, photo=None))
    polished = track(short, det, head, embedding, tmp_path / "photo", TrackConfig(size=128, overlay=False, photo=photo))
    stats = polished["photometric"]
    assert plain["photometric"] is None and stats["l1_after"] < 0.6 * stats["l1_before"], stats
    assert polished["frames_used"] == plain["frames_used"] == 8
    assert "photometric" in polished["frames_per_second"]
    # The landmark anchor keeps each frame near where its landmarks put it: the stage may trade up to
    # the landmarks' own noise (1 px at 512, 0.25 px on these 128^2 crops) for the image and matte.
    before, after = plain["reprojection_px"]["median"], polished["reprojection_px"]["median"]
    assert after <= before + 0.25, (before, after)
    assert polished["reprojection_px"]["max"] <= 1.5 * np.sqrt(2) * 128 / 512 + 0.5


def test_loss_regions_cover_the_crop_or_the_grown_landmark_box():
    boxes = np.array([[10.0, 20.0, 30.0, 40.0]])
    assert loss_regions(boxes, 64, None).min() == 1.0
    box = loss_regions(boxes, 64, 0.1)[0]
    assert box[30, 20] == 1 and box[30, 45] == 0 and box[5, 20] == 0
    assert box.sum() == pytest.approx(24 * 24, abs=2 * 24 + 1)  # 20 px grown by 2 px each side


def test_each_frame_gets_the_same_number_of_renders_whatever_the_clip_length():
    cfg = PhotoConfig(visits=80, frames_per_step=4)
    assert cfg.steps_for(24) == 480 and cfg.steps_for(300) == 6000  # 80 renders of each frame
    assert cfg.steps_for(1) == 80 and cfg.steps_for(6) == 120  # a step renders at most the clip
    with pytest.raises(ValueError, match="visits >= 0"):
        PhotoConfig(visits=-1)


def test_below_chin_marks_the_rows_under_the_lowest_seen_landmark():
    lmk = np.array([[[10.0, 5.0], [20.0, 30.2], [np.nan, np.nan]], [[3.0, 60.0], [4.0, 2.0], [5.0, 7.0]]])
    below = below_chin(lmk, 64)
    assert below.shape == (2, 64)
    assert not below[0, :30].any() and below[0, 30:].all()  # row 30's centre is 30.5
    assert not below[1, :60].any() and below[1, 60:].all()


def _disc(radius: float, size: int = 96) -> np.ndarray:
    """A disc's matte, each pixel the covered fraction of 8 x 8 samples (soft edges, as a camera's)."""
    sub = (np.arange(size * 8) + 0.5) / 8 - size / 2
    inside = (sub[:, None] ** 2 + sub[None, :] ** 2) < radius ** 2
    return (inside.reshape(size, 8, size, 8).mean((1, 3)) * 255).round().astype(np.uint8)


def test_outline_length_measures_a_discs_circumference():
    for radius in (10.0, 25.0, 40.0):
        assert outline_length(_disc(radius) >= 128) == pytest.approx(2 * np.pi * radius, rel=0.06)
    assert outline_length(np.zeros((8, 8), bool)) == 0.0


def test_grown_mattes_move_the_outline_out_by_the_asked_distance():
    matte = _disc(20.0)[None]
    assert np.array_equal(grown_mattes(matte, 0.0), matte / np.float32(255.0))
    for by in (1.0, 2.5):
        grown = grown_mattes(matte, by)[0]
        assert (grown >= matte[0] / 255.0 - 1e-6).all()  # never below the matte
        radius = np.sqrt(grown.sum() / np.pi)  # the grown disc's area as a radius
        assert radius == pytest.approx(20.0 + by, abs=0.35), (by, radius)
    empty = np.zeros((1, 16, 16), np.uint8)  # a frame without a matte stays without one
    assert grown_mattes(empty, 2.0).max() == 0.0


@pytest.mark.gpu
def test_tracking_with_the_photometric_stage_on_cuda_matches_cpu(tmp_path, head, embedding, video, short):
    """Fit and photometric stage on CUDA, the clip written from CPU: same frames, landmark error
    within 0.1 px of the CPU run (float order differs)."""
    photo = PhotoConfig(visits=3, warmup=2, size=64, frames_per_step=2)
    runs = {dev: track(short, truth_detector(video, noise_px=1.0), head, embedding, tmp_path / dev,
                       TrackConfig(size=128, overlay=False, device=dev, photo=photo)) for dev in ("cpu", "cuda")}
    assert runs["cuda"]["frames_used"] == runs["cpu"]["frames_used"] == 8
    assert abs(runs["cuda"]["reprojection_px"]["median"] - runs["cpu"]["reprojection_px"]["median"]) < 0.1


def test_the_reach_correction_puts_the_mesh_outline_on_a_camera_matte(tmp_path):
    """A head filmed by a camera (the mesh-rasterised ICT truth, whose matte is the mesh's own outline):
    the stage's Gaussians reach past their mesh, so fitting their alpha to the matte shrinks the mesh;
    with the mattes grown by that reach the tracked mesh's outline lands on the truth's. Measured at
    this size: silhouette IoU 0.917 / 0.920 without, 0.959 / 0.963 with (0.88 -> 0.96 at 256^2, UV 32)."""
    from sa0.eval.novel_view import tracked_capture, truth_subject
    from sa0.heads import ICT_NAME, chosen_head
    from sa0.render.mesh import rasterize

    truth = truth_subject(9102, frames=10, size=128, texture_size=256)
    iou = {}
    for reach in (False, True):
        with chosen_head(ICT_NAME) as (directory, _):
            cap = tracked_capture(truth, directory, tmp_path / str(reach), 32, 128,
                                  photo=PhotoConfig(visits=30, size=128, reach=reach))
        verts, faces = cap.head.pose_track(cap.test.flame.as_dict()).double().numpy(), cap.head.faces.numpy()
        scores = []
        for i in range(cap.test.num_timesteps):
            mine = rasterize(verts[i], faces, cap.test.viewmats[i, 0].astype(np.float64),
                             cap.test.Ks[i, 0].astype(np.float64), 128, 128).mask
            true = rasterize(cap.true_verts[i], faces, cap.true_views[i], cap.true_Ks[i], 128, 128).mask
            scores.append((mine & true).sum() / (mine | true).sum())
        iou[reach] = float(np.mean(scores))
    assert iou[True] >= 0.95 and iou[True] >= iou[False] + 0.025, iou

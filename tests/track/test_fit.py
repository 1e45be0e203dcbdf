"""The FLAME + camera fit on ground truth: a synthetic video with known parameters, the detector
replaced by the projected true landmarks plus 1 px noise per coordinate."""

import numpy as np
import torch

from sa0.flame.landmarks import LandmarkLayer
from sa0.track.fit import FitConfig, camera_from_pose, fit_landmarks
from sa0.track.synthetic import fit_accuracy, truth_detector


def test_fit_recovers_landmarks_mesh_jaw_and_head_rotation_at_512(head, embedding, video):
    det = truth_detector(video, noise_px=1.0, seed=0)
    frames = len(video.frames)
    observed = np.stack([det.detect(None).faces[0][embedding.ids] for _ in range(frames)])
    layer = LandmarkLayer(head.flame, embedding)
    result = fit_landmarks(layer, observed, np.tile([512, 512], (frames, 1)), FitConfig())
    acc = fit_accuracy(head, layer, video, result.params, result.projected)
    assert acc["clean_rmse_px"] <= 1.5, acc  # against the noiseless truth
    assert np.sqrt(np.mean(result.error_px**2)) <= 1.5 * np.sqrt(2) + 0.3  # against the noisy detections
    assert acc["vertex_mm"] <= 3.0, acc  # front of the head, each frame centred (depth is up to the focal)
    assert acc["head_deg"] <= 3.0 and acc["jaw_deg"] <= 3.0, acc


def test_camera_from_pose_moves_head_motion_into_the_camera_exactly(head, embedding):
    layer = LandmarkLayer(head.flame, embedding)
    g = torch.Generator().manual_seed(0)
    from sa0.types import FlameParams

    n_s, n_e = head.flame.num_shape, head.flame.num_expression
    p = FlameParams(torch.randn(4, n_s, generator=g) * 0.5, torch.randn(4, n_e, generator=g) * 0.5,
                    torch.randn(4, 3, generator=g) * 0.3, torch.zeros(4, 3), torch.randn(4, 3, generator=g) * 0.1,
                    torch.randn(4, 6, generator=g) * 0.1, torch.randn(4, 3, generator=g) * 0.1)
    views, still = camera_from_pose(layer, p)
    assert float(still.global_rot.abs().max()) == 0 and float(still.translation.abs().max()) == 0
    with torch.no_grad():
        direct = head.flame(p).double() @ torch.diag(torch.tensor([1.0, -1, -1], dtype=torch.float64))
        moved = head.flame(still).double() @ torch.as_tensor(views[:, :3, :3]).double().transpose(1, 2)
        moved = moved + torch.as_tensor(views[:, None, :3, 3]).double()
    torch.testing.assert_close(moved, direct, rtol=0, atol=2e-6)

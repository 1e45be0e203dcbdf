"""The FLAME + camera fit on ground truth: a synthetic video with known parameters, the detector
replaced by the projected true landmarks plus 1 px noise per coordinate."""

import numpy as np
import torch
from smplx.lbs import batch_rodrigues

from sa0.flame.landmarks import LandmarkLayer
from sa0.track.fit import FitConfig, camera_from_pose, fit_landmarks
from sa0.track.synthetic import truth_detector


def _angle_deg(a, b):
    rel = a.transpose(1, 2) @ b
    return torch.rad2deg(torch.arccos(((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))).numpy()


def _rot(x):
    return batch_rodrigues(torch.as_tensor(np.asarray(x), dtype=torch.float64))


def test_fit_recovers_landmarks_mesh_jaw_and_head_rotation_at_512(head, embedding, video):
    det = truth_detector(video, noise_px=1.0, seed=0)
    frames = len(video.frames)
    observed = np.stack([det.detect(None).faces[0][embedding.ids] for _ in range(frames)])
    layer = LandmarkLayer(head.flame, embedding)
    result = fit_landmarks(layer, observed, np.tile([512, 512], (frames, 1)), FitConfig())
    clean_rmse = np.sqrt(((result.projected - video.landmarks) ** 2).sum(-1).mean())
    assert clean_rmse <= 1.5, clean_rmse  # against the noiseless truth
    assert np.sqrt(np.mean(result.error_px**2)) <= 1.5 * np.sqrt(2) + 0.3  # against the noisy detections
    views, still = camera_from_pose(layer, result.params)
    with torch.no_grad():
        fitted = head.flame(still)
    fitted = fitted @ torch.as_tensor(views[:, :3, :3]).transpose(1, 2) + torch.as_tensor(views[:, None, :3, 3])
    rest = head.flame.v_template
    face = (rest[:, 2] > 0.03) & (rest[:, 1] > -0.08) & (rest[:, 1] < 0.07)  # front of the head, brow to chin
    err = fitted[:, face].double() - torch.as_tensor(video.verts_cam)[:, face]
    # Monocular landmarks fix depth only up to the focal length: compare after centring each frame.
    err = err - err.mean(1, keepdim=True)
    assert float(err.norm(dim=-1).median()) * 1000 <= 3.0
    true_head = (torch.as_tensor(video.clip.viewmats[:, 0, :3, :3], dtype=torch.float64)
                 @ _rot(video.clip.flame.global_rot) @ _rot(video.clip.flame.neck))
    head_err = _angle_deg(true_head, torch.as_tensor(views[:, :3, :3], dtype=torch.float64))
    jaw_err = _angle_deg(_rot(video.clip.flame.jaw), _rot(result.params.jaw))
    assert head_err.max() <= 3.0 and jaw_err.max() <= 3.0, (head_err.max(), jaw_err.max())


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

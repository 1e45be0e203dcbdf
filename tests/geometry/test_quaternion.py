import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from sa0.geometry import look_at, matrix_to_quat, quat_multiply, quat_normalize, quat_to_matrix


def _random_quats(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return quat_normalize(torch.randn(n, 4, generator=g, dtype=torch.float64))


def test_quat_to_matrix_matches_scipy():
    q = _random_quats(64)
    ours = quat_to_matrix(q)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()  # scipy is xyzw
    torch.testing.assert_close(ours, torch.from_numpy(ref), atol=1e-12, rtol=0)


def test_hamilton_product_composes_rotations():
    a, b = _random_quats(32, 1), _random_quats(32, 2)
    torch.testing.assert_close(quat_to_matrix(quat_multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b))


def test_identity_is_neutral():
    q = _random_quats(8)
    one = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand_as(q)
    torch.testing.assert_close(quat_multiply(one, q), q)
    torch.testing.assert_close(quat_multiply(q, one), q)


@pytest.mark.parametrize("angle", [0.0, 0.3, math.pi / 2, math.pi - 1e-6, math.pi])
def test_matrix_to_quat_round_trip_including_half_turns(angle):
    axes = torch.nn.functional.normalize(torch.randn(16, 3, dtype=torch.float64), dim=-1)
    rotvec = axes * angle
    mats = torch.from_numpy(Rotation.from_rotvec(rotvec.numpy()).as_matrix())
    q = matrix_to_quat(mats)
    torch.testing.assert_close(quat_to_matrix(q), mats, atol=1e-9, rtol=0)
    assert (q[:, 0] >= 0).all()


def test_matrix_to_quat_gradient_is_finite_at_identity_and_half_turn():
    mats = torch.stack((torch.eye(3, dtype=torch.float64), torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))))
    mats.requires_grad_(True)
    matrix_to_quat(mats).sum().backward()
    assert torch.isfinite(mats.grad).all()


def test_zero_quaternion_normalises_to_identity():
    q = quat_normalize(torch.zeros(2, 4))
    torch.testing.assert_close(q, torch.tensor([[1.0, 0, 0, 0]] * 2))


def test_look_at_is_opencv_world_to_camera():
    view = look_at(torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3))
    rot = view[:3, :3]
    torch.testing.assert_close(rot @ rot.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(rot) > 0
    target_cam = view @ torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert target_cam[2] == pytest.approx(2.0)  # in front (+z), 2 m away
    up_cam = view @ torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert up_cam[1] < 0  # world up is image up (-y in OpenCV)

"""sa0's FLAME layer against smplx.FLAME (the peer implementation) and basic animation checks."""

import numpy as np
import pytest
import smplx
import torch

from sa0.flame import FlameLayer
from sa0.types import FlameParams


def _random_params(batch, seed, dtype=torch.float64, num_shape=300, num_expression=100):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: scale * torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return FlameParams(
        shape=r(batch, num_shape), expression=r(batch, num_expression), global_rot=r(batch, 3, scale=0.3),
        neck=r(batch, 3, scale=0.2), jaw=r(batch, 3, scale=0.2), eyes=r(batch, 6, scale=0.3),
        translation=r(batch, 3, scale=0.05),
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("num_shape,num_expression", [(300, 100), (100, 50)])
def test_matches_smplx_flame(synthetic_dir, assets, dtype, num_shape, num_expression):
    batch = 3
    params = _random_params(batch, 0, dtype, num_shape, num_expression)
    ours = FlameLayer(assets, num_shape, num_expression, dtype=dtype)(params)
    ref_model = smplx.FLAME(
        model_path=str(synthetic_dir), num_betas=num_shape, num_expression_coeffs=num_expression,
        batch_size=batch, dtype=dtype,
    )
    ref = ref_model(
        betas=params.shape, expression=params.expression, global_orient=params.global_rot,
        neck_pose=params.neck, jaw_pose=params.jaw, leye_pose=params.eyes[:, :3],
        reye_pose=params.eyes[:, 3:], transl=params.translation,
    ).vertices
    assert (ours - ref).abs().max().item() < 1e-5


def test_neutral_parameters_give_the_template(assets):
    layer = FlameLayer(assets, dtype=torch.float64)
    verts = layer(FlameParams.zeros(2, 300, 100, dtype=torch.float64))
    np.testing.assert_allclose(verts[1].numpy(), assets.v_template, atol=1e-12)


def test_jaw_opens_and_eyes_rotate(assets):
    layer = FlameLayer(assets, dtype=torch.float64)
    neutral = FlameParams.zeros(1, 300, 100, dtype=torch.float64)
    rest, joints = layer.forward_with_joints(neutral)
    jaw_open = FlameParams(**{**neutral.__dict__, "jaw": torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64)})
    opened = layer(jaw_open)
    jaw_vertices = torch.from_numpy(assets.weights[:, 2] > 0.99)
    drop = (rest[0, jaw_vertices, 1] - opened[0, jaw_vertices, 1])
    assert drop.min() > 0.005  # every fully jaw-bound vertex moves down by more than 5 mm
    head_only = torch.from_numpy(assets.weights[:, 1] > 0.999)
    # Only the jaw's pose correctives (a few mm at most) move vertices bound to the head.
    assert (opened[0, head_only] - rest[0, head_only]).abs().max() < 3e-3

    look_left = FlameParams(**{**neutral.__dict__, "eyes": torch.tensor([[0.0, 0.4, 0.0, 0.0, 0.4, 0.0]], dtype=torch.float64)})
    turned = layer(look_left)
    left_eye = torch.from_numpy(assets.weights[:, 3] > 0.99)
    centre = joints[0, 3]
    radii_rest = (rest[0, left_eye] - centre).norm(dim=-1)
    radii_turned = (turned[0, left_eye] - centre).norm(dim=-1)
    torch.testing.assert_close(radii_turned, radii_rest)  # rigid rotation about the eye centre
    assert (turned[0, left_eye] - rest[0, left_eye]).norm(dim=-1).max() > 0.003


def test_gradients_flow_to_every_parameter(assets):
    layer = FlameLayer(assets, 20, 10)
    params = _random_params(2, 1, torch.float32, 20, 10)
    leaves = {k: v.clone().requires_grad_() for k, v in params.__dict__.items()}
    layer(FlameParams(**leaves)).square().sum().backward()
    for name, leaf in leaves.items():
        assert leaf.grad is not None and leaf.grad.abs().sum() > 0, name


def test_wrong_parameter_shape_is_named(assets):
    layer = FlameLayer(assets, 50, 20)
    params = FlameParams.zeros(2, 50, 30)
    with pytest.raises(ValueError, match=r"FlameParams.expression must have shape \(2, 20\)"):
        layer(params)
    with pytest.raises(ValueError, match="num_expression must be in"):
        FlameLayer(assets, 300, 101)

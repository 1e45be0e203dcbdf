"""Generator loss terms: MS-SSIM (single-sigma twin vs pytorch-msssim), box L1, UV TV, Jacobian
penalty, L2-SP, LPIPS wrapper (RANDOM BACKBONE only: backbone weights are not available offline)."""

import numpy as np
import pytest
import torch
from pytorch_msssim import ssim as reference_ssim

from sa0.gaussians import build_uv_layout
from sa0.losses.generator_terms import (
    box_l1,
    jacobian_penalty,
    l2_sp,
    make_lpips,
    ms_ssim_sigmas,
    ssim_components,
    uv_total_variation,
)


def _images(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, size, size, 3, generator=g)
    smooth = torch.nn.functional.avg_pool2d(base.permute(0, 3, 1, 2), 5, 1, 2).permute(0, 2, 3, 1)
    noisy = (smooth + 0.05 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
    return smooth, noisy


def test_single_sigma_components_equal_standard_ssim():
    a, b = _images()
    lum, cs = ssim_components(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), sigma=1.5, size=11)
    ref = reference_ssim(a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2), data_range=1.0, win_size=11)
    torch.testing.assert_close((lum * cs).mean(), ref, rtol=1e-5, atol=1e-6)


def test_ms_ssim_orders_distortions():
    a, b = _images()
    assert ms_ssim_sigmas(a, a).item() == pytest.approx(1.0, abs=1e-6)
    worse = (b + 0.1 * torch.randn(b.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert ms_ssim_sigmas(a, b) > ms_ssim_sigmas(a, worse)
    with pytest.raises(ValueError, match="at least 49 px"):
        ms_ssim_sigmas(a[:, :20, :20], b[:, :20, :20])


def test_box_l1_only_looks_inside_the_dilated_box():
    pred = torch.zeros(1, 20, 20, 3)
    target = torch.zeros(1, 20, 20, 3)
    target[0, 0, 0] = 1.0  # outside the box
    box = torch.tensor([[8.0, 8.0, 12.0, 12.0]])
    assert box_l1(pred, target, box).item() == 0.0
    target[0, 10, 10] = 1.0  # inside
    assert box_l1(pred, target, box).item() > 0.0


def test_uv_tv_is_zero_for_constant_maps_and_positive_otherwise():
    vt = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    layout = build_uv_layout(vt, np.array([[0, 1, 2], [0, 2, 3]]), 8)
    const = torch.ones(2, layout.num_gaussians, 3)
    assert uv_total_variation(const, layout).item() == 0.0
    ramp = (layout.cols.float() / 7)[None, :, None].expand(1, -1, 1)
    assert uv_total_variation(ramp, layout).item() == pytest.approx(1 / 7 / 2, rel=1e-5)  # half the pairs vary


def test_jacobian_penalty_zero_iff_geometry_ignores_the_view():
    gamma = torch.randn(2, 27, requires_grad=True)
    features = torch.randn(2, 5, 4, 4)
    w_geom = torch.randn(3, 27, requires_grad=True)  # a head weight that reads the view code
    view_term = (gamma @ w_geom.T)[:, :, None, None]
    weights = torch.randn(5, requires_grad=True)  # trainable, but the geometry never sees gamma
    blind = {"positions": features[:, :3] * weights[:3, None, None], "log_scales": features[:, 3:5] + weights[3:, None, None]}
    seeing = {"positions": features[:, :3] + view_term, "log_scales": features[:, 3:5]}
    assert jacobian_penalty(blind, gamma).item() == 0.0
    penalty = jacobian_penalty(seeing, gamma)
    assert penalty.item() > 0
    penalty.backward()  # the double backward reaches the head's weights
    assert w_geom.grad is not None and w_geom.grad.abs().sum() > 0


def test_l2_sp_is_zero_at_the_anchor():
    model = torch.nn.Linear(3, 2)
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    assert l2_sp(model, anchor).item() == 0.0
    with torch.no_grad():
        model.weight += 0.1
    assert l2_sp(model, anchor).item() == pytest.approx(6 * 0.01, rel=1e-5)
    with pytest.raises(ValueError, match="shares no trainable parameter"):
        l2_sp(model, {"other": torch.zeros(1)})


def test_lpips_random_backbone_for_tests_only():
    """RANDOM BACKBONE: checks the wrapper runs offline; the value carries no perceptual meaning."""
    metric = make_lpips("alex", random_backbone=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert metric(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert metric(x, -x).item() > 0

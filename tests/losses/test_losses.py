"""SSIM against scikit-image; anti-spike penalty, maxAR and clamps on hand-made covariances."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from sa0.losses import aspect_penalty, clamp_log_scales, l1, max_aspect_ratio, projected_eigenvalues, psnr, ssim
from sa0.types import RenderOut


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ref = structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, win_size=11)
    ours = ssim(torch.tensor(a)[None], torch.tensor(b)[None]).item()
    # scikit-image pads at the borders while pytorch-msssim uses valid windows only.
    assert ours == pytest.approx(ref, abs=0.02)
    assert ssim(torch.tensor(a)[None], torch.tensor(a)[None]).item() == pytest.approx(1.0, abs=1e-6)


def test_psnr_and_l1():
    a = torch.zeros(1, 4, 4, 3)
    b = torch.full((1, 4, 4, 3), 0.1)
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-4)
    assert l1(a, b).item() == pytest.approx(0.1)


def _out(cov2d, radii):
    n = cov2d.shape[1]
    z = torch.zeros(1, n)
    return RenderOut(torch.zeros(1, 1, 1, 3), torch.zeros(1, 1, 1, 1), torch.zeros(1, n, 2), cov2d, cov2d, z, radii)


def test_eigenvalues_closed_form_matches_eigh():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(50, 2, 2, generator=g, dtype=torch.float64)
    cov = m @ m.transpose(1, 2) + 0.1 * torch.eye(2, dtype=torch.float64)
    lmax, lmin = projected_eigenvalues(torch.stack((cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]), -1))
    ref = torch.linalg.eigvalsh(cov)
    torch.testing.assert_close(lmax, ref[:, 1])
    torch.testing.assert_close(lmin, ref[:, 0])


def test_aspect_penalty_and_max_ar():
    # Axis ratios 1, 4 and 16 (variances 1:1, 16:1, 256:1), the last one culled.
    cov = torch.tensor([[[1.0, 0.0, 1.0], [16.0, 0.0, 1.0], [256.0, 0.0, 1.0]]], requires_grad=True)
    radii = torch.tensor([[[3, 3], [5, 3], [0, 0]]], dtype=torch.int32)
    out = _out(cov, radii)
    assert max_aspect_ratio(out) == pytest.approx(4.0)
    tau = math.log(2.0)
    penalty = aspect_penalty(out, tau)
    assert penalty.item() == pytest.approx((math.log(4.0) - tau) / 2)  # mean over the 2 visible
    penalty.backward()
    assert cov.grad[0, 0].abs().sum() == 0 and cov.grad[0, 1].abs().sum() > 0 and cov.grad[0, 2].abs().sum() == 0


def test_clamp_log_scales_bounds_range_and_spread():
    s = torch.tensor([[-12.0, -3.0, -2.0], [0.5, -9.0, -8.5], [-4.0, -4.0, -4.0]])
    clamp_log_scales(s, smin=-10.0, smax=-1.0, spread=math.log(8.0))
    assert s.min() >= -10 and s.max() <= -1
    assert (s.max(-1).values - s.min(-1).values <= math.log(8.0) + 1e-6).all()
    torch.testing.assert_close(s[2], torch.tensor([-4.0, -4.0, -4.0]))

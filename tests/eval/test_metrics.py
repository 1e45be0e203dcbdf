"""Evaluation metrics: PSNR cap and closed form, SSIM against scikit-image, masked metrics, LPIPS and
face models reported unavailable (never a number) when their weights are missing."""

import math

import numpy as np
import pytest
import torch

from sa0.eval.face_models import FaceMetrics, FaceModelConfig
from sa0.eval.metrics import LPIPS, PSNR_CAP, Unavailable, mean_or_unavailable, mse, psnr, ssim


def _natural(seed=0, size=64):
    """A smooth, textured test image (sums of random low-frequency sinusoids), (1, H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    for _ in range(6):
        fx, fy, phase = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 2 * np.pi)]
        image += rng.uniform(0.05, 0.2, 3) * np.sin(2 * np.pi * (fx * x + fy * y) + phase)[..., None]
    return torch.as_tensor((image - image.min()) / (image.max() - image.min()))[None].float()


def test_psnr_is_capped_for_identical_images_and_matches_the_closed_form_for_known_noise():
    a = _natural()
    assert psnr(a, a).tolist() == [PSNR_CAP]
    target = a * 0.8 + 0.1  # room for +-0.05 without clipping
    sign = torch.where(torch.rand_like(target) > 0.5, 1.0, -1.0)
    noisy = target + 0.05 * sign  # |error| = 0.05 everywhere: MSE = 0.0025 exactly
    assert psnr(noisy, target).item() == pytest.approx(-10 * math.log10(0.05**2), abs=1e-4)
    assert mse(noisy, target).item() == pytest.approx(0.0025, rel=1e-5)


def test_masked_psnr_only_sees_the_mask():
    target = torch.zeros(1, 8, 8, 3)
    pred = target.clone()
    pred[:, :, 4:] = 0.5  # errors only outside the mask
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[:, :, :4] = True
    assert psnr(pred, target, mask).item() == PSNR_CAP
    assert psnr(pred, target).item() == pytest.approx(-10 * math.log10(0.125), abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_matches_scikit_image_on_natural_looking_images(seed):
    from skimage.metrics import structural_similarity

    a = _natural(seed)
    b = (a + 0.06 * torch.randn_like(a, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
    ours = ssim(b, a).item()
    reference = structural_similarity(b[0].numpy(), a[0].numpy(), data_range=1.0, channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(reference, abs=1e-3)
    assert ours < 0.99  # the noise is visible to both


def test_unavailable_metrics_never_become_numbers(monkeypatch):
    import sa0.losses.generator_terms as terms

    def offline(net="alex", random_backbone=False):
        raise RuntimeError("backbone weights are unavailable (offline)")

    monkeypatch.setattr(terms, "make_lpips", offline)
    lpips = LPIPS("vgg")
    value = lpips(_natural(), _natural(1))
    assert isinstance(value, Unavailable) and "vgg" in value.reason and "offline" in value.reason
    assert mean_or_unavailable([0.5, value]) == value


def test_missing_face_models_are_unavailable_with_the_reason(tmp_path):
    faces = FaceMetrics(FaceModelConfig(arcface=str(tmp_path / "missing.pt")))
    csim = faces.csim(_natural(), _natural(1))
    assert isinstance(csim, Unavailable) and "does not exist" in csim.reason
    aed, apd = faces.aed_apd(_natural(), _natural(1))
    assert isinstance(aed, Unavailable) and "no 3DMM regressor model given" in aed.reason


def test_user_provided_face_models_are_used(tmp_path):
    """Stand-in TorchScript models with the documented contracts (NOT real face models)."""

    class Embed(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    class Dmm(torch.nn.Module):
        def forward(self, x):
            m = x.mean(dim=(2, 3))
            return m[:, :2], m[:, 2:]

    torch.jit.save(torch.jit.script(Embed()), tmp_path / "arcface.pt")
    torch.jit.save(torch.jit.script(Dmm()), tmp_path / "dmm.pt")
    faces = FaceMetrics(FaceModelConfig(arcface=str(tmp_path / "arcface.pt"), dmm=str(tmp_path / "dmm.pt")))
    a = _natural()
    assert faces.csim(a, a).item() == pytest.approx(1.0, abs=1e-6)
    aed, apd = faces.aed_apd(a, a * 0.5)
    assert aed.item() > 0 and apd.item() > 0

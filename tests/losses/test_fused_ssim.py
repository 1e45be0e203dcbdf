"""The fused SSIM (closed-form gradient) against its twin and peer, pytorch-msssim."""

import pytest
import torch
from pytorch_msssim import ssim as peer_ssim

from sa0.losses.photometric import fused_ssim, ssim_per_image_reference


@pytest.mark.parametrize("shape", [(1, 3, 11, 11), (2, 3, 40, 29), (3, 1, 64, 64)])
def test_fused_ssim_matches_pytorch_msssim_values_and_gradients_in_float64(shape):
    torch.manual_seed(sum(shape))
    target = torch.rand(shape, dtype=torch.float64)
    pred = (target + 0.2 * torch.randn(shape, dtype=torch.float64)).clamp(0, 1)
    a = pred.clone().requires_grad_(True)
    b = pred.clone().requires_grad_(True)
    mine = fused_ssim(a, target)
    peer = peer_ssim(b, target, data_range=1.0, size_average=False)
    torch.testing.assert_close(mine, peer, rtol=1e-10, atol=1e-12)
    weights = torch.rand(shape[0], dtype=torch.float64)  # distinct per-image upstream gradients
    (mine * weights).sum().backward()
    (peer * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-12)


def test_fused_ssim_passes_gradcheck():
    torch.manual_seed(0)
    target = torch.rand(2, 2, 13, 12, dtype=torch.float64)
    pred = torch.rand(2, 2, 13, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: fused_ssim(x, target), (pred,))


def test_fused_ssim_float32_in_sa0_layout_matches_ssim_per_image_reference():
    torch.manual_seed(1)
    target = torch.rand(2, 48, 48, 3)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    fused = fused_ssim(pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2))
    torch.testing.assert_close(fused, ssim_per_image_reference(pred, target), rtol=1e-5, atol=1e-6)

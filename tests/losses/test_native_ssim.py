"""The native CPU SSIM (csrc/ssim_cpu.cpp, what ssim_per_image runs on CPU) against its twin and
peer pytorch-msssim: values and gradients, float64 and float32, and the same bits at any thread count."""

import pytest
import torch
from pytorch_msssim import ssim as peer_ssim

from sa0.losses import ssim_per_image
from sa0.losses.photometric import _NativeSSIM, ssim_per_image_reference
from sa0.render.native import load_native


@pytest.fixture(scope="module")
def kernel():
    module = load_native()
    assert module is not None, "the native kernel failed to build"
    return module


def _pair(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, dtype=dtype, generator=gen)
    pred = (target + 0.2 * torch.randn(shape, dtype=dtype, generator=gen)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize("shape", [(1, 11, 11, 3), (2, 40, 29, 3), (3, 64, 48, 1), (1, 23, 31, 5)])
@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-9), (torch.float32, 2e-5)])
def test_native_ssim_matches_pytorch_msssim_values_and_gradients(kernel, shape, dtype, rtol):
    pred, target = _pair(shape, dtype, sum(shape))
    a, b = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    mine = _NativeSSIM.apply(a, target, 11)
    peer = peer_ssim(b.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), data_range=1.0, size_average=False)
    torch.testing.assert_close(mine, peer, rtol=rtol, atol=rtol * 1e-2)
    weights = torch.rand(shape[0], dtype=dtype, generator=torch.Generator().manual_seed(3)) - 0.3
    (mine * weights).sum().backward()
    (peer * weights).sum().backward()
    scale = b.grad.abs().max()
    assert scale > 0
    assert (a.grad - b.grad).abs().max() <= rtol * 10 * scale


def test_ssim_per_image_takes_the_native_kernel_on_cpu_and_the_reference_for_small_images(kernel):
    pred, target = _pair((2, 30, 30, 3), torch.float32, 1)
    fast = ssim_per_image(pred, target)
    assert torch.equal(fast, _NativeSSIM.apply(pred, target, 11))
    small = _pair((1, 9, 20, 3), torch.float32, 2)  # smaller than the window: pytorch-msssim's own handling
    assert torch.equal(ssim_per_image(*small), ssim_per_image_reference(*small))
    torch.testing.assert_close(ssim_per_image(pred, target), ssim_per_image_reference(pred, target), rtol=2e-5,
                               atol=1e-6)


def test_native_ssim_is_bitwise_the_same_at_1_2_and_3_threads(kernel):
    pred, target = _pair((2, 70, 90, 3), torch.float32, 4)
    runs = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            x = pred.clone().requires_grad_(True)
            value = _NativeSSIM.apply(x, target, 11)
            (value * torch.tensor([0.7, -0.4])).sum().backward()
            runs.append((value.detach(), x.grad))
    finally:
        torch.set_num_threads(threads)
    for value, grad in runs[1:]:
        assert torch.equal(value, runs[0][0]) and torch.equal(grad, runs[0][1])


def test_native_ssim_passes_gradcheck(kernel):
    pred, target = _pair((2, 13, 12, 2), torch.float64, 5)
    x = pred.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: _NativeSSIM.apply(p, target, 11), (x,))

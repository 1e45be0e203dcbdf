"""Registering a novel view to its truth: a known similarity is found and undone; nothing else is."""

import math

import pytest
import torch
import torch.nn.functional as F

from sa0.eval.registration import register, similarity_warp
from sa0.losses import psnr


def _head_like(size: int = 128, seed: int = 0) -> torch.Tensor:
    """(1, S, S, 3): a textured disc over black, texture detail at a few pixels (as skin pores)."""
    gen = torch.Generator().manual_seed(seed)
    texture = F.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=gen), size=(size, size), mode="bicubic",
                            align_corners=False).clamp(0, 1)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    disc = (((xs - size / 2) ** 2 + (ys - size / 2) ** 2) < (0.35 * size) ** 2).float()
    return (texture * disc).permute(0, 2, 3, 1)


def test_a_known_similarity_is_found_and_undone():
    image = _head_like()
    known = torch.tensor([1.4, -0.9, 0.08, 1.5 * math.pi / 180 * 10])  # px, px, 0.8 % scale, 1.5 deg
    target = similarity_warp(image, known)
    raw = psnr(image, target).item()
    warped, reg = register(image, target)
    assert raw < 30.0 and psnr(warped, target).item() > raw + 12.0, (raw, psnr(warped, target).item())
    assert reg.shift_px == pytest.approx((1.4, -0.9), abs=0.1)
    assert reg.scale == pytest.approx(math.exp(0.008), abs=0.002)
    assert reg.rotation_deg == pytest.approx(1.5, abs=0.1)


def test_an_aligned_image_is_left_alone_and_blur_is_not_undone():
    image = _head_like(seed=1)
    same, reg = register(image, image)
    assert torch.equal(same, image) and reg.shift_px == (0.0, 0.0) and reg.rotation_deg == 0.0
    blurred = F.avg_pool2d(image.permute(0, 3, 1, 2), 3, 1, 1).permute(0, 2, 3, 1)
    warped, _ = register(blurred, image)  # a blurry render of a sharp truth: no warp makes it sharp
    assert psnr(warped, image).item() < psnr(blurred, image).item() + 0.2

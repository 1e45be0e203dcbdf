"""Shared helpers for renderer tests."""

import torch

from sa0.config import RenderConfig
from sa0.render import render
from sa0.types import Cameras, Gaussians

FIELDS = ("means", "quats", "scales", "opacities", "colors")


def render_with_grads(g: Gaussians, cams: Cameras, config: RenderConfig, background):
    leaves = [getattr(g, f).detach().clone().requires_grad_() for f in FIELDS]
    bg = background.detach().clone().requires_grad_()
    out = render(Gaussians(*leaves), cams, bg, config)
    gen = torch.Generator().manual_seed(7)
    w_img = torch.randn(out.image.shape, generator=gen, dtype=out.image.dtype)
    w_alpha = torch.randn(out.alpha.shape, generator=gen, dtype=out.alpha.dtype)
    ((out.image * w_img).sum() + (out.alpha * w_alpha).sum()).backward()
    return out, [leaf.grad for leaf in leaves] + [bg.grad]


def assert_rel_close(a, b, rel, name):
    scale = b.abs().max().clamp_min(1e-12)
    err = ((a - b).abs().max() / scale).item()
    assert err < rel, f"{name}: relative error {err:.3e} >= {rel}"

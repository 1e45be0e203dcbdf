"""One generator training step on one device (METHOD §2 "Loss", §3), free of Ray and DeepSpeed.

prepare_batch (sa0.model.batch): an example batch -> GeneratorInputs plus the target's posed mesh,
camera, image, matte and face box. compute_losses: generator -> bind on the
target mesh -> render at the target camera over black -> named loss terms and their weighted sum:
  l1 L1 + lms (1 - MS-SSIM, sigmas 0.5..8) + llp LPIPS + lbox L1 on the dilated face box
  + lps TV_uv(local position) + lss TV_uv(log-scale) + ljac Ljac + ldelta |residual deltas| (phase 2)
  + lsp L2-SP (phase 2, given an anchor).
The ground truth is the target image composited over black by its matte.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sa0.gaussians import bind
from sa0.losses import l1
from sa0.losses.generator_terms import box_l1, delta_l1, jacobian_penalty, l2_sp, ms_ssim_sigmas, uv_total_variation
from sa0.model import Generator
from sa0.model.batch import PreparedBatch
from sa0.model.heads import harmonic_encoding, view_direction
from sa0.render.api import render
from sa0.types import Cameras


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    """Weights (METHOD §2: l1, lms, llp, lbox ~ 1; lps, lss ~ 1e-2; ljac = 0.1; ldelta ~ 1e-2;
    lsp = 1e-3). llp defaults to 0 because LPIPS backbone weights are often unavailable offline."""

    l1: float = 1.0
    ms_ssim: float = 1.0
    lpips: float = 0.0
    box: float = 1.0
    tv_position: float = 1e-2
    tv_scale: float = 1e-2
    jacobian: float = 0.1
    delta: float = 1e-2
    l2_sp: float = 1e-3
    phase: int = 1

    def __post_init__(self):
        for name in ("l1", "ms_ssim", "lpips", "box", "tv_position", "tv_scale", "jacobian", "delta", "l2_sp"):
            if getattr(self, name) < 0:
                raise ValueError(f"LossConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.phase not in (1, 2):
            raise ValueError(f"LossConfig.phase must be 1 or 2, got {self.phase}")


def _float(tree):
    if isinstance(tree, torch.Tensor):
        return tree.float()
    if isinstance(tree, dict):
        return {k: _float(v) for k, v in tree.items()}
    return type(tree)(*(_float(getattr(tree, f)) for f in tree.__dataclass_fields__))


def compute_losses(model: Generator, prepared: PreparedBatch, cfg: LossConfig, lpips_fn=None,
                   anchor: dict | None = None, bf16: bool = False
                   ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
    """-> (weighted total, {term: value}, {"image": (B, H, W, 3), "alpha": (B, H, W, 1)} detached).
    bf16: run the generator under bf16 autocast (CUDA only); binding, rendering and losses stay fp32."""
    x = prepared.inputs
    gamma = harmonic_encoding(view_direction(x.tgt_viewmat))
    if cfg.jacobian > 0:
        gamma = gamma.detach().requires_grad_(True)
    device = x.src_images.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
        out = model(x, view_code=gamma)
    local, head_maps, deltas = _float(out.local), _float(out.head_maps), out.deltas.float()
    head = model.head
    gaussians = bind(local, prepared.tgt_verts, head.faces, head.layout)
    h, w = prepared.tgt_image.shape[1:3]
    cams = Cameras(x.tgt_viewmat, prepared.tgt_K, w, h)
    rendered = render(gaussians, cams, torch.zeros(3, device=device))
    pred = rendered.image
    target = prepared.tgt_image
    terms = {"l1": l1(pred, target), "ms_ssim": 1 - ms_ssim_sigmas(pred.clamp(0, 1), target)}
    if cfg.lpips > 0:
        if lpips_fn is None:
            raise ValueError("LossConfig.lpips > 0 needs an LPIPS function (sa0.losses.generator_terms.make_lpips)")
        terms["lpips"] = lpips_fn(pred.permute(0, 3, 1, 2) * 2 - 1, target.permute(0, 3, 1, 2) * 2 - 1).mean()
    terms["box"] = box_l1(pred, target, prepared.tgt_box)
    terms["tv_position"] = uv_total_variation(local.positions, head.layout)
    terms["tv_scale"] = uv_total_variation(local.log_scales, head.layout)
    if cfg.jacobian > 0:
        terms["jacobian"] = jacobian_penalty(head_maps, gamma)
    if cfg.phase == 2:
        terms["delta"] = delta_l1(deltas)
        if anchor is not None:
            terms["l2_sp"] = l2_sp(model, anchor)
    total = sum(getattr(cfg, name) * value for name, value in terms.items())
    return (total, {name: float(value.detach()) for name, value in terms.items()},
            {"image": pred.detach(), "alpha": rendered.alpha.detach()})

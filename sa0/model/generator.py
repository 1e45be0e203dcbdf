"""The generator: K source portraits -> per-texel local Gaussian attributes for a target (METHOD §2).

encoder (frozen ViT + DPT) -> UV warp per source -> masked mean over K -> StyleUNet (SFT on the
pooled CLS) -> concat the target's 27-d view code -> five heads, plus the residual head's deltas
driven by the target's expression / pose / eyes. Attributes are predicted as offsets from the
layout's rest initialisation (sa0.gaussians.init_local_gaussians), so an untrained generator
already yields a sensible head; colours go through a sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sa0.gaussians import init_local_gaussians
from sa0.head import HeadModel
from sa0.model.config import ModelConfig
from sa0.model.encoder import ImageEncoder
from sa0.model.heads import CONDITION_DIM, GaussianHeads, ResidualHead, harmonic_encoding, view_direction
from sa0.model.unet import StyleUNet
from sa0.model.uv import from_uv_map, masked_mean, uv_warp, visible_mean
from sa0.types import LocalGaussians


@dataclass(frozen=True)
class GeneratorInputs:
    """src_images (B, K, 3, H, W) in [0, 1]; src_mask (B, K) bool; src_verts (B, K, V, 3) posed source
    meshes; src_viewmats (B, K, 4, 4); src_Ks (B, K, 3, 3); tgt_viewmat (B, 4, 4);
    tgt_condition (B, 112) = expression (100, zero-padded) + pose (global + jaw, 6) + eyes (6)."""

    src_images: torch.Tensor
    src_mask: torch.Tensor
    src_verts: torch.Tensor
    src_viewmats: torch.Tensor
    src_Ks: torch.Tensor
    tgt_viewmat: torch.Tensor
    tgt_condition: torch.Tensor


@dataclass(frozen=True)
class GeneratorOutputs:
    """local: LocalGaussians with (B, N, ...) attributes; deltas: the residual head's per-texel
    deltas (B, N, 13) for the delta L1; uv_features: (B, C, R, R) before the heads; head_maps: the
    five heads' raw UV maps; view_code: the (B, 27) view encoding they saw (for the Jacobian term)."""

    local: LocalGaussians
    deltas: torch.Tensor
    uv_features: torch.Tensor
    head_maps: dict
    view_code: torch.Tensor


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig, head: HeadModel):
        super().__init__()
        self.cfg, self.head = cfg, head
        self.encoder = ImageEncoder(cfg)
        cin = cfg.dpt_channels + 3
        self.unet = StyleUNet(cin, cfg.out_channels, cfg.unet_channels, self.encoder.cls_dim)
        self.heads = GaussianHeads(cfg.out_channels)
        self.residual = ResidualHead(cfg.out_channels, cfg.residual_hidden)
        base = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
        for name in ("positions", "rotations", "log_scales", "opacity_logits"):
            self.register_buffer(f"base_{name}", getattr(base, name).float())

    def forward(self, x: GeneratorInputs, view_code: torch.Tensor | None = None) -> GeneratorOutputs:
        """view_code: optionally a precomputed (B, 27) encoding (e.g. a leaf that needs gradients)."""
        if x.tgt_condition.shape[-1] != CONDITION_DIM:
            raise ValueError(f"tgt_condition must have {CONDITION_DIM} values, got {x.tgt_condition.shape[-1]}")
        return self.decode(self.encode(x), x.tgt_viewmat, x.tgt_condition, view_code)

    def encode(self, x: GeneratorInputs) -> torch.Tensor:
        """Sources only (METHOD §2 steps 1-4: encoder, UV warp, K-source mean-pool, StyleUNet with
        SFT on the pooled CLS) -> UV features (B, out_channels, R, R). Independent of the target, so
        one encoding serves every target of the same sources (evaluation, refinement init)."""
        b, k = x.src_mask.shape
        if k > self.cfg.max_sources:
            raise ValueError(f"{k} sources given, the model takes at most {self.cfg.max_sources}")
        flat = lambda t: t.reshape((b * k,) + t.shape[2:])  # noqa: E731
        features, cls = self.encoder(flat(x.src_images))
        visible = self.cfg.pool == "visible"
        warped = uv_warp(features, flat(x.src_images), flat(x.src_verts), self.head.faces, self.head.layout,
                         flat(x.src_viewmats), flat(x.src_Ks), with_visibility=visible)
        per_source = lambda t: t.view((b, k) + t.shape[1:])  # noqa: E731
        if visible:
            pooled = visible_mean(per_source(warped[0]), x.src_mask, per_source(warped[1]))
        else:
            pooled = masked_mean(per_source(warped), x.src_mask)
        return self.unet(pooled, masked_mean(cls.view(b, k, -1), x.src_mask))

    def decode(self, uv: torch.Tensor, tgt_viewmat: torch.Tensor, tgt_condition: torch.Tensor,
               view_code: torch.Tensor | None = None) -> GeneratorOutputs:
        """UV features (B, F, R, R) from encode + each target's view (B, 4, 4) and condition (B, 112)
        (steps 5-7) -> outputs for B targets."""
        if view_code is None:
            view_code = harmonic_encoding(view_direction(tgt_viewmat))
        maps = self.heads(uv, view_code)
        deltas = self.residual(uv, tgt_condition)
        layout = self.head.layout
        get = lambda name: from_uv_map(maps[name], layout)  # noqa: E731
        delta = {name: from_uv_map(value, layout) for name, value in deltas.items()}
        identity = torch.zeros(4, device=uv.device)
        identity[0] = 1.0
        local = LocalGaussians(
            positions=self.base_positions + get("positions") + delta["positions"],
            rotations=identity + get("rotations") + delta["rotations"],
            log_scales=self.base_log_scales + get("log_scales") + delta["log_scales"],
            colors=torch.sigmoid(get("colors") + delta["colors"]),
            opacity_logits=self.base_opacity_logits + get("opacity_logits")[..., 0],
        )
        return GeneratorOutputs(local, torch.cat([delta[n] for n in deltas], -1), uv, maps, view_code)

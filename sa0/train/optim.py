"""Optimiser, parameter groups and learning-rate schedules of the two training phases (METHOD §3).

Phase 1: Adam, lr constant, then linear to 0.1x over the last 20% (paper: 160K + 40K of 200K).
Phase 2: AdamW, linear warmup then cosine, and layer-wise LR decay 0.65 on the encoder side: the
decoder side (StyleUNet, heads, residual head) gets the base lr; the DPT head is one layer below
it (lr x 0.65), as is the ViT's final norm; ViT block j of L is L - j + 1 layers below (lr x 0.65^(L - j + 1)), the patch
embedding and other ViT parameters are the lowest (0.65^(L + 1)). Frozen parameters are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant_then_linear", "cosine")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """optimizer: adam | adamw; schedule: constant_then_linear (decay over the last decay_fraction
    to final_ratio x lr) | cosine (linear warmup over warmup_fraction, then cosine to final_ratio x lr);
    layer_decay: per-layer lr factor on the encoder side (1 = off)."""

    optimizer: str = "adam"
    lr: float = 2.5e-4
    weight_decay: float = 0.0
    schedule: str = "constant_then_linear"
    decay_fraction: float = 0.2
    warmup_fraction: float = 0.05
    final_ratio: float = 0.1
    layer_decay: float = 1.0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"OptimConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"OptimConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.lr <= 0:
            raise ValueError(f"OptimConfig.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"OptimConfig.weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("decay_fraction", "warmup_fraction", "final_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"OptimConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"OptimConfig.layer_decay must be in (0, 1], got {self.layer_decay}")

    @classmethod
    def phase1(cls, lr: float = 2.5e-4) -> "OptimConfig":
        return cls(lr=lr)

    @classmethod
    def phase2(cls, lr: float = 2.5e-4) -> "OptimConfig":
        return cls(optimizer="adamw", lr=lr, weight_decay=1e-2, schedule="cosine", final_ratio=0.0, layer_decay=0.65)


def layer_depth(name: str, num_blocks: int) -> int:
    """How many layers below the decoder a generator parameter sits (0 = decoder side)."""
    if name.startswith(("encoder.dpt.", "encoder.vit.norm", "encoder.vit.fc_norm")):
        return 1
    if name.startswith("encoder.vit.blocks."):
        return num_blocks - int(name.split(".")[3]) + 1
    if name.startswith("encoder.vit."):
        return num_blocks + 1
    return 0


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """Trainable parameters grouped by lr scale (layer_decay ** depth); each group has 'lr' set."""
    blocks = getattr(getattr(getattr(model, "encoder", None), "vit", None), "blocks", ())
    groups: dict[int, list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(layer_depth(name, len(blocks)), []).append(param)
    return [{"params": params, "lr": cfg.lr * cfg.layer_decay**depth, "name": f"depth{depth}"}
            for depth, params in sorted(groups.items())]


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of each group's lr before optimiser step `step` (0-based) of total_steps."""
    if cfg.schedule == "constant_then_linear":
        start = total_steps * (1 - cfg.decay_fraction)
        if step < start:
            return 1.0
        frac = min(1.0, (step - start) / max(1.0, total_steps - start))
        return 1.0 + frac * (cfg.final_ratio - 1.0)
    warmup = int(round(cfg.warmup_fraction * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, (step - warmup) / max(1.0, total_steps - warmup))
    return cfg.final_ratio + (1 - cfg.final_ratio) * 0.5 * (1 + math.cos(math.pi * frac))


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, cfg: OptimConfig):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, cfg))

"""View encoding, the five Gaussian heads and the residual (expression) head (METHOD §2 steps 5-7)."""

from __future__ import annotations

import math

import torch
from torch import nn

HEADS = {"positions": 3, "rotations": 4, "log_scales": 3, "colors": 3, "opacity_logits": 1}
RESIDUAL = ("positions", "rotations", "log_scales", "colors")  # never opacity
CONDITION_DIM = 100 + 6 + 6  # expression, pose (global + jaw), eyes


def harmonic_encoding(d: torch.Tensor, num_freqs: int = 4) -> torch.Tensor:
    """[d, sin(2^k pi d), cos(2^k pi d)] for k < num_freqs: (..., 3) -> (..., 3 + 6 num_freqs) = 27-d."""
    scaled = torch.cat([d * (2.0**k) * math.pi for k in range(num_freqs)], -1)
    return torch.cat((d, torch.sin(scaled), torch.cos(scaled)), -1)


def view_direction(viewmats: torch.Tensor) -> torch.Tensor:
    """d = third column of the target world-to-camera rotation (METHOD §2 step 5), (B, 3)."""
    return viewmats[:, :3, 2]


class GaussianHeads(nn.Module):
    """UV features (B, F, R, R) + 27-d view code -> five attribute maps (1x1 convs)."""

    def __init__(self, channels: int, view_dim: int = 27):
        super().__init__()
        self.heads = nn.ModuleDict({name: nn.Conv2d(channels + view_dim, dim, 1) for name, dim in HEADS.items()})
        for head in self.heads.values():
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)

    def forward(self, features: torch.Tensor, view_code: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, r, _ = features.shape
        x = torch.cat((features, view_code[:, :, None, None].expand(b, -1, r, r)), 1)
        return {name: head(x) for name, head in self.heads.items()}


class ResidualHead(nn.Module):
    """c_t = expression + pose + eyes -> FiLM on the UV features -> 1x1 conv deltas for position,
    rotation, scale and colour. The output conv is zero-initialised, so it contributes exactly 0
    at the start; it never sees the view code and never touches opacity."""

    def __init__(self, channels: int, hidden: int, cond_dim: int = CONDITION_DIM):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cond_dim, hidden), nn.SiLU(), nn.Linear(hidden, 2 * channels))
        self.out = nn.Conv2d(channels, sum(HEADS[n] for n in RESIDUAL), 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> dict[str, torch.Tensor]:
        gamma, beta = self.mlp(condition)[..., None, None].chunk(2, dim=1)
        deltas = self.out(features * (1 + gamma) + beta)
        return dict(zip(RESIDUAL, deltas.split([HEADS[n] for n in RESIDUAL], dim=1)))

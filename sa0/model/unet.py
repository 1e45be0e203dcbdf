"""UV generator: a UNet over the UV grid whose blocks are modulated by the pooled CLS token
through SFT (per-channel scale and shift predicted from the global code)."""

from __future__ import annotations

import torch
from torch import nn


class SFT(nn.Module):
    """x -> x * (1 + gamma(c)) + beta(c), per channel; starts as the identity."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.affine = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(cond)[..., None, None].chunk(2, dim=1)
        return x * (1 + gamma) + beta


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.sft = SFT(cond_dim, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, cond):
        h = nn.functional.silu(self.conv1(x))
        h = self.sft(self.conv2(h), cond)
        return nn.functional.silu(h + self.skip(x))


class StyleUNet(nn.Module):
    """(B, C_in, R, R) + cond (B, D) -> (B, C_out, R, R); R must be divisible by 2^(levels-1)."""

    def __init__(self, cin: int, cout: int, channels: tuple[int, ...], cond_dim: int):
        super().__init__()
        self.down = nn.ModuleList()
        prev = cin
        for ch in channels:
            self.down.append(_Block(prev, ch, cond_dim))
            prev = ch
        self.up = nn.ModuleList(_Block(channels[i + 1] + channels[i], channels[i], cond_dim)
                                for i in reversed(range(len(channels) - 1)))
        self.out = nn.Conv2d(channels[0], cout, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = nn.functional.avg_pool2d(x, 2)
            x = block(x, cond)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat((x, skip), 1), cond)
        return self.out(x)

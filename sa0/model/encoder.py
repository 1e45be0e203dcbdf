"""Image encoders -> dense features and a global (CLS) code.

`vit`: a frozen timm ViT (the paper's DINO family) + a trainable DPT-style head. `cnn`
(`model.encoder=cnn`): a small convolutional encoder trained from scratch with the generator, for
proof runs on CPU where no pretrained ViT weights exist; a deviation from the paper, labelled as
such wherever its results appear."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from sa0.model.config import ModelConfig

log = logging.getLogger(__name__)
CNN = "cnn"  # model.encoder: the small trainable CNN


def create_vit(cfg: ModelConfig) -> nn.Module:
    import timm

    if cfg.encoder_weights == "hub":
        try:
            model = timm.create_model(cfg.encoder, pretrained=True, num_classes=0, img_size=cfg.image_size)
        except Exception as exc:
            raise RuntimeError(
                f"could not fetch pretrained {cfg.encoder} weights from the hub ({type(exc).__name__}: {exc}); on a "
                "machine without internet download them elsewhere and set model.encoder_weights=/path/to/file"
            ) from exc
        log.info("encoder %s: pretrained weights from the hub", cfg.encoder)
        return _maybe_freeze(model, cfg)
    model = timm.create_model(cfg.encoder, pretrained=False, num_classes=0, img_size=cfg.image_size)
    if cfg.encoder_weights:
        path = Path(cfg.encoder_weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"encoder weights not found: {path}. Download the {cfg.encoder} weights (e.g. from the timm / "
                "Hugging Face model page) on a machine with internet and pass the local file as encoder_weights."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"{path}: weights do not fit {cfg.encoder}; missing keys {missing[:5]}")
    else:
        log.warning("encoder %s is randomly initialised (no encoder_weights): for tests and demos only", cfg.encoder)
    return _maybe_freeze(model, cfg)


def _maybe_freeze(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    if cfg.freeze_encoder:
        for p in model.parameters():
            p.requires_grad_(False)
    return model


class _Fuse(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x, skip=None):
        if skip is not None:
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip
        return x + self.block(x)


class DPTHead(nn.Module):
    """Reassemble four ViT layers at 4x, 2x, 1x and 0.5x the token grid, fuse coarse to fine."""

    def __init__(self, embed_dim: int, channels: int):
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(embed_dim, channels, 1) for _ in range(4))
        self.resample = nn.ModuleList([
            nn.ConvTranspose2d(channels, channels, 4, stride=4),
            nn.ConvTranspose2d(channels, channels, 2, stride=2),
            nn.Identity(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
        ])
        self.fuse = nn.ModuleList(_Fuse(channels) for _ in range(4))
        self.out = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        maps = [r(p(x)) for x, p, r in zip(layers, self.project, self.resample)]
        x = self.fuse[3](maps[3])
        for i in (2, 1, 0):
            x = self.fuse[i](x, maps[i])
        return self.out(x)


class ConvEncoder(nn.Module):
    """images (B, 3, S, S) -> features (B, C, S/4, S/4), global code (B, 2C): two stride-2 stages and
    residual blocks at quarter resolution; the global code is the mean and max of the last map."""

    def __init__(self, channels: int):
        super().__init__()
        width = max(16, channels)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU())
        self.blocks = nn.ModuleList(_Fuse(width) for _ in range(2))
        self.out = nn.Conv2d(width, channels, 1)
        self.embed_dim = 2 * channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.out(x)
        return x, torch.cat((x.mean((2, 3)), x.amax((2, 3))), -1)


class ImageEncoder(nn.Module):
    """images (B, 3, H, W) in [0, 1] -> features (B, C, H', W') covering the image, CLS (B, D)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.encoder == CNN:
            self.cnn = ConvEncoder(cfg.dpt_channels)
        else:
            self.vit = create_vit(cfg)
            self.dpt = DPTHead(self.vit.embed_dim, cfg.dpt_channels)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @property
    def cls_dim(self) -> int:
        return self.cnn.embed_dim if self.cfg.encoder == CNN else self.vit.embed_dim

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = nn.functional.interpolate(images, size=(self.cfg.image_size, self.cfg.image_size), mode="bilinear",
                                      align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        if self.cfg.encoder == CNN:
            return self.cnn(x)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.freeze_encoder):
            outs = self.vit.forward_intermediates(x, indices=4, return_prefix_tokens=True, output_fmt="NCHW",
                                                  intermediates_only=True)
        layers = [spatial for spatial, _ in outs]
        cls = outs[-1][1][:, 0]
        return self.dpt(layers), cls

"""Generator sizes: `tiny` trains in minutes on 2 CPU cores; `paper` follows METHOD §2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """encoder: a timm ViT name; encoder_weights: a local weight file, "hub" (timm fetches the
    pretrained weights; needs internet), or None (random init, for tests and demos only, logged); image_size: encoder input; dpt_channels: dense feature width;
    unet_channels: per-level widths of the UV StyleUNet; out_channels: UV feature width (32);
    residual_hidden: FiLM MLP width; max_sources: K <= this."""

    encoder: str = "vit_small_patch14_dinov2"
    encoder_weights: str | None = None
    freeze_encoder: bool = True
    image_size: int = 112
    dpt_channels: int = 32
    unet_channels: tuple[int, ...] = (32, 48, 64)
    out_channels: int = 32
    residual_hidden: int = 64
    max_sources: int = 4

    def __post_init__(self):
        if not 1 <= self.max_sources <= 4:
            raise ValueError(f"ModelConfig.max_sources (K) must be in 1..4 (METHOD §2), got {self.max_sources}")
        if self.image_size < 28 or self.dpt_channels < 1 or self.out_channels < 1 or not self.unet_channels:
            raise ValueError("ModelConfig sizes must be positive (image_size >= 28)")

    @classmethod
    def tiny(cls) -> "ModelConfig":
        return cls()

    @classmethod
    def paper(cls, weights: str | None = None) -> "ModelConfig":
        return cls(encoder="vit_base_patch16_dinov3", encoder_weights=weights, image_size=512, dpt_channels=128,
                   unet_channels=(64, 128, 256, 256), out_channels=32, residual_hidden=256)

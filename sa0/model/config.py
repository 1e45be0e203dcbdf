"""Generator sizes: `tiny` trains in minutes on 2 CPU cores; `paper` follows METHOD §2."""

from __future__ import annotations

from dataclasses import dataclass

POOLS = ("mean", "visible")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """encoder: a timm ViT name, or "cnn" (a small convolutional encoder trained from scratch, always
    trainable, for proof runs without pretrained weights: not the paper's frozen DINO);
    encoder_weights: a local weight file, "hub" (timm fetches the pretrained weights; needs
    internet), or None (random init, for tests and demos only, logged); image_size: encoder input;
    dpt_channels: dense feature width (the CNN's output width); unet_channels: per-level widths of the UV StyleUNet; out_channels: UV feature width (32);
    residual_hidden: FiLM MLP width; max_sources: K <= this; pool: "mean" (the paper's mean over the
    K sources) or "visible" (per texel, the mean over the sources whose camera sees it: a deviation,
    parameter-free; without it a texel a source cannot see takes that source's occluder's colour)."""

    encoder: str = "vit_small_patch14_dinov2"
    encoder_weights: str | None = None
    freeze_encoder: bool = True
    image_size: int = 112
    dpt_channels: int = 32
    unet_channels: tuple[int, ...] = (32, 48, 64)
    out_channels: int = 32
    residual_hidden: int = 64
    max_sources: int = 4
    pool: str = "mean"

    def __post_init__(self):
        if not 1 <= self.max_sources <= 4:
            raise ValueError(f"ModelConfig.max_sources (K) must be in 1..4 (METHOD §2), got {self.max_sources}")
        if self.image_size < 28 or self.dpt_channels < 1 or self.out_channels < 1 or not self.unet_channels:
            raise ValueError("ModelConfig sizes must be positive (image_size >= 28)")
        if self.pool not in POOLS:
            raise ValueError(f"ModelConfig.pool must be one of {POOLS}, got {self.pool!r}")

    @classmethod
    def tiny(cls) -> "ModelConfig":
        return cls()

    @classmethod
    def paper(cls, weights: str | None = None) -> "ModelConfig":
        return cls(encoder="vit_base_patch16_dinov3", encoder_weights=weights, image_size=512, dpt_channels=128,
                   unet_channels=(64, 128, 256, 256), out_channels=32, residual_hidden=256)

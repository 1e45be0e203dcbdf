"""Using a trained generator: load an export, predict an avatar from frames of a clip.

`load_trained_generator(path, head)` -> TrainedGenerator rebuilds the Generator from an export written by
jobs/train_generator.py (sa0.train.checkpoint) and checks that the head has the layout it was
trained with. `predict_local(generator, clip, sources, target)` runs it once (no gradients) and
returns the per-texel local Gaussians for the target frame: the feed-forward avatar, and the
starting point of per-subject refinement (METHOD §4, same layout, so refinement never changes N).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from sa0.data.examples import example_from_frames
from sa0.data.schema import Clip
from sa0.head import HeadModel
from sa0.model.config import ModelConfig
from sa0.model.generator import Generator
from sa0.types import LocalGaussians


@dataclass(frozen=True)
class TrainedGenerator:
    """A trained generator in eval mode, the source image size it was trained on, its export meta."""

    model: Generator
    image_size: int
    meta: dict


def load_trained_generator(path: str | os.PathLike, head: HeadModel) -> TrainedGenerator:
    from sa0.config import from_dict
    from sa0.train.checkpoint import load_generator

    state, meta = load_generator(path)
    trained = meta.get("layout", {}).get("uv_resolution")
    if trained != head.layout.resolution:
        raise ValueError(f"generator {path} was trained with layout.uv_resolution={trained}, but this head's layout "
                         f"has {head.layout.resolution}; use --uv-resolution {trained}")
    model_cfg = dict(meta["model"])
    model_cfg["unet_channels"] = tuple(model_cfg["unet_channels"])
    model = Generator(from_dict(ModelConfig, {**model_cfg, "encoder_weights": None}), head)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"generator {path} does not fit this head (was it trained with another FLAME model?): "
                         f"{str(exc)[:300]}") from exc
    return TrainedGenerator(model.eval(), int(meta.get("image_size", 256)), meta)


def spread_sources(num_timesteps: int, first: int, k: int) -> list[tuple[int, int]]:
    """`first` plus k - 1 other timesteps spread evenly over the clip, camera 0."""
    others = [int(t) for t in np.linspace(0, num_timesteps - 1, k + 1).round() if int(t) != first]
    chosen = [first] + sorted(set(others), key=lambda t: abs(t - first), reverse=True)[: k - 1]
    return [(t, 0) for t in chosen]


@torch.no_grad()
def predict_local(generator: TrainedGenerator, clip: Clip, sources: list[tuple[int, int]],
                  target: tuple[int, int], driver: Clip | None = None) -> LocalGaussians:
    """-> LocalGaussians with (N, ...) attributes for the target frame's expression and view.
    driver: take the target frame from this clip instead (cross-reenactment: the sources' identity,
    the driver's expression, pose and camera)."""
    from sa0.train.step import prepare_batch

    model = generator.model
    example = example_from_frames(clip, sources, sources[0] if driver is not None else target,
                                  model.cfg.max_sources, generator.image_size)
    if driver is not None:
        driven = example_from_frames(driver, [target], target, 1, generator.image_size)
        example.update({k: v for k, v in driven.items() if k.startswith("tgt_") and k != "tgt_flame_shape"})
    batch = {k: torch.from_numpy(np.array(v))[None] for k, v in example.items()}
    out = model(prepare_batch(batch, model.head, model.base_positions.device).inputs)
    return LocalGaussians(*(getattr(out.local, f)[0].float().cpu() for f in LocalGaussians.__dataclass_fields__))

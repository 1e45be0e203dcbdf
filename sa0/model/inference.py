"""Using a trained generator: load an export, predict an avatar from frames of a clip.

`load_trained_generator(path, head)` -> TrainedGenerator rebuilds the Generator from an export written by
jobs/train_generator.py (sa0.train.checkpoint) and checks that the head has the layout it was
trained with. `predict_locals(generator, clip, sources, targets)` encodes the sources once and
decodes every target (no gradients), returning the per-texel local Gaussians of each target frame: the feed-forward avatar, and the
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
from sa0.model.batch import prepare_batch
from sa0.model.config import ModelConfig
from sa0.model.generator import Generator
from sa0.model.saved import load_generator
from sa0.types import LocalGaussians


@dataclass(frozen=True)
class TrainedGenerator:
    """A trained generator in eval mode, the source image size it was trained on, its export meta."""

    model: Generator
    image_size: int
    meta: dict


def load_trained_generator(path: str | os.PathLike, head: HeadModel) -> TrainedGenerator:
    from sa0.config import from_dict

    state, meta = load_generator(path)
    trained = meta.get("layout", {}).get("uv_resolution")
    if trained != head.layout.resolution:
        raise ValueError(f"generator {path} was trained with layout.uv_resolution={trained}, but this head's layout "
                         f"has {head.layout.resolution}: build the head at UV resolution {trained}")
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


def predict_local(generator: TrainedGenerator, clip: Clip, sources: list[tuple[int, int]],
                  target: tuple[int, int], driver: Clip | None = None) -> LocalGaussians:
    """-> LocalGaussians with (N, ...) attributes for one target frame (see predict_locals)."""
    return predict_locals(generator, clip, sources, [target], driver)[0]


@torch.no_grad()
def predict_locals(generator: TrainedGenerator, clip: Clip, sources: list[tuple[int, int]],
                   targets: list[tuple[int, int]], driver: Clip | None = None, chunk: int = 8) -> list[LocalGaussians]:
    """Local Gaussians for each target frame's expression and view, from one encoding of the sources
    (encoder, warp, mean-pool and UNet run once; only the heads run per target, `chunk` at a time).
    driver: take the targets from this clip instead (cross-reenactment: the sources' identity, the
    driver's expression, pose and camera; the condition carries no shape)."""
    model = generator.model
    device, size = model.base_positions.device, generator.image_size
    prepare = lambda examples: prepare_batch(  # noqa: E731
        {k: torch.from_numpy(np.stack([np.array(e[k]) for e in examples])) for k in examples[0]}, model.head, device)
    uv = model.encode(prepare([example_from_frames(clip, sources, sources[0], model.cfg.max_sources, size)]).inputs)
    out = []
    for start in range(0, len(targets), chunk):
        frames = targets[start:start + chunk]
        x = prepare([example_from_frames(driver or clip, [t], t, 1, size) for t in frames]).inputs
        result = model.decode(uv.expand(len(frames), -1, -1, -1), x.tgt_viewmat, x.tgt_condition)
        out += [LocalGaussians(*(getattr(result.local, f)[i].float().cpu() for f in LocalGaussians.__dataclass_fields__))
                for i in range(len(frames))]
    return out

"""One training example from one clip sample: K sources + 1 target, fixed shapes (METHOD §2).

Only the chosen frames are decoded. Each image is centre-cropped to a square and resized to
`image_size`; intrinsics and face boxes are transformed with it (pixel edges map to pixel edges,
so x' = s (x - x0) for continuous coordinates with pixel centres at +0.5). Sources are padded to
max_sources with `src_mask` marking the real ones; padded slots repeat source 0 (finite values).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from sa0.data.sampling import SamplerConfig, sample_phase1, sample_phase2, view_directions
from sa0.data.schema import FLAME_FIELDS, Clip
from sa0.data.shards import read_array, read_meta, sample_to_clip


@dataclass(frozen=True, kw_only=True)
class ExampleConfig:
    """phase 1 (monocular-temporal) or 2 (multi-view-spatial); output image size; the sampler."""

    phase: int = 1
    image_size: int = 256
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self):
        if self.phase not in (1, 2):
            raise ValueError(f"ExampleConfig.phase must be 1 or 2, got {self.phase}")
        if not 8 <= self.image_size <= 4096:
            raise ValueError(f"ExampleConfig.image_size must be in [8, 4096], got {self.image_size}")


def crop_resize(image: np.ndarray, K: np.ndarray, box: np.ndarray, size: int):
    """Centre square crop + resize of an (H, W[, 3]) uint8 image with its intrinsics and face box."""
    h, w = image.shape[:2]
    side = min(h, w)
    x0, y0 = (w - side) // 2, (h - side) // 2
    crop = image[y0 : y0 + side, x0 : x0 + side]
    scale = size / side
    out = np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR))
    K = K.astype(np.float32).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    K[:2] *= scale
    box = (box.astype(np.float32) - np.array([x0, y0, x0, y0], dtype=np.float32)) * scale
    return out, K, np.clip(box, 0, size)


def choose_frames(sample: dict, source: str, rng, temperature: float, cfg: ExampleConfig):
    """(sources, target) frame lists for this clip, from its metadata and arrays only."""
    meta = read_meta(sample, source)
    t, c = int(meta["num_timesteps"]), int(meta["num_cameras"])
    if cfg.phase == 2:
        return sample_phase2(rng, t, c, cfg.sampler)
    dirs = view_directions(read_array(sample, "viewmats", source), read_array(sample, "flame_global_rot", source))
    return sample_phase1(rng, dirs, read_array(sample, "flame_expression", source), temperature, cfg.sampler)


def _frame(clip: Clip, frame, size):
    t, c = frame
    image, K, box = crop_resize(clip.images[t, c], clip.Ks[t, c], clip.face_boxes[t, c], size)
    matte, _, _ = crop_resize(clip.mattes[t, c], clip.Ks[t, c], clip.face_boxes[t, c], size)
    flame = {name: getattr(clip.flame, name)[t] for name in FLAME_FIELDS}
    return image, matte, clip.viewmats[t, c], K, box, flame


def build_example(sample: dict, source: str, rng, temperature: float, cfg: ExampleConfig) -> dict[str, np.ndarray]:
    """-> dict of fixed-shape arrays: src_* (Kmax, ...), src_mask (Kmax,), tgt_* (...)."""
    sources, target = choose_frames(sample, source, rng, temperature, cfg)
    clip = sample_to_clip(sample, source, frames=sources + [target])
    return example_from_frames(clip, sources, target, cfg.sampler.max_sources, cfg.image_size)


def example_from_frames(clip: Clip, sources: list, target, kmax: int, size: int) -> dict[str, np.ndarray]:
    """One example from chosen (timestep, camera) frames of a clip; sources padded to kmax."""
    src = [_frame(clip, f, size) for f in sources]
    src += [src[0]] * (kmax - len(src))
    tgt = _frame(clip, target, size)
    example = {
        "src_images": np.stack([s[0] for s in src]),
        "src_mask": np.arange(kmax) < len(sources),
        "src_viewmats": np.stack([s[2] for s in src]).astype(np.float32),
        "src_Ks": np.stack([s[3] for s in src]),
        "tgt_image": tgt[0],
        "tgt_matte": tgt[1],
        "tgt_viewmat": tgt[2].astype(np.float32),
        "tgt_K": tgt[3],
        "tgt_face_box": tgt[4],
    }
    for name in FLAME_FIELDS:
        example[f"src_flame_{name}"] = np.stack([s[5][name] for s in src]).astype(np.float32)
        example[f"tgt_flame_{name}"] = tgt[5][name].astype(np.float32)
    return example

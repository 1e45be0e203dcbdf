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
from sa0.data.reader import ClipIndex, ShardReader
from sa0.data.schema import FLAME_FIELDS, Clip


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


def choose_frames(index: ClipIndex, rng, temperature: float, cfg: ExampleConfig):
    """(sources, target) frame lists for this clip, from its index only (no image is read)."""
    t, c = index.num_timesteps, index.num_cameras
    if cfg.phase == 2:
        return sample_phase2(rng, t, c, cfg.sampler)
    a = index.arrays
    return sample_phase1(rng, view_directions(a["viewmats"], a["flame_global_rot"]), a["flame_expression"],
                         temperature, cfg.sampler)


def build_example(reader: ShardReader, index: ClipIndex, rng, temperature: float, cfg: ExampleConfig) -> dict[str, np.ndarray]:
    """-> dict of fixed-shape arrays: src_* (Kmax, ...), src_mask (Kmax,), tgt_* (...). Reads exactly
    the chosen frames (K + 1, fewer if repeated) through `reader`."""
    sources, target = choose_frames(index, rng, temperature, cfg)
    frames = {f: reader.frame(index, *f) for f in dict.fromkeys(sources + [target])}
    a = index.arrays
    flame = {name: a[f"flame_{name}"] for name in FLAME_FIELDS}
    return assemble_example(frames.__getitem__, a["viewmats"], a["ks"], a["face_boxes"], flame, sources, target,
                            cfg.sampler.max_sources, cfg.image_size)


def example_from_frames(clip: Clip, sources: list, target, kmax: int, size: int) -> dict[str, np.ndarray]:
    """One example from chosen (timestep, camera) frames of an in-memory clip; sources padded to kmax."""
    return assemble_example(lambda f: (clip.images[f], clip.mattes[f]), clip.viewmats, clip.Ks, clip.face_boxes,
                            clip.flame.as_dict(), sources, target, kmax, size)


def assemble_example(frame, viewmats, Ks, boxes, flame: dict, sources: list, target, kmax: int, size: int):
    """frame((t, c)) -> (rgb, matte); the per-frame arrays (T, C, ...) and FLAME track {name: (T, w)}."""

    def one(f):
        t, c = f
        rgb, matte = frame(f)
        image, K, box = crop_resize(rgb, Ks[t, c], boxes[t, c], size)
        matte, _, _ = crop_resize(matte, Ks[t, c], boxes[t, c], size)
        return image, matte, viewmats[t, c], K, box, {name: flame[name][t] for name in FLAME_FIELDS}

    src = [one(f) for f in sources]
    src += [src[0]] * (kmax - len(src))
    tgt = one(target)
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

"""A square face crop per frame that is stable over time, and the intrinsics that go with it.

From each frame's landmark box: centre (moved up a little, toward the hair) and size. For video,
one size for the whole clip (the median, times `scale`) and centres smoothed over time with a
Gaussian of `sigma` frames, so the crop does not jitter with the landmarks; for photos, each its own.
A crop is (x0, y0, side) in frame pixels; it is resampled to out x out, and K_crop = A K with A the
scale-and-shift from frame to crop pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def face_boxes(landmarks: np.ndarray) -> np.ndarray:
    """(T, N, 2) landmarks (NaN allowed) -> (T, 4) boxes x0, y0, x1, y1."""
    return np.concatenate((np.nanmin(landmarks, 1), np.nanmax(landmarks, 1)), 1)


def stable_crops(boxes: np.ndarray, frame_index: np.ndarray, video: bool, scale: float = 2.0,
                 sigma: float = 3.0, lift: float = 0.12) -> np.ndarray:
    """(T, 4) face boxes of the frames used (frame numbers `frame_index`) -> (T, 3) crops."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = (boxes[:, 2:] - boxes[:, :2]).max(1)
    centre = centre - np.stack((np.zeros_like(size), lift * size), 1)
    if video and len(boxes) > 1:
        t = np.asarray(frame_index, dtype=np.float64)
        weights = np.exp(-0.5 * ((t[:, None] - t[None, :]) / max(sigma, 1e-6)) ** 2)
        centre = weights @ centre / weights.sum(1, keepdims=True)
        side = np.full(len(boxes), scale * np.median(size))
    else:
        side = scale * size
    return np.concatenate((centre - side[:, None] / 2, side[:, None]), 1)


def crop_matrix(crop: np.ndarray, out: int) -> np.ndarray:
    """Frame pixels -> crop pixels (3 x 3)."""
    x0, y0, side = crop
    r = out / side
    return np.array([[r, 0, -r * x0], [0, r, -r * y0], [0, 0, 1]], dtype=np.float64)


def crop_intrinsics(K: np.ndarray, crop: np.ndarray, out: int) -> np.ndarray:
    return (crop_matrix(crop, out) @ K).astype(np.float32)


def crop_image(image: np.ndarray, crop: np.ndarray, out: int, source_scale: float = 1.0) -> np.ndarray:
    """Resample the crop of `image` (uint8, (H, W) or (H, W, 3)) to out x out; outside is black.
    source_scale: `image` is the frame scaled by this factor (a smaller copy of a matte)."""
    x0, y0, side = np.asarray(crop, dtype=np.float64) * source_scale
    step = side / out  # input pixels per output pixel; continuous coordinates, pixel i covers [i, i + 1)
    img = Image.fromarray(image)
    factor = int(step // 2)
    if factor > 1:  # shrinking a lot: box-filter down first so bilinear does not alias
        img = img.reduce(factor)
        x0, y0, step = x0 / factor, y0 / factor, step / factor
    return np.asarray(img.transform((out, out), Image.AFFINE, (step, 0, x0, 0, step, y0), resample=Image.BILINEAR,
                                    fillcolor=0))

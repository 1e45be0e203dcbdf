"""Reading frames: a video file (imageio's ffmpeg) or a list / folder of photos, as a re-readable
`FrameSource` (the tracker reads it twice: once to detect, once to crop)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class TrackError(ValueError):
    """The input cannot be tracked (unreadable, empty, no usable frame); the message names the file."""


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source (video frame number / photo number)
    image: np.ndarray  # (H, W, 3) uint8 RGB
    source: str


@dataclass(frozen=True)
class FrameSource:
    """name: a subject name from the input; count: frames that will be read (None: unknown);
    fps: playback rate of the frames read; video: consecutive frames of one camera; frames():
    a fresh iterator over Frame | (index, source, reason) for a frame that could not be read."""

    name: str
    source: str
    count: int | None
    fps: float
    video: bool
    frames: Callable[[], Iterator]


def video_source(path, every: int = 1, max_frames: int | None = None) -> FrameSource:
    """Every `every`-th frame of a video file, at most `max_frames`."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.is_file():
        raise TrackError(f"{path}: video file not found")
    try:
        reader = imageio.get_reader(str(path), format="ffmpeg")
        meta = reader.get_meta_data()
        reader.close()
    except Exception as exc:
        raise TrackError(f"{path}: cannot be read as a video ({type(exc).__name__}: {str(exc)[:200]})") from exc
    fps = float(meta.get("fps") or 25.0)
    total = meta.get("nframes")
    if not isinstance(total, (int, float)) or not math.isfinite(total):
        duration = meta.get("duration")
        total = int(round(duration * fps)) if duration else None
    count = None if total is None else len(range(0, int(total), every))
    if count is not None and max_frames is not None:
        count = min(count, max_frames)

    def frames():
        reader = imageio.get_reader(str(path), format="ffmpeg")
        taken = 0
        try:
            for i, image in enumerate(reader):
                if i % every:
                    continue
                if max_frames is not None and taken >= max_frames:
                    break
                taken += 1
                yield Frame(i, np.asarray(image)[..., :3], f"{path} frame {i}")
        except Exception as exc:  # a truncated file: keep what was read
            yield (i + 1 if taken else 0, f"{path}", f"video stream ended early ({type(exc).__name__})")
        finally:
            reader.close()

    return FrameSource(path.stem, str(path), count, fps / every, True, frames)


def image_source(paths) -> FrameSource:
    """Photos: files, or folders whose image files are taken in name order; each is a frame."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise TrackError(f"{p}: no such file or folder")
    if not files:
        raise TrackError(f"{', '.join(map(str, paths))}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    from PIL import Image

    def frames():
        for i, f in enumerate(files):
            try:
                with Image.open(f) as img:
                    yield Frame(i, np.asarray(img.convert("RGB")), str(f))
            except Exception as exc:
                yield (i, str(f), f"cannot be decoded as an image ({type(exc).__name__})")

    first = Path(paths[0])
    return FrameSource(first.name if first.is_dir() else first.stem, ", ".join(map(str, paths)), len(files), 1.0,
                       False, frames)


def array_source(images: np.ndarray, name: str = "frames", fps: float = 25.0, video: bool = True) -> FrameSource:
    """Frames already in memory, (T, H, W, 3) uint8 (tests, benchmarks, notebooks)."""
    def frames():
        for i, image in enumerate(images):
            yield Frame(i, np.asarray(image), f"{name} frame {i}")

    return FrameSource(name, name, len(images), fps, video, frames)

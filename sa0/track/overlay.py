"""The check video: each crop with the fitted mesh (thin grey edges), the detected landmarks (green)
and the fitted ones (red); skipped frames show the whole frame and why."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def draw_fit(image: np.ndarray, mesh_px: np.ndarray, edges: np.ndarray, observed: np.ndarray,
             fitted: np.ndarray, text: str) -> np.ndarray:
    """image (S, S, 3) uint8; mesh_px (V, 2) projected vertices; edges (E, 2) vertex pairs to draw;
    observed / fitted (L, 2) landmark pixels (NaN: not drawn)."""
    img = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    seg = mesh_px[edges].reshape(-1, 4)
    for x0, y0, x1, y1 in seg[np.isfinite(seg).all(1)]:
        draw.line((x0, y0, x1, y1), fill=(220, 220, 220, 70), width=1)
    r = max(1.5, image.shape[0] / 256)
    for points, colour in ((observed, (40, 230, 60, 255)), (fitted, (240, 40, 40, 255))):
        for x, y in points[np.isfinite(points).all(1)]:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    draw.text((6, 4), text, fill=(255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(img, layer).convert("RGB"))


def draw_skipped(image: np.ndarray, size: int, text: str) -> np.ndarray:
    """The whole frame letterboxed into size x size, with the reason it was skipped."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    small = Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    canvas.paste(small, ((size - small.width) // 2, (size - small.height) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, size, 16), fill=(150, 0, 0))
    draw.text((6, 3), text, fill=(255, 255, 255))
    return np.asarray(canvas)


def mesh_edges(faces: np.ndarray, every: int = 1) -> np.ndarray:
    """Unique undirected edges of a triangle mesh (every `every`-th, to keep large meshes legible)."""
    e = np.concatenate((faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]))
    e = np.unique(np.sort(e, 1), axis=0)
    return e[::every]


class VideoWriter:
    """mp4 (H.264 via imageio-ffmpeg) written to a temporary name and renamed when closed."""

    def __init__(self, path, fps: float):
        import imageio.v2 as imageio

        self.path = str(path)
        self.tmp = self.path + ".tmp.mp4"
        self.writer = imageio.get_writer(self.tmp, fps=max(fps, 1.0), codec="libx264", quality=7,
                                         macro_block_size=1, ffmpeg_log_level="error")

    def add(self, frame: np.ndarray) -> None:
        self.writer.append_data(frame)

    def close(self) -> None:
        import os

        self.writer.close()
        os.replace(self.tmp, self.path)

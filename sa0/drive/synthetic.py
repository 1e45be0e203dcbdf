"""A video to drive with where no camera is: the shipped ICT head, textured, facing the camera, its
mouth closed and then open (ICT's jawOpen: the jaw joint turned by its angle and the jawOpen shape)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from sa0.head import HeadModel
from sa0.heads.ict import IctFacts
from sa0.types import FlameParams


def talking_head_frames(head: HeadModel, weights, size: int = 384) -> list[np.ndarray]:
    """One (size, size, 3) uint8 frame per jawOpen weight in `weights`, rendered by the mesh rasteriser;
    head: the ICT head (its expressions are ARKit's)."""
    from sa0.track.embedding import ict_textured_head, render_view

    facts = IctFacts.read(head.model_dir)
    textured = ict_textured_head(head.model_dir, size=512)
    frames = []
    for weight in weights:
        expr = torch.zeros(1, head.flame.num_expression)
        expr[0, facts.expression_names.index("jawOpen")] = float(weight)
        jaw = torch.as_tensor(facts.jaw_axis * facts.jaw_open_angle * float(weight), dtype=torch.float32)[None]
        zeros = torch.zeros(1, 3)
        params = FlameParams(torch.zeros(1, head.flame.num_shape), expr, zeros, zeros, jaw, torch.zeros(1, 6), zeros)
        with torch.no_grad():
            verts = head.flame(params)[0].double().numpy()
        frames.append(render_view(dataclasses.replace(textured, verts=verts), 0.0, 0.0, size)[0])
    return frames


def known_landmarks(layer, frames: int, noise_px: float = 0.5, size: int = 512, focal: float = 1.8, seed: int = 0):
    """Landmarks of known parameters for checking the live fit: a random identity, a head turning
    +-23 degrees and nodding, the jaw opening and closing, ten expression components moving; each
    frame projected at `size`^2 (focal in units of the side) with Gaussian pixel noise.
    -> (shape (S,), truths: FlameParams (1, ...) per frame, observed (L, 2) per frame)."""
    from sa0.track.fit import project

    gen = torch.Generator().manual_seed(seed)
    shape = torch.randn(layer.num_shape, generator=gen) * 0.5
    rng = np.random.default_rng(seed)
    truths, seen = [], []
    for t in range(frames):
        phase = t / frames * 2 * np.pi
        expr = torch.zeros(1, layer.num_expression)
        expr[0, :10] = 0.3 * torch.sin(torch.arange(10) + phase)
        truth = FlameParams(shape[None], expr, torch.tensor([[0.1 * np.sin(phase), 0.4 * np.sin(phase), 0.05]]),
                            torch.zeros(1, 3), torch.tensor([[0.15 + 0.12 * np.sin(2 * phase), 0.0, 0.0]]),
                            torch.zeros(1, 6), torch.tensor([[0.0, -0.02, -0.7]]))
        pix = project(layer(truth), torch.tensor([focal * size]), torch.tensor([[size / 2, size / 2]]))[0].numpy()
        truths.append(truth)
        seen.append(pix + rng.normal(0, noise_px, pix.shape).astype(np.float32))
    return shape.numpy(), truths, seen

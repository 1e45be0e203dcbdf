"""The viewer's sliders: jaw and the main expressions, posed on the server (drive.py --serve).

On an ICT-FaceKit avatar the sliders are ARKit weights (0..1) of the expressions a face shows most,
each moving the shapes it names (a smile both corners); jawOpen turns the jaw as ARKit input does.
On another head (FLAME, synthetic: no named expressions) there is one slider, the jaw's rotation.
"""

from __future__ import annotations

import numpy as np
import torch

from sa0.drive.streams import arkit_to_head
from sa0.types import FlameParams

ARKIT_SLIDERS = {
    "jawOpen": ("jawOpen",), "smile": ("mouthSmileLeft", "mouthSmileRight"), "frown": ("mouthFrownLeft", "mouthFrownRight"),
    "pucker": ("mouthPucker",), "funnel": ("mouthFunnel",), "browsUp": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "browsDown": ("browDownLeft", "browDownRight"), "blink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "eyesWide": ("eyeWideLeft", "eyeWideRight"), "cheekPuff": ("cheekPuff",),
}


class Sliders:
    """values -> FlameParams (1, ...) with the avatar's shape. facts: IctFacts for an ICT head, else None."""

    def __init__(self, num_shape: int, num_expression: int, shape: np.ndarray, facts=None):
        self.facts, self.num_expression = facts, num_expression
        self.shape = torch.zeros(1, num_shape)
        width = min(num_shape, len(shape))
        self.shape[0, :width] = torch.as_tensor(np.asarray(shape, np.float32)[:width])
        if facts is not None:
            self.controls = [{"name": n, "min": 0.0, "max": 1.0} for n in ARKIT_SLIDERS]
            names = [a for group in ARKIT_SLIDERS.values() for a in group]
            self.matrix = arkit_to_head(names, facts.expression_names)  # (A, E)
        else:
            self.controls = [{"name": "jaw", "min": 0.0, "max": 0.5}]
        self.values = {c["name"]: 0.0 for c in self.controls}

    def params(self, changed: dict) -> FlameParams:
        """Apply the moved sliders (unknown names ignored, values clipped to their range)."""
        for c in self.controls:
            if c["name"] in changed:
                self.values[c["name"]] = float(np.clip(float(changed[c["name"]]), c["min"], c["max"]))
        expr = torch.zeros(1, self.num_expression)
        jaw = torch.zeros(1, 3)
        if self.facts is not None:
            weights = np.array([self.values[n] for n, group in ARKIT_SLIDERS.items() for _ in group], np.float32)
            width = min(self.num_expression, self.matrix.shape[1])
            expr[0, :width] = torch.as_tensor(weights @ self.matrix)[:width]
            jaw[0] = torch.as_tensor(self.values["jawOpen"] * self.facts.jaw_axis * self.facts.jaw_open_angle)
        else:
            jaw[0, 0] = self.values["jaw"]
        zeros = torch.zeros(1, 3)
        return FlameParams(self.shape, expr, zeros, zeros, jaw, torch.zeros(1, 6), zeros)

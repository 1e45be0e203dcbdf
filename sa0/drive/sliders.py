"""The viewer's sliders: jaw and the main expressions, posed on the server (drive.py --serve).

The sliders are ARKit weights (0..1) of the expressions a face shows most, each moving the shapes
it names (a smile both corners), through the head's ARKit map (sa0.drive.arkit: ICT's own, or the
map fitted for FLAME and the synthetic head), so they pose every head as ARKit input does. Without
a map (a FLAME with no MediaPipe embedding) there is one slider, the jaw's rotation.
"""

from __future__ import annotations

import numpy as np
import torch

from sa0.drive.arkit import ArkitMap
from sa0.types import FlameParams

ARKIT_SLIDERS = {
    "jawOpen": ("jawOpen",), "smile": ("mouthSmileLeft", "mouthSmileRight"), "frown": ("mouthFrownLeft", "mouthFrownRight"),
    "pucker": ("mouthPucker",), "funnel": ("mouthFunnel",), "browsUp": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "browsDown": ("browDownLeft", "browDownRight"), "blink": ("eyeBlinkLeft", "eyeBlinkRight"),
    "eyesWide": ("eyeWideLeft", "eyeWideRight"), "cheekPuff": ("cheekPuff",),
}


class Sliders:
    """values -> FlameParams (1, ...) with the avatar's shape. mapping: the head's ARKit map, or None."""

    def __init__(self, num_shape: int, num_expression: int, shape: np.ndarray, mapping: ArkitMap | None = None):
        self.mapping, self.num_expression = mapping, num_expression
        self.shape = torch.zeros(1, num_shape)
        width = min(num_shape, len(shape))
        self.shape[0, :width] = torch.as_tensor(np.asarray(shape, np.float32)[:width])
        if mapping is not None:
            self.controls = [{"name": n, "min": 0.0, "max": 1.0} for n in ARKIT_SLIDERS]
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
        eyes = torch.zeros(1, 6)
        if self.mapping is not None:
            names = [a for group in ARKIT_SLIDERS.values() for a in group]
            weights = np.array([[self.values[n] for n, group in ARKIT_SLIDERS.items() for _ in group]], np.float32)
            posed = self.mapping.apply(weights, names)
            width = min(self.num_expression, posed["expression"].shape[1])
            expr[0, :width] = torch.as_tensor(posed["expression"][0, :width])
            jaw[0], eyes[0] = torch.as_tensor(posed["jaw"][0]), torch.as_tensor(posed["eyes"][0])
        else:
            jaw[0, 0] = self.values["jaw"]
        zeros = torch.zeros(1, 3)
        return FlameParams(self.shape, expr, zeros, zeros, jaw, eyes, zeros)

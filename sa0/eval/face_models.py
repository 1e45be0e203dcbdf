"""Identity and expression metrics through user-provided face models (METHOD §6: CSIM, AED, APD, AKD).

sa0 ships no face models (their weights have their own licences). Give TorchScript files
(`torch.jit.save`) with these contracts; images are (B, 3, H, W) float in [0, 1]:
  arcface     images -> (B, D) identity embeddings           CSIM = cosine(source, prediction)
  dmm         images -> (expression (B, E), pose (B, P))     AED / APD = mean |prediction - driver|
  landmarks   images -> (B, L, 2) pixel coordinates          AKD = mean keypoint distance (px)
A missing or broken file makes that metric Unavailable with the reason; the others still come out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sa0.eval.metrics import Unavailable


@dataclass(frozen=True, kw_only=True)
class FaceModelConfig:
    arcface: str | None = None
    dmm: str | None = None
    landmarks: str | None = None


def _load(path: str | None, what: str):
    if not path:
        return Unavailable(f"no {what} model given (pass a TorchScript file; see sa0/eval/face_models.py)")
    if not Path(path).is_file():
        return Unavailable(f"{what} model file {path} does not exist")
    try:
        return torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - report, never crash the evaluation
        return Unavailable(f"{what} model {path} could not be loaded: {exc}"[:400])


class FaceMetrics:
    def __init__(self, cfg: FaceModelConfig):
        self.arcface = _load(cfg.arcface, "ArcFace identity")
        self.dmm = _load(cfg.dmm, "3DMM regressor")
        self.landmarks = _load(cfg.landmarks, "landmark detector")

    @staticmethod
    def _nchw(images: torch.Tensor) -> torch.Tensor:
        return images.permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def csim(self, sources: torch.Tensor, preds: torch.Tensor):
        """Per-image cosine similarity (B,) of identity embeddings; images (B, H, W, 3)."""
        if isinstance(self.arcface, Unavailable):
            return self.arcface
        a, b = self.arcface(self._nchw(sources)), self.arcface(self._nchw(preds))
        return torch.nn.functional.cosine_similarity(a, b, dim=-1)

    @torch.no_grad()
    def aed_apd(self, preds: torch.Tensor, drivers: torch.Tensor):
        """(AED (B,), APD (B,)): mean absolute expression / pose coefficient differences."""
        if isinstance(self.dmm, Unavailable):
            return self.dmm, self.dmm
        (e1, p1), (e2, p2) = self.dmm(self._nchw(preds)), self.dmm(self._nchw(drivers))
        return (e1 - e2).abs().mean(-1), (p1 - p2).abs().mean(-1)

    @torch.no_grad()
    def akd(self, preds: torch.Tensor, targets: torch.Tensor):
        """Mean keypoint distance in pixels (B,)."""
        if isinstance(self.landmarks, Unavailable):
            return self.landmarks
        return (self.landmarks(self._nchw(preds)) - self.landmarks(self._nchw(targets))).norm(dim=-1).mean(-1)

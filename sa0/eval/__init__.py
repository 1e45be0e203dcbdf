"""Evaluation: metrics defined once (metrics.py), face-model adapters (face_models.py), protocols
(protocols.py) and the Ray runner that writes results tables (run.py). METHOD §6."""

from sa0.eval.metrics import PSNR_CAP, Unavailable
from sa0.eval.protocols import PROTOCOLS, EvalConfig

__all__ = ["EvalConfig", "PROTOCOLS", "PSNR_CAP", "Unavailable"]

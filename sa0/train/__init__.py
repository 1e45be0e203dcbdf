"""Generator training: the single-device step (step.py) and the Ray Train + DeepSpeed loop (loop.py)."""

from sa0.model.batch import prepare_batch
from sa0.train.step import LossConfig, compute_losses

__all__ = ["LossConfig", "compute_losses", "prepare_batch"]

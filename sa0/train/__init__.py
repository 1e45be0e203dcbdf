"""Generator training: the single-device step (step.py) and the Ray Train + DeepSpeed loop (loop.py)."""

from sa0.train.step import LossConfig, compute_losses, prepare_batch

__all__ = ["LossConfig", "compute_losses", "prepare_batch"]

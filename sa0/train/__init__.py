"""Generator training: the single-device step (step.py); Ray Train + DeepSpeed wiring comes next."""

from sa0.train.step import LossConfig, compute_losses, prepare_batch

__all__ = ["LossConfig", "compute_losses", "prepare_batch"]

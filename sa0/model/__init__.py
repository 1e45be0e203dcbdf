"""The feed-forward generator f(sources) -> FLAME-bound Gaussians (METHOD §2)."""

from sa0.model.config import ModelConfig
from sa0.model.generator import Generator, GeneratorInputs, GeneratorOutputs

__all__ = ["Generator", "GeneratorInputs", "GeneratorOutputs", "ModelConfig"]

"""Layout-preserving per-subject refinement (METHOD §4)."""

from sa0.refine.refine import RefineConfig, RefineResult, refine_subject
from sa0.refine.reference import choose_reference_frame, neutral_init

__all__ = ["RefineConfig", "RefineResult", "choose_reference_frame", "neutral_init", "refine_subject"]

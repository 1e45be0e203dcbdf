"""Layout-preserving per-subject refinement (METHOD §4)."""

from sa0.refine.batched import refine_subject
from sa0.refine.reference import choose_reference_frame, neutral_init
from sa0.refine.refine import RefineConfig, RefineResult

__all__ = ["RefineConfig", "RefineResult", "choose_reference_frame", "neutral_init", "refine_subject"]

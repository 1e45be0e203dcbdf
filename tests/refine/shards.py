"""Test helper: small synthetic mono shards for refinement tests (UV 16, 5 frames at 32^2)."""

from __future__ import annotations

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model


def mono_shards(root, synthetic_dir, subjects: int, seed: int):
    """Shards of `subjects` synthetic subjects (subj0000, ...) rendered into `root`; returns root."""
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=16))
    write_shards(synthetic_clips(head, "mono", subjects, 1, 5, 1, 32, DOMAINS["studio"], seed=seed), root)
    return root

"""Data the training tests share: two small monocular synthetic clips (the golden loss curve of
tests/train/test_local.py is pinned to exactly these)."""

import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model


@pytest.fixture(scope="module")
def shards(synthetic_dir, tmp_path_factory):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))
    out = tmp_path_factory.mktemp("mono")
    write_shards(synthetic_clips(head, "mono", 2, 1, 6, 1, 64, DOMAINS["studio"], seed=3), out)
    return out

"""Shared fixtures: the synthetic FLAME-format head (built once per session), its layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sa0.flame.io import load_flame_assets, load_uv
from sa0.flame.synthetic import write_synthetic_flame
from sa0.gaussians import build_uv_layout


SHARED_DATA = Path(os.environ.get("SA0_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared_data(*parts) -> Path:
    """A path under ../shared/data (real videos, ICT-FaceKit); skips the test, saying why, where it is absent
    (a user's clone has no shared/data; CI does)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the team's shared data (../shared/data) is not beside this clone")
    return path


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    return write_synthetic_flame(tmp_path_factory.mktemp("synthetic_flame"), seed=0)


@pytest.fixture(scope="session")
def assets(synthetic_dir):
    return load_flame_assets(synthetic_dir)


@pytest.fixture(scope="session")
def uv(synthetic_dir, assets):
    return load_uv(synthetic_dir / "head_template_mesh.obj", assets.num_faces)


@pytest.fixture(scope="session")
def layout64(uv):
    return build_uv_layout(*uv, 64)


@pytest.fixture(scope="session")
def mesh(assets):
    """Rest vertices (V, 3) float64 and faces (F, 3)."""
    return torch.as_tensor(assets.v_template), torch.as_tensor(assets.faces)


@pytest.fixture
def rng():
    return np.random.default_rng(0)



@pytest.fixture(autouse=True)
def _no_leaked_mlflow_uri(monkeypatch):
    """mlflow.set_tracking_uri also sets $MLFLOW_TRACKING_URI, which jobs read as their default:
    start every test without it and restore the environment afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

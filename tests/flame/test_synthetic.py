"""The synthetic head: deterministic, closed, outward-facing, varied under shape and expression."""

import hashlib

import numpy as np
import pytest
import torch

from sa0.flame import FlameLayer, load_flame_assets
from sa0.flame.synthetic import build_synthetic_head, main
from sa0.types import FlameParams


def test_same_seed_same_files_other_seed_other_head(tmp_path):
    digests = []
    for sub, seed in (("a", 5), ("b", 5), ("c", 6)):
        main(["--out", str(tmp_path / sub), "--seed", str(seed)])
        digests.append(hashlib.sha256((tmp_path / sub / "FLAME_NEUTRAL.pkl").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_mesh_is_closed_and_outward_facing(assets):
    faces = assets.faces
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()  # every edge shared by exactly two faces: watertight
    v = assets.v_template
    # Each closed component (head, two eyes) has positive signed volume: normals point outward.
    labels = np.zeros(len(v), dtype=int)
    labels[assets.weights[:, 3] > 0.99] = 1
    labels[assets.weights[:, 4] > 0.99] = 2
    for part in range(3):
        f = faces[labels[faces[:, 0]] == part]
        volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
        assert volume > 0, part
    assert 2000 < len(v) < 4000 and 4000 < len(faces) < 8000


def test_head_sized_like_flame(assets):
    extent = assets.v_template.max(0) - assets.v_template.min(0)
    assert 0.15 < extent[0] < 0.22 and 0.25 < extent[1] < 0.35 and 0.17 < extent[2] < 0.25  # metres


@pytest.mark.parametrize("basis,count", [("shape", 300), ("expression", 100)])
def test_bases_produce_varied_bounded_deformations(assets, basis, count):
    layer = FlameLayer(assets, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    params = FlameParams.zeros(4, 300, 100, dtype=torch.float64)
    coeffs = torch.randn(4, count, generator=g, dtype=torch.float64)
    verts = layer(FlameParams(**{**params.__dict__, basis: coeffs}))
    offsets = (verts - torch.from_numpy(assets.v_template)).norm(dim=-1)
    assert 0.002 < offsets.max() < 0.05  # visible, but still a head (metres)
    pairwise = (verts[0] - verts[1]).norm(dim=-1).max()
    assert pairwise > 0.002  # different coefficients, different heads


def test_expressions_leave_the_back_of_the_head_alone(assets):
    head = build_synthetic_head(seed=0)
    expr = head["shapedirs"][:, :, 300:]
    back = assets.v_template[:, 2] < -0.05
    assert np.abs(expr[back]).max() < 1e-4 * np.abs(expr).max() + 1e-9


def test_loads_through_the_public_loader(synthetic_dir):
    assets = load_flame_assets(synthetic_dir)
    assert assets.shapedirs.shape[2] == 400 and assets.posedirs.shape[2] == 36
    assert np.abs(assets.posedirs).max() > 0  # pose correctives exist (exercised by the parity test)

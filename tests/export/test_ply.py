"""PLY round trip through plyfile preserves every attribute."""

import pytest
import torch

from sa0.export import export_ply, load_ply
from sa0.render.scenes import random_gaussians


def test_ply_round_trip(tmp_path):
    g = random_gaussians(300, seed=4)
    path = export_ply(g, tmp_path / "out" / "avatar.ply")
    assert path.is_file() and not list(path.parent.glob("*.tmp*"))
    back = load_ply(path)
    torch.testing.assert_close(back.means, g.means)
    torch.testing.assert_close(back.scales, g.scales, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(back.quats, torch.nn.functional.normalize(g.quats, dim=-1))
    torch.testing.assert_close(back.opacities, g.opacities, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(back.colors, g.colors, rtol=1e-5, atol=1e-6)


def test_ply_refuses_feature_colours(tmp_path):
    g = random_gaussians(10, channels=32)
    with pytest.raises(ValueError, match="RGB"):
        export_ply(g, tmp_path / "x.ply")

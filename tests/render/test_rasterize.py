"""The tiled backend against its dense twin: outputs and gradients, on hard scenes."""

import pytest
import torch

from sa0.config import RenderConfig
from sa0.render import render
from sa0.render.scenes import edge_case_gaussians as hard_scene
from sa0.render.scenes import orbit_cameras, random_gaussians
from sa0.types import Cameras, Gaussians
from tests.render.helpers import FIELDS, assert_rel_close as _assert_rel_close, render_with_grads as _render_with_grads


@pytest.mark.parametrize("channels", [3, 32])
def test_tiled_matches_dense_outputs_and_gradients_float64(channels):
    g = hard_scene(channels)
    cams = orbit_cameras(2, 37, 29)  # not a multiple of the tile size
    bg = torch.linspace(0.1, 0.6, channels, dtype=torch.float64)
    dense, dense_grads = _render_with_grads(g, cams, RenderConfig(backend="dense"), bg)
    tiled, tiled_grads = _render_with_grads(g, cams, RenderConfig(backend="tiled", chunk=8), bg)
    assert 0.05 < dense.alpha.mean() < 0.95  # a scene with both coverage and background
    _assert_rel_close(tiled.image, dense.image, 1e-4, "image")
    _assert_rel_close(tiled.alpha, dense.alpha, 1e-4, "alpha")
    for name, a, b in zip(FIELDS + ("background",), tiled_grads, dense_grads):
        assert torch.isfinite(a).all(), name
        assert b.abs().max() > 0, name
        _assert_rel_close(a, b, 1e-4, name)


def test_tiled_matches_dense_float32():
    g = hard_scene(3, torch.float32, seed=3)
    cams = orbit_cameras(1, 48, 40, dtype=torch.float32)
    bg = torch.tensor([0.2, 0.3, 0.4])
    dense, dense_grads = _render_with_grads(g, cams, RenderConfig(backend="dense"), bg)
    tiled, tiled_grads = _render_with_grads(g, cams, RenderConfig(backend="tiled"), bg)
    assert (tiled.image - dense.image).abs().max() < 1e-5
    for name, a, b in zip(FIELDS + ("background",), tiled_grads, dense_grads):
        _assert_rel_close(a, b, 1e-3, name)


@pytest.mark.parametrize("tile_size,chunk", [(4, 1), (8, 5), (16, 64), (32, 16)])
def test_tile_size_and_chunk_change_nothing(tile_size, chunk):
    g = hard_scene(3)
    cams = orbit_cameras(1, 40, 24)
    ref = render(g, cams, config=RenderConfig(backend="tiled")).image
    out = render(g, cams, config=RenderConfig(backend="tiled", tile_size=tile_size, chunk=chunk)).image
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_gradcheck_tiny_scene():
    """Finite differences against the hand-written backward (float64)."""
    from sa0.render.projection import project
    from sa0.render.tiled import rasterize_tiled

    g = random_gaussians(4, seed=11, radius=0.1, median_scale=0.08, dtype=torch.float64)
    cams = orbit_cameras(1, 10, 8, dtype=torch.float64)
    proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, 10, 8)
    means2d = proj.means2d.detach().requires_grad_()
    conics = proj.conics.detach().requires_grad_()
    opac = (0.8 * g.opacities[None]).detach().requires_grad_()  # away from the 0.99 clamp
    colors = g.colors[None].detach().requires_grad_()
    bg = torch.tensor([[0.3, 0.1, 0.2]], dtype=torch.float64, requires_grad=True)

    def fn(m, c, o, col, b):
        p = type(proj)(m, proj.cov2d.detach(), c, proj.depths.detach(), proj.radii)
        image, alpha = rasterize_tiled(p, col, o, b, 10, 8, tile_size=4, chunk=2)
        return image, alpha

    assert torch.autograd.gradcheck(fn, (means2d, conics, opac, colors, bg), eps=1e-6, atol=1e-6)


def test_batched_gaussians_render_one_set_per_camera():
    cams = orbit_cameras(2, 24, 20)
    a, b = random_gaussians(50, seed=1), random_gaussians(50, seed=2)
    batched = Gaussians(*(torch.stack((getattr(a, f), getattr(b, f))) for f in FIELDS))
    out = render(batched, cams)
    for i, single in enumerate((a, b)):
        one_cam = Cameras(cams.viewmats[i : i + 1], cams.Ks[i : i + 1], 24, 20)
        torch.testing.assert_close(out.image[i], render(single, one_cam).image[0])
    with pytest.raises(ValueError, match="2 sets but there are 3 cameras"):
        render(batched, orbit_cameras(3, 24, 20))


def test_empty_and_culled_scenes_show_the_background():
    g = random_gaussians(5, seed=0)
    behind = Gaussians(g.means + torch.tensor([0.0, 0.0, 10.0]), g.quats, g.scales, g.opacities, g.colors)
    cams = orbit_cameras(1, 16, 16)
    bg = torch.tensor([0.1, 0.5, 0.9])
    for backend in ("tiled", "dense"):
        out = render(behind, cams, bg, RenderConfig(backend=backend))
        torch.testing.assert_close(out.image, bg.expand(1, 16, 16, 3))
        assert out.alpha.abs().max() == 0
        assert (out.radii == 0).all()


def test_opaque_layers_stop_compositing():
    """Five huge opaque layers drive transmittance under 1e-4 at every pixel, so a white Gaussian
    behind them contributes nothing (3DGS early stop); behind a single layer it does show."""
    layers = 5
    means = torch.tensor([[0.0, 0.0, -0.01 * i] for i in range(layers)] + [[0.0, 0.0, -0.5]])
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(layers + 1, 4)
    scales = torch.full((layers + 1, 3), 2.0)
    opac = torch.ones(layers + 1)
    colors = torch.cat((torch.full((layers, 3), 0.2), torch.ones(1, 3)))
    cams = orbit_cameras(1, 16, 16)
    for backend in ("tiled", "dense"):
        config = RenderConfig(backend=backend)
        walls = render(Gaussians(means[:layers], quats[:layers], scales[:layers], opac[:layers], colors[:layers]),
                       cams, config=config)
        both = render(Gaussians(means, quats, scales, opac, colors), cams, config=config)
        assert torch.equal(both.image, walls.image)
        one = [0, layers]
        thin = render(Gaussians(means[one], quats[one], scales[one], opac[one], colors[one]), cams, config=config)
        assert (thin.image - walls.image).max() > 1e-3


def test_backend_errors():
    g = random_gaussians(3)
    cams = orbit_cameras(1, 8, 8)
    with pytest.raises(ValueError, match="needs CUDA"):
        render(g, cams, config=RenderConfig(backend="gsplat"))
    with pytest.raises(ValueError, match="background has 4 channels"):
        render(g, cams, torch.zeros(4))

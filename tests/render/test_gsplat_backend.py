"""The gsplat adapter: conventions checked on CPU with a stand-in for gsplat.rasterization, and
against real gsplat on CUDA (marked gpu)."""

import pytest
import torch

from sa0.config import RenderConfig
from sa0.render import render
from sa0.render.dense import rasterize_dense
from sa0.render.gsplat_backend import rasterize_gsplat
from sa0.render.projection import Projected
from sa0.render.scenes import orbit_cameras, random_gaussians
from sa0.types import Gaussians

gsplat = pytest.importorskip("gsplat")
_torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")


def _fake_rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01,
                        far_plane=1e10, eps2d=0.3, packed=True, tile_size=16, backgrounds=None,
                        rasterize_mode="classic", render_mode="RGB", **unused):
    """gsplat.rasterization's contract (wxyz quats, linear scales, activated opacities, [..., C, 4, 4]
    world-to-camera viewmats), interpreted by gsplat's own pure-torch projection and composited by
    sa0's dense reference with gsplat's 0.999 alpha clamp."""
    assert rasterize_mode == "classic" and render_mode == "RGB" and not packed
    if means.ndim == 3:  # leading batch dim: one call per batch element
        outs = [_fake_rasterization(means[b], quats[b], scales[b], opacities[b], colors[b], viewmats[b], Ks[b],
                                    width, height, near_plane, far_plane, eps2d, packed, tile_size,
                                    None if backgrounds is None else backgrounds[b])
                for b in range(means.shape[0])]
        meta = {k: torch.stack([o[2][k] for o in outs]) for k in outs[0][2]}
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs]), meta
    covars, _ = _torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _torch_impl._fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane
    )
    cams = viewmats.shape[0]
    proj = Projected(means2d, torch.zeros_like(conics), conics, depths, radii)
    bg = backgrounds if backgrounds is not None else torch.zeros(cams, colors.shape[-1])
    image, alpha = rasterize_dense(proj, colors.expand(cams, -1, -1), opacities.expand(cams, -1), bg,
                                   width, height, alpha_max=0.999)
    return image, alpha, {"means2d": means2d, "conics": conics, "depths": depths, "radii": radii}


@pytest.mark.parametrize("batched", [False, True])
def test_adapter_reproduces_the_tiled_backend(monkeypatch, batched):
    monkeypatch.setattr(gsplat, "rasterization", _fake_rasterization)
    g = random_gaussians(200, seed=5, median_scale=0.02)
    g = Gaussians(g.means, g.quats, g.scales, g.opacities.clamp(max=0.98), g.colors)  # below either clamp
    cams = orbit_cameras(2, 40, 32)
    bg = torch.tensor([0.3, 0.2, 0.1]).expand(2, 3)
    if batched:
        g = Gaussians(*(torch.stack((t, t.flip(0))) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)))
    config = RenderConfig(backend="tiled")
    image, alpha, proj = rasterize_gsplat(g.means, g.quats, g.scales, g.opacities, g.colors, cams.viewmats,
                                          cams.Ks, 40, 32, bg, config)
    ref = render(g, cams, bg[0], config)
    assert image.shape == ref.image.shape and alpha.shape == ref.alpha.shape
    torch.testing.assert_close(image, ref.image, atol=1e-5, rtol=0)
    torch.testing.assert_close(alpha, ref.alpha, atol=1e-5, rtol=0)
    valid = (proj.radii > 0).all(-1) & (ref.radii > 0).all(-1)
    assert valid.sum() > 100
    torch.testing.assert_close(proj.means2d[valid], ref.means2d[valid])
    torch.testing.assert_close(proj.conics[valid], ref.conics[valid])
    torch.testing.assert_close(proj.cov2d[valid], ref.cov2d[valid], rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_tiled_matches_real_gsplat_on_cuda():
    device = torch.device("cuda")
    g = random_gaussians(4000, seed=2).to(device)
    g = Gaussians(g.means, g.quats, g.scales, g.opacities.clamp(max=0.98), g.colors)
    cams = orbit_cameras(2, 128, 96).to(device)
    bg = torch.tensor([0.1, 0.2, 0.3], device=device)
    outs = {}
    for backend in ("gsplat", "tiled"):
        leaves = [t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
        out = render(Gaussians(*leaves), cams, bg, RenderConfig(backend=backend))
        (out.image * torch.linspace(0, 1, out.image.numel(), device=device).reshape(out.image.shape)).sum().backward()
        outs[backend] = (out, [leaf.grad for leaf in leaves])
    (a, ga), (b, gb) = outs["gsplat"], outs["tiled"]
    torch.testing.assert_close(a.image, b.image, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.alpha, b.alpha, atol=1e-4, rtol=0)
    for x, y in zip(ga, gb):
        assert ((x - y).abs().max() / y.abs().max()).item() < 1e-3


@pytest.mark.gpu
def test_real_gsplat_on_cuda_matches_the_native_cpu_kernel():
    """The two production backends on one scene: gsplat (CUDA) vs sa0's native C++ kernel (CPU),
    opacities below both alpha clamps: images within 1e-3, gradients within 1e-3 of their scale."""
    from sa0.render.native import load_native

    if load_native() is None:
        pytest.skip("native CPU kernel not built here")
    g = random_gaussians(4000, seed=3)
    g = Gaussians(g.means, g.quats, g.scales, g.opacities.clamp(max=0.98), g.colors)
    cams = orbit_cameras(2, 128, 96)
    bg = torch.tensor([0.1, 0.2, 0.3])
    outs = {}
    for backend, device in (("gsplat", "cuda"), ("native", "cpu")):
        leaves = [t.detach().clone().to(device).requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities,
                                                                           g.colors)]
        out = render(Gaussians(*leaves), cams.to(device), bg.to(device), RenderConfig(backend=backend))
        weights = torch.linspace(0, 1, out.image.numel(), device=device).reshape(out.image.shape)
        (out.image * weights).sum().backward()
        outs[backend] = (out.image.detach().cpu(), out.alpha.detach().cpu(), [leaf.grad.cpu() for leaf in leaves])
    (a, aa, ga), (b, ba, gb) = outs["gsplat"], outs["native"]
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
    torch.testing.assert_close(aa, ba, atol=1e-3, rtol=0)
    for x, y in zip(ga, gb):
        assert ((x - y).abs().max() / y.abs().max()).item() < 1e-3

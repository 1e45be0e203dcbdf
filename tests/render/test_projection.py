"""EWA projection against gsplat's pure-torch reference (gsplat.cuda._torch_impl, CPU-safe)."""

import pytest
import torch

from sa0.render import project
from sa0.render.projection import ALPHA_THRESHOLD
from sa0.render.scenes import orbit_cameras, random_gaussians

_torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")


def _scene(dtype=torch.float64):
    g = random_gaussians(500, seed=4, radius=0.8, median_scale=0.03, scale_spread=1.0, dtype=dtype)
    cams = orbit_cameras(3, 64, 48, distance=1.2, dtype=dtype)  # some Gaussians behind / off-screen
    return g, cams


def test_matches_gsplat_reference_projection():
    g, cams = _scene()
    ours = project(g.means, g.quats, g.scales, None, cams.viewmats, cams.Ks, cams.width, cams.height)
    covars, _ = _torch_impl._quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _torch_impl._fully_fused_projection(
        g.means, covars, cams.viewmats, cams.Ks, cams.width, cams.height, eps2d=0.3, near_plane=0.01
    )
    valid = (radii > 0).all(-1)
    assert valid.sum() > 500 and (~valid).sum() > 10  # both visible and culled Gaussians are exercised
    assert torch.equal(ours.radii, radii.to(torch.int32))
    torch.testing.assert_close(ours.means2d[valid], means2d[valid])
    torch.testing.assert_close(ours.conics[valid], conics[valid])
    torch.testing.assert_close(ours.depths, depths)


def test_opacity_aware_extent_contains_every_visible_pixel():
    """Outside its box a Gaussian's alpha is below 1/255, so tile binning cannot change a pixel."""
    g, cams = _scene()
    proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, cams.width, cams.height)
    b, n = torch.nonzero(proj.valid, as_tuple=True)
    mean, conic, radius = proj.means2d[b, n], proj.conics[b, n], proj.radii[b, n].double()
    for sign_x, sign_y in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        # The ellipse's extreme point along an axis is where alpha is lowest inside the box edge.
        dx = sign_x * radius[:, 0]
        dy = sign_y * radius[:, 1]
        power = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
        alpha = g.opacities[n] * torch.exp(-power)
        assert (alpha <= ALPHA_THRESHOLD + 1e-12).all()


def test_culling_rules():
    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.005], [50.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(5, 4)
    scales = torch.full((5, 3), 0.01)
    opacities = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.001])
    cams = orbit_cameras(1, 32, 32, distance=0.0)
    cams = type(cams)(torch.eye(4)[None], cams.Ks, 32, 32)
    proj = project(means, quats, scales, opacities, cams.viewmats, cams.Ks, 32, 32)
    assert proj.valid[0].tolist() == [True, False, False, False, False]  # behind, too near, off-screen, < 1/255
    assert torch.isfinite(proj.means2d).all() and torch.isfinite(proj.conics).all()

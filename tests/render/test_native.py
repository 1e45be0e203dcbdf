"""The native C++ CPU backend against its twins (dense, tiled), gradcheck, determinism, fallback."""

import logging

import pytest
import torch

from sa0.config import RenderConfig
from sa0.render import native, render
from sa0.render.projection import project
from sa0.render.scenes import edge_case_gaussians, orbit_cameras, random_gaussians
from tests.render.helpers import FIELDS, assert_rel_close, render_with_grads


@pytest.fixture(scope="module")
def kernel():
    module = native.load_native()
    assert module is not None, f"native kernel failed to build: {native.native_unavailable_reason()}"
    return module


@pytest.mark.parametrize("scene,channels", [("edge cases", 3), ("edge cases", 32), ("crowd in one tile", 3)])
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-5), (torch.float32, 1e-3)])
def test_native_matches_dense_outputs_and_gradients(kernel, scene, channels, dtype, rel):
    """Against the dense twin: huge, needle, near-plane and behind-camera Gaussians (edge cases), and
    very uneven tiles (600 small Gaussians in one tile); float32 runs the simd order where there is AVX2."""
    g = edge_case_gaussians(channels, dtype=dtype, seed=1) if scene == "edge cases" else _crowd_in_one_tile(dtype)
    cams = orbit_cameras(2, 37, 29, dtype=dtype)
    bg = torch.linspace(0.1, 0.6, channels, dtype=dtype)
    dense, dense_grads = render_with_grads(g, cams, RenderConfig(backend="dense"), bg)
    ours, our_grads = render_with_grads(g, cams, RenderConfig(backend="native"), bg)
    assert 0.05 < dense.alpha.mean() < 0.95
    assert_rel_close(ours.image, dense.image, rel if dtype == torch.float64 else 1e-5, "image")
    assert_rel_close(ours.alpha, dense.alpha, rel if dtype == torch.float64 else 1e-5, "alpha")
    for name, a, b in zip(FIELDS + ("background",), our_grads, dense_grads):
        assert b.abs().max() > 0, name
        assert_rel_close(a, b, rel, name)


def test_native_matches_tiled_on_a_larger_scene(kernel):
    g = random_gaussians(3000, seed=3, median_scale=0.01, channels=4)
    cams = orbit_cameras(1, 96, 80)
    bg = torch.tensor([0.2, 0.4, 0.6, 0.8])
    tiled, tiled_grads = render_with_grads(g, cams, RenderConfig(backend="tiled"), bg)
    ours, our_grads = render_with_grads(g, cams, RenderConfig(backend="native"), bg)
    assert (ours.image - tiled.image).abs().max() < 1e-5
    for name, a, b in zip(FIELDS + ("background",), our_grads, tiled_grads):
        assert_rel_close(a, b, 1e-3, name)


def test_gradcheck_float64(kernel):
    g = random_gaussians(5, seed=11, radius=0.1, median_scale=0.08, dtype=torch.float64)
    cams = orbit_cameras(1, 12, 9, dtype=torch.float64)
    proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, 12, 9)
    leaves = [t.detach().requires_grad_() for t in (proj.means2d, proj.conics, 0.8 * g.opacities[None], g.colors[None])]
    bg = torch.tensor([[0.3, 0.1, 0.2]], dtype=torch.float64, requires_grad=True)

    def fn(means2d, conics, opacities, colors, background):
        p = type(proj)(means2d, proj.cov2d.detach(), conics, proj.depths.detach(), proj.radii)
        return native.rasterize_native(p, colors, opacities, background, 12, 9, tile_size=4)

    assert torch.autograd.gradcheck(fn, (*leaves, bg), eps=1e-6, atol=1e-6)


def test_deterministic_for_any_thread_count(kernel):
    g = random_gaussians(2000, seed=5, median_scale=0.015)
    cams = orbit_cameras(2, 64, 64)
    runs = []
    threads = torch.get_num_threads()
    try:
        for n in (threads, threads, 1):
            torch.set_num_threads(n)
            out, grads = render_with_grads(g, cams, RenderConfig(backend="native"), torch.zeros(3))
            runs.append([out.image] + grads)
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def _crowd_in_one_tile(dtype):
    """Very uneven tiles: 600 small Gaussians packed into one 16 x 16 tile, the rest of the image
    sparse, plus huge and near-plane ones (edge_case_gaussians)."""
    g = edge_case_gaussians(3, dtype=dtype, seed=4)
    crowd = random_gaussians(600, seed=8, radius=0.01, median_scale=0.004, dtype=dtype)
    return type(g)(*(torch.cat((getattr(g, f), getattr(crowd, f))) for f in FIELDS))


def _scene(name, dtype):
    if name == "edge cases":
        return edge_case_gaussians(3, dtype=dtype, seed=2)
    if name == "crowd in one tile":
        return _crowd_in_one_tile(dtype)
    return random_gaussians(2500, seed=6, median_scale=0.012, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scene", ["edge cases", "crowd in one tile", "random"])
def test_the_loop_orders_agree_at_any_thread_count(kernel, monkeypatch, dtype, scene):
    """boxed against its obvious twin plain (every pixel x every entry of a tile): the same images
    and gradients bit for bit. simd (AVX2, float32; float64 runs boxed) against boxed: images to
    1e-6, gradients to 1e-5 of their largest. Each order bit for bit the same at 1, 2 and 3 threads."""
    g = _scene(scene, dtype)
    cams = orbit_cameras(2, 61, 47, dtype=dtype)
    bg = torch.tensor([0.3, 0.5, 0.7], dtype=dtype)
    orders = ("plain", "boxed") + (("simd",) if kernel.avx2() else ())
    runs = {}
    threads = torch.get_num_threads()
    try:
        for order in orders:
            monkeypatch.setenv(native.KERNEL_ENV, order)
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                out, grads = render_with_grads(g, cams, RenderConfig(backend="native"), bg)
                runs[order, n] = [out.image, out.alpha] + grads
    finally:
        torch.set_num_threads(threads)
    names = ("image", "alpha") + FIELDS + ("background",)
    want = runs["plain", 1]
    assert want[1].mean() > 0.02 and all(t.abs().max() > 0 for t in want[2:])
    for (order, n), got in runs.items():
        for name, a, b, same_order in zip(names, got, want, runs[order, 1]):
            assert torch.equal(a, same_order), (order, n, name)
            if order != "simd":
                assert torch.equal(a, b), (order, n, name, (a - b).abs().max().item())
            elif name in ("image", "alpha"):
                assert (a - b).abs().max() <= 1e-6, (name, (a - b).abs().max().item())
            else:
                assert (a - b).abs().max() <= 1e-5 * b.abs().max(), (name, (a - b).abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scene", ["edge cases", "crowd in one tile", "random"])
def test_the_kernels_binning_equals_torchs(kernel, dtype, scene):
    """bin_tiles (parallel counting fill in C++) against sa0.render.tiled.bin_gaussians: the same lists,
    tile by tile in the same depth order, for two cameras and an image not a multiple of the tile,
    at 1, 2 and 3 threads; with each Gaussian's entries listed in entry order."""
    from sa0.render.tiled import bin_gaussians

    g = {"edge cases": lambda: edge_case_gaussians(3, dtype=dtype, seed=3),
         "crowd in one tile": lambda: _crowd_in_one_tile(dtype),
         "random": lambda: random_gaussians(12_000, seed=2, median_scale=0.02, dtype=dtype)}[scene]()
    cams = orbit_cameras(2, 70, 53, dtype=dtype)
    proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, 70, 53)
    threads = torch.get_num_threads()
    try:
        for tile, n in ((16, 1), (16, 2), (16, 3), (8, 2)):
            torch.set_num_threads(n)  # the kernel's sort, count and fill run in parallel chunks
            want = bin_gaussians(proj, 70, 53, tile)
            got = native.native_bins(proj, 70, 53, tile)
            assert want.gauss.numel() > 100
            assert (got.tiles_x, got.tiles_y) == (want.tiles_x, want.tiles_y)
            for name in ("gauss", "start", "count"):
                assert torch.equal(getattr(got, name), getattr(want, name)), (tile, n, name)
            # and each Gaussian's entries, in entry order (what the backward sums per Gaussian)
            assert torch.equal(got.members, torch.argsort(want.gauss, stable=True))
            per_gaussian = torch.bincount(want.gauss, minlength=proj.depths.numel())
            assert torch.equal(got.first, torch.cat((torch.zeros(1, dtype=torch.long), per_gaussian.cumsum(0))))
    finally:
        torch.set_num_threads(threads)


def test_a_bad_kernel_choice_is_a_clear_error(kernel, monkeypatch):
    monkeypatch.setenv(native.KERNEL_ENV, "fast")
    g = random_gaussians(10, seed=1)
    with pytest.raises(ValueError, match="SA0_NATIVE_KERNEL must be 'auto', 'simd', 'boxed' or 'plain', got 'fast'"):
        render(g, orbit_cameras(1, 16, 16), torch.zeros(3), RenderConfig(backend="native"))


def test_fallback_when_the_compiler_is_unavailable(monkeypatch, caplog):
    import torch.utils.cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Error building extension: c++: command not found")

    native.reset_native()
    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_compiler)
    try:
        with caplog.at_level(logging.INFO, logger="sa0.render"):
            out = render(random_gaussians(50, seed=2), orbit_cameras(1, 32, 32))
            ref = render(random_gaussians(50, seed=2), orbit_cameras(1, 32, 32), config=RenderConfig(backend="tiled"))
        assert torch.equal(out.image, ref.image)
        assert "c++: command not found" in caplog.text
        assert "tiled" in caplog.text
    finally:
        native.reset_native()


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_native_projection_matches_torchs(kernel, batched, dtype, rel):
    """project_native (fused C++) against sa0.render.projection.project (torch, its twin): every
    output and the gradients of means, quaternions and scales under random output gradients, on
    the edge-case scene (huge, needle, near-plane, behind-camera, off-screen Gaussians) plus a zero
    quaternion, for Gaussians shared by 3 cameras or one set per camera; radii exactly equal."""
    g = edge_case_gaussians(3, dtype=dtype, seed=5)
    cams = orbit_cameras(3, 64, 48, dtype=dtype)
    quats = g.quats.clone()
    quats[0] = 0.0  # normalised to the identity rotation by both
    leaves = [g.means, quats, g.scales, g.opacities]
    if batched:
        leaves = [t.expand(3, *t.shape) + 0.01 * torch.rand(3, *t.shape, dtype=dtype, generator=torch.Generator().manual_seed(i))
                  for i, t in enumerate(leaves)]
    runs = []
    for fn in (project, native.project_native):
        inputs = [t.detach().clone().requires_grad_(i < 3) for i, t in enumerate(leaves)]
        proj = fn(*inputs, cams.viewmats, cams.Ks, 64, 48)
        outs = (proj.means2d, proj.cov2d, proj.conics, proj.depths)
        gen = torch.Generator().manual_seed(7)
        upstream = [torch.randn(o.shape, dtype=dtype, generator=gen) * proj.valid.reshape(o.shape[:2] + (1,) * (o.dim() - 2))
                    for o in outs]
        torch.autograd.backward(outs, upstream)
        runs.append((proj, [t.grad for t in inputs[:3]]))
    (want, want_grads), (got, got_grads) = runs
    assert want.valid.sum() > 5 and (~want.valid).sum() > 0
    assert torch.equal(got.radii, want.radii)
    valid = want.valid
    for name in ("means2d", "cov2d", "conics", "depths"):
        assert_rel_close(getattr(got, name)[valid], getattr(want, name)[valid], rel, name)
    for name, a, b in zip(("means", "quats", "scales"), got_grads, want_grads):
        assert b.abs().max() > 0, name
        assert_rel_close(a, b, rel * 10, name)


def test_without_avx2_auto_takes_boxed_and_simd_is_a_clear_error(kernel, monkeypatch):
    """What a CPU without AVX2 sees (the module's avx2() answers False): auto falls back to the
    scalar boxed order, and asking for simd names the reason."""

    class NoAvx2:
        def __getattr__(self, name):
            return (lambda: False) if name == "avx2" else getattr(kernel, name)

    monkeypatch.setitem(native._state, "module", NoAvx2())
    monkeypatch.delenv(native.KERNEL_ENV, raising=False)
    assert native.kernel_choice() == "boxed"
    monkeypatch.setenv(native.KERNEL_ENV, "simd")
    with pytest.raises(ValueError, match="SA0_NATIVE_KERNEL=simd needs a CPU with AVX2"):
        native.kernel_choice()

"""Native CPU backend: a C++ compositing kernel (csrc/*.cpp) behind render().

Projection is fused per Gaussian in C++ (`project_native`, csrc/project_cpu.cpp, with an exact
backward; sa0.render.projection is its torch twin, used where cameras need gradients); binning is
the kernel's parallel counting fill (`bin_tiles`, csrc/binning_cpu.cpp, equal to
sa0.render.tiled.bin_gaussians, its torch twin); the kernel composites tiles in parallel on torch's
thread pool and has an exact hand-written backward. The same extension carries the refinement
loss's SSIM (csrc/ssim_cpu.cpp, used by sa0.losses.photometric.ssim_per_image).
It is compiled with torch.utils.cpp_extension on first use (no CUDA toolkit involved) and cached
under $TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions). If it cannot be built (no
compiler, ...), `load_native()` returns None, the reason is logged once, and render() falls back to
the torch tiled backend.

The kernel has three loop orders (csrc/rasterize_*.cpp): `plain`, every pixel of a tile against
every entry (the obvious twin, with torch's binning); `boxed`, only the pixels each Gaussian's
ellipse can reach (bitwise equal to plain); `simd`, boxed with 8 pixels at once on AVX2 (float32;
images within ~1e-7 of boxed, gradients summed in another order). SA0_NATIVE_KERNEL picks one:
`auto` (the default: simd where the CPU has AVX2, else boxed), `simd`, `boxed` or `plain`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

import torch

from sa0.render.projection import Projected
from sa0.render.tiled import TileLists, bin_gaussians

log = logging.getLogger(__name__)
CSRC = Path(__file__).parent / "csrc"
SOURCES = ("rasterize_cpu.cpp", "rasterize_plain.cpp", "rasterize_avx2.cpp", "binning_cpu.cpp", "project_cpu.cpp",
           "ssim_cpu.cpp")
HEADER = CSRC / "native.h"
_state: dict = {"tried": False, "module": None, "reason": None}
KERNEL_ENV = "SA0_NATIVE_KERNEL"
KERNELS = {"plain": 0, "boxed": 1, "simd": 2}


def kernel_choice() -> str:
    """The loop order SA0_NATIVE_KERNEL asks for (read at every call): auto -> simd with AVX2, else boxed."""
    value = os.environ.get(KERNEL_ENV, "auto")
    if value not in ("auto", *KERNELS):
        raise ValueError(f"{KERNEL_ENV} must be 'auto', 'simd', 'boxed' or 'plain', got {value!r}")
    module = load_native()
    has_avx2 = module is not None and module.avx2()
    if value == "auto":
        return "simd" if has_avx2 else "boxed"
    if value == "simd" and not has_avx2:
        raise ValueError(f"{KERNEL_ENV}=simd needs a CPU with AVX2; this one has none (use 'auto' or 'boxed')")
    return value


def _ensure_ninja_on_path() -> None:
    """cpp_extension needs the `ninja` executable; the pip package ships one next to the interpreter."""
    if shutil.which("ninja"):
        return
    try:
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass


def _is_built(build_directory: str | None) -> bool:
    """Whether torch's extension cache (or `build_directory`) already holds a built module."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        directory = build_directory or _get_build_directory("sa0_rasterize_cpu", verbose=False)
    except Exception:  # a private torch helper; without it, assume built (say nothing)
        return True
    return any(Path(directory).glob("sa0_rasterize_cpu*.so"))


def load_native(build_directory: str | None = None, verbose: bool = False):
    """The compiled extension module, or None when it cannot be built (see native_unavailable_reason)."""
    if _state["tried"] and build_directory is None:
        return _state["module"]
    try:
        # importing cpp_extension warns "No CUDA runtime is found" on every CPU machine: not ours to show
        chatter = logging.getLogger("torch.utils.cpp_extension")
        level = chatter.level
        chatter.setLevel(logging.ERROR)
        try:
            from torch.utils.cpp_extension import load
        finally:
            chatter.setLevel(level)

        _ensure_ninja_on_path()
        if not _is_built(build_directory):  # a minute of silence otherwise: say why, on the console
            print("sa0: compiling the native CPU rasteriser (first use only, ~1 min; cached afterwards)",
                  file=sys.stderr, flush=True)
        kwargs = {"build_directory": build_directory} if build_directory else {}
        if build_directory:
            os.makedirs(build_directory, exist_ok=True)
        # torch rebuilds when a source changes, not when the header does: its hash is a flag
        header = hashlib.sha1(HEADER.read_bytes()).hexdigest()[:12]
        module = load(
            name="sa0_rasterize_cpu",
            sources=[str(CSRC / name) for name in SOURCES],
            extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", f"-DSA0_NATIVE_H={header}"],
            extra_ldflags=["-fopenmp"],
            with_cuda=False,
            verbose=verbose,
            **kwargs,
        )
        reason = None
    except Exception as exc:  # no compiler, missing headers, ...
        module, reason = None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        log.warning("native CPU rasteriser unavailable (%s); using the torch tiled backend", reason)
    if build_directory is None:
        _state.update(tried=True, module=module, reason=reason)
    return module


def native_unavailable_reason() -> str | None:
    """Why the native backend could not be built (None if it was built or not tried yet)."""
    return _state["reason"]


def reset_native() -> None:
    """Forget the cached load attempt (for tests that force a fallback)."""
    _state.update(tried=False, module=None, reason=None)


class _NativeProject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, settings):
        module = _state["module"]
        o = opacities.detach() if opacities is not None else means.new_empty(0)
        means2d, cov2d, conics, depths, radii = module.project_forward(means, quats, scales, o, viewmats, Ks, *settings)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks)
        ctx.settings = settings
        ctx.mark_non_differentiable(radii)
        return means2d, cov2d, conics, depths, radii

    @staticmethod
    def backward(ctx, g_means2d, g_cov2d, g_conics, g_depths, _g_radii):
        means, quats, scales, viewmats, Ks = ctx.saved_tensors
        b, n = viewmats.shape[0], means.shape[-2]
        shapes = ((b, n, 2), (b, n, 3), (b, n, 3), (b, n))
        grads = [g.contiguous() if g is not None else means.new_zeros(shape)
                 for g, shape in zip((g_means2d, g_cov2d, g_conics, g_depths), shapes)]
        g_means, g_quats, g_scales = _state["module"].project_backward(means, quats, scales, viewmats, Ks,
                                                                       *ctx.settings, *grads)
        return g_means, g_quats, g_scales, None, None, None, None


def project_native(means, quats, scales, opacities, viewmats, Ks, width, height, near=0.01, far=1e10,
                   eps2d=0.3) -> Projected:
    """sa0.render.projection.project fused in C++ (same contract); cameras must not need gradients."""
    if load_native() is None:
        raise RuntimeError(f"native CPU rasteriser unavailable: {native_unavailable_reason()}")
    if viewmats.requires_grad or Ks.requires_grad:
        raise ValueError("project_native takes no camera gradients; use sa0.render.projection.project")
    settings = (int(width), int(height), float(near), float(far), float(eps2d))
    outs = _NativeProject.apply(means.contiguous(), quats.contiguous(), scales.contiguous(), opacities,
                                viewmats.detach().contiguous(), Ks.detach().contiguous(), settings)
    return Projected(*outs)


class _NativeRasterize(torch.autograd.Function):
    """Per-Gaussian inputs (of every camera, b * N + n) in, per-Gaussian gradients out: the kernel
    reads each (tile, Gaussian) entry through lists.gauss and sums entry gradients per Gaussian."""

    @staticmethod
    def forward(ctx, means, conics, opacities, colors, background, lists: TileLists, width, height, tile_size, alpha_max,
                kernel: int):
        module = _state["module"]
        background = background.contiguous()
        settings = (width, height, tile_size, lists.tiles_x, lists.tiles_y, alpha_max, kernel)
        image, trans, used, bounds = module.forward(means, conics, opacities, colors, lists.gauss, lists.start,
                                                    lists.count, background, *settings)
        ctx.save_for_backward(means, conics, opacities, colors, background, image, trans, used, bounds)
        ctx.lists, ctx.settings = lists, settings
        return image, (1.0 - trans)[..., None]

    @staticmethod
    def backward(ctx, grad_image, grad_alpha):
        means, conics, opacities, colors, background, image, trans, used, bounds = ctx.saved_tensors
        lists = ctx.lists
        g_means, g_conics, g_opac, g_colors = _state["module"].backward(
            means, conics, opacities, colors, lists.gauss, lists.start, lists.count, background, image, trans, used,
            bounds, lists.first, lists.members, grad_image.contiguous(), grad_alpha[..., 0].contiguous(),
            *ctx.settings,
        )
        g_bg = (grad_image * trans[..., None]).sum((1, 2))
        return g_means, g_conics, g_opac, g_colors, g_bg, None, None, None, None, None, None


def native_bins(proj: Projected, width: int, height: int, tile_size: int) -> TileLists:
    """bin_gaussians in the kernel (one counting pass, no sort of the pairs); the same TileLists."""
    with torch.no_grad():
        gauss, start, count, first, members = _state["module"].bin_tiles(
            proj.means2d.detach(), proj.radii, proj.depths.detach(), width, height, tile_size)
    return TileLists(gauss, start, count, -(-width // tile_size), -(-height // tile_size), first, members)


def rasterize_native(
    proj: Projected,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    background: torch.Tensor,
    width: int,
    height: int,
    alpha_max: float = 0.99,
    tile_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> image (B, H, W, C), alpha (B, H, W, 1); same contract as rasterize_tiled. Needs load_native()."""
    if load_native() is None:
        raise RuntimeError(f"native CPU rasteriser unavailable: {native_unavailable_reason()}")
    kernel = kernel_choice()  # one choice for the binning and both kernel calls
    if kernel == "plain":  # the twin: torch's binning, each Gaussian's entries by a stable sort
        lists = bin_gaussians(proj, width, height, tile_size)
        per_gaussian = torch.bincount(lists.gauss, minlength=proj.depths.numel())
        first = torch.cat((per_gaussian.new_zeros(1), per_gaussian.cumsum(0)))
        lists = dataclasses.replace(lists, first=first, members=torch.argsort(lists.gauss, stable=True))
    else:
        lists = native_bins(proj, width, height, tile_size)
    c = colors.shape[-1]
    return _NativeRasterize.apply(
        proj.means2d.reshape(-1, 2).contiguous(),
        proj.conics.reshape(-1, 3).contiguous(),
        opacities.reshape(-1).contiguous(),
        colors.reshape(-1, c).contiguous(),
        background,
        lists,
        width,
        height,
        tile_size,
        alpha_max,
        KERNELS[kernel],
    )

"""render(): the one entry point to every rasteriser backend."""

from __future__ import annotations

import logging

import torch

from sa0.config import RenderConfig
from sa0.render.dense import rasterize_dense
from sa0.render.gsplat_backend import rasterize_gsplat
from sa0.render.native import load_native, native_unavailable_reason, project_native, rasterize_native
from sa0.render.projection import project
from sa0.render.tiled import rasterize_tiled
from sa0.types import Cameras, Gaussians, RenderOut

log = logging.getLogger(__name__)
_announced: set[str] = set()


def resolve_backend(requested: str, device: torch.device) -> str:
    """auto -> gsplat for CUDA tensors, else native (tiled if the kernel cannot be built).

    The choice and its reason are logged once per distinct (backend, reason).
    """
    if requested == "gsplat" and device.type != "cuda":
        raise ValueError(
            "render backend 'gsplat' needs CUDA tensors (its kernels compile for CUDA only); "
            f"got tensors on {device}. Use backend='native' or 'tiled' on CPU."
        )
    if requested == "native" and device.type != "cpu":
        raise ValueError(f"render backend 'native' runs on CPU tensors only; got tensors on {device}")
    if requested == "auto":
        requested, reason = ("gsplat", "auto: CUDA tensors") if device.type == "cuda" else ("native", "auto: CPU tensors")
    else:
        reason = "requested"
    backend = requested
    if backend == "native" and load_native() is None:
        backend, reason = "tiled", f"native CPU kernel unavailable: {native_unavailable_reason()}"
    if (backend, reason) not in _announced:
        _announced.add((backend, reason))
        log.info("render backend: %s (%s)", backend, reason)
    return backend


def render(
    gaussians: Gaussians,
    cameras: Cameras,
    background: torch.Tensor | None = None,
    config: RenderConfig | None = None,
) -> RenderOut:
    """Rasterise Gaussians into B cameras with 3DGS semantics.

    gaussians: (N, ...) rendered into every camera, or batched (B, N, ...) with one set per camera.
    background: (C,) or (B, C); default zeros. Returns RenderOut (image (B, H, W, C), alpha, and
    per-Gaussian 2D means, covariances, conics, depths, radii (B, N, 2)).
    """
    config = config or RenderConfig()
    num_cams, width, height = cameras.num_cameras, cameras.width, cameras.height
    if gaussians.is_batched and gaussians.means.shape[0] != num_cams:
        raise ValueError(
            f"batched Gaussians hold {gaussians.means.shape[0]} sets but there are {num_cams} cameras"
        )
    channels = gaussians.colors.shape[-1]
    dtype, device = gaussians.means.dtype, gaussians.means.device
    if background is None:
        background = torch.zeros(channels, dtype=dtype, device=device)
    if background.shape[-1] != channels:
        raise ValueError(f"background has {background.shape[-1]} channels, colours have {channels}")
    background = background.to(device, dtype).expand(num_cams, channels)
    viewmats, Ks = cameras.viewmats.to(device, dtype), cameras.Ks.to(device, dtype)
    backend = resolve_backend(config.backend, device)
    g = gaussians
    if backend == "gsplat":
        image, alpha, proj = rasterize_gsplat(
            g.means, g.quats, g.scales, g.opacities, g.colors, viewmats, Ks, width, height, background, config
        )
    else:
        # the native backend projects in C++ too, unless the cameras need gradients (torch's twin has them)
        fused = backend == "native" and not (viewmats.requires_grad or Ks.requires_grad)
        proj = (project_native if fused else project)(g.means, g.quats, g.scales, g.opacities, viewmats, Ks, width,
                                                      height, near=config.near, far=config.far, eps2d=config.eps2d)
        colors = g.colors.expand(num_cams, -1, -1)
        opacities = g.opacities.expand(num_cams, -1)
        if backend == "dense":
            image, alpha = rasterize_dense(proj, colors, opacities, background, width, height, config.alpha_max)
        elif backend == "native":
            image, alpha = rasterize_native(
                proj, colors, opacities, background, width, height, config.alpha_max, config.tile_size
            )
        else:
            image, alpha = rasterize_tiled(
                proj, colors, opacities, background, width, height,
                config.alpha_max, config.tile_size, config.chunk,
            )
    return RenderOut(image, alpha, proj.means2d, proj.cov2d, proj.conics, proj.depths, proj.radii)

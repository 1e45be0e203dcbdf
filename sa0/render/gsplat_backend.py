"""gsplat adapter (the default on CUDA): one call to `gsplat.rasterization`.

Only called for CUDA tensors: gsplat's rasterizer JIT-compiles CUDA code on first use, which
fails on CPU-only machines. Differences from sa0's CPU backends: gsplat clamps alpha at 0.999
(not RenderConfig.alpha_max), everything else (eps2d, opacity-aware extent, 1/255 skip, 1e-4 stop,
pixel centres at +0.5) matches.
"""

from __future__ import annotations

import torch

from sa0.render.projection import Projected


def rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, background, config):
    """-> image (B, H, W, C), alpha (B, H, W, 1), Projected. Inputs as gsplat takes them.

    means (N, 3) with viewmats (B, 4, 4) renders one set into B cameras; means (B, N, 3) renders
    set b into camera b (gsplat batch dim B, one camera each).
    """
    import gsplat  # imported lazily: only needed on CUDA

    batched = means.ndim == 3
    if batched:
        viewmats, Ks, background = viewmats[:, None], Ks[:, None], background[:, None]
    image, alpha, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=config.near, far_plane=config.far, eps2d=config.eps2d,
        packed=False, tile_size=config.tile_size, backgrounds=background,
        rasterize_mode="classic", render_mode="RGB",
    )
    conics = meta["conics"]
    a, b, c = conics.unbind(-1)
    det = (a * c - b * b).clamp_min(1e-20)
    cov2d = torch.stack((c / det, -b / det, a / det), -1)
    proj = Projected(meta["means2d"], cov2d, conics, meta["depths"], meta["radii"].to(torch.int32))
    if batched:
        image, alpha = image[:, 0], alpha[:, 0]
        proj = Projected(*(t[:, 0] for t in (proj.means2d, proj.cov2d, proj.conics, proj.depths, proj.radii)))
    return image, alpha, proj

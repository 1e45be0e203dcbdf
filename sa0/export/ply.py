"""Standard 3DGS .ply export (x, y, z, f_dc_0..2, opacity logit, scale_0..2 as logs, rot_0..3 wxyz),
which common splat viewers open. Written by gsplat.export_splats, atomically (temp then rename).
Colours in [0, 1] are stored as degree-0 spherical harmonics: f_dc = (rgb - 0.5) / SH_C0.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from sa0.types import Gaussians

SH_C0 = 0.28209479177387814


def export_ply(gaussians: Gaussians, path) -> Path:
    """Write unbatched RGB Gaussians (world space, e.g. bound at one frame) to `path`."""
    from gsplat import export_splats

    if gaussians.is_batched or gaussians.colors.shape[-1] != 3:
        raise ValueError(f"export_ply needs unbatched RGB Gaussians, got colours {tuple(gaussians.colors.shape)}")
    g = gaussians.to(torch.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with torch.no_grad():
        export_splats(
            means=g.means.contiguous(),
            scales=torch.log(g.scales.clamp_min(1e-12)),
            quats=torch.nn.functional.normalize(g.quats, dim=-1),
            opacities=torch.logit(g.opacities.clamp(1e-6, 1 - 1e-6)),
            sh0=((g.colors - 0.5) / SH_C0)[:, None, :],
            shN=torch.zeros(g.means.shape[0], 0, 3),
            format="ply",
            save_to=str(tmp),
        )
    os.replace(tmp, path)
    return path


def load_ply(path) -> Gaussians:
    """Read a 3DGS .ply (degree-0 colours) back into activated Gaussians."""
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    column = lambda *names: np.stack([np.asarray(vertex[n], dtype=np.float32) for n in names], -1)  # noqa: E731
    return Gaussians(
        means=torch.from_numpy(column("x", "y", "z")),
        quats=torch.from_numpy(column("rot_0", "rot_1", "rot_2", "rot_3")),
        scales=torch.from_numpy(np.exp(column("scale_0", "scale_1", "scale_2"))),
        opacities=torch.sigmoid(torch.from_numpy(np.asarray(vertex["opacity"], dtype=np.float32))),
        colors=torch.from_numpy(column("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5),
    )

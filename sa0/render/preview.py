"""Render a posed head to a PNG, so a person can look at it.

    python -m sa0.render.preview --out head.png [--flame-dir DIR] [--size 512] [--uv-resolution 128]

Without --flame-dir (and no $SA0_FLAME_DIR) a synthetic head is built in a temporary directory.
The head is posed with a smile, an open jaw, eyes looking aside and a slight head turn, and shown
from the front and from three-quarters, side by side. Colours are the synthetic head's albedo (grey
for real FLAME) with simple baked Lambert shading.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig, RenderConfig
from sa0.flame.io import FLAME_DIR_ENV
from sa0.flame.synthetic import write_synthetic_flame
from sa0.gaussians import bind, face_frames, init_local_gaussians
from sa0.geometry import intrinsics_from_fov, look_at
from sa0.head import HeadModel, load_head_model
from sa0.render.api import render
from sa0.types import Cameras, FlameParams, Gaussians, LocalGaussians


def expressive_params(head: HeadModel, jaw: float = 0.25) -> FlameParams:
    """One frame: smile and brow raise, open jaw, eyes to the side, head turned slightly."""
    params = FlameParams.zeros(1, head.flame.num_shape, head.flame.num_expression)
    expression = params.expression.clone()
    expression[0, :3] = torch.tensor([1.5, 0.5, 1.0])[: expression.shape[1]]
    return FlameParams(
        shape=params.shape, expression=expression,
        global_rot=torch.tensor([[0.05, 0.1, 0.0]]), neck=torch.tensor([[0.0, 0.05, 0.0]]),
        jaw=torch.tensor([[jaw, 0.0, 0.0]]), eyes=torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.3, 0.0]]),
        translation=params.translation,
    )


def shaded_gaussians(head: HeadModel, params: FlameParams) -> Gaussians:
    """Bind the layout to the posed mesh with albedo x Lambert shading baked into the colours."""
    rest = head.flame.v_template
    verts = head.flame(params)[0]
    local = init_local_gaussians(rest, head.faces, head.layout)
    albedo = head.albedo()
    if albedo is None:
        albedo = torch.full((head.num_gaussians, 3), 0.7)
    normals = _smooth_normals(verts, head.faces, head.layout)
    light = torch.nn.functional.normalize(torch.tensor([0.4, 0.5, 1.0]), dim=0)
    shade = 0.35 + 0.65 * (normals @ light).clamp(min=0)
    colors = (albedo * shade[:, None]).clamp(0, 1)
    local = LocalGaussians(local.positions, local.rotations, local.log_scales, colors, local.opacity_logits)
    return bind(local, verts, head.faces, head.layout)


def _smooth_normals(verts: torch.Tensor, faces: torch.Tensor, layout) -> torch.Tensor:
    """Area-weighted vertex normals interpolated at each texel (N, 3)."""
    rotations, _, scales = face_frames(verts, faces)
    face_normals = rotations[..., 1] * scales[:, None] ** 2
    vertex_normals = torch.zeros_like(verts).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, 0))
    corners = vertex_normals[faces[layout.face_idx]]
    normals = (layout.bary.to(verts.dtype)[..., None] * corners).sum(1)
    return torch.nn.functional.normalize(normals, dim=-1)


def preview_cameras(size: int, target: torch.Tensor) -> Cameras:
    """Front and three-quarter views of a head centred at `target`, 0.65 m away."""
    angles = torch.tensor([0.0, 0.6])
    eyes = target + 0.65 * torch.stack((torch.sin(angles), torch.zeros(2), torch.cos(angles)), -1)
    viewmats = look_at(eyes, target.expand(2, 3))
    Ks = intrinsics_from_fov(24.0, size, size).expand(2, 3, 3)
    return Cameras(viewmats, Ks, size, size)


def render_preview(head: HeadModel, size: int = 512, jaw: float = 0.25) -> np.ndarray:
    """-> uint8 image (size, 2 * size, 3): front and three-quarter views side by side."""
    with torch.no_grad():
        gaussians = shaded_gaussians(head, expressive_params(head, jaw))
        target = gaussians.means.mean(0) + torch.tensor([0.0, 0.03, 0.0])
        out = render(gaussians, preview_cameras(size, target), torch.ones(3), RenderConfig())
    image = torch.cat(tuple(out.image), dim=1)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def main(argv=None) -> None:
    import imageio.v3 as iio

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--flame-dir", default=None, help=f"FLAME directory (default ${FLAME_DIR_ENV} or a synthetic head)")
    parser.add_argument("--size", type=int, default=512, help="pixels per view")
    parser.add_argument("--uv-resolution", type=int, default=128, help="UV grid R (N ~ 0.83 R^2 on the synthetic head)")
    parser.add_argument("--jaw", type=float, default=0.25, help="jaw opening (radians)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        flame_dir = args.flame_dir or os.environ.get(FLAME_DIR_ENV)
        if not flame_dir:
            flame_dir = str(write_synthetic_flame(tmp, seed=0))
            print(f"no FLAME directory given: using a synthetic head (set ${FLAME_DIR_ENV} for real FLAME)")
        head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=args.uv_resolution))
        image = render_preview(head, args.size, args.jaw)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, image)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]}, {head.num_gaussians} Gaussians)")


if __name__ == "__main__":
    main()

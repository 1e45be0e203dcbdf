"""The head model every stage shares: FLAME layer + faces + UV texel layout, built from configs."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame.io import find_uv_file, load_flame_assets, load_uv, resolve_flame_dir
from sa0.flame.layer import FlameLayer
from sa0.gaussians.layout import UVLayout, build_uv_layout
from sa0.types import FlameParams


def to_width(value: torch.Tensor, width: int) -> torch.Tensor:
    """(B, K) coefficients cut or zero-padded to (B, width)."""
    return value[:, :width] if value.shape[1] >= width else torch.nn.functional.pad(value, (0, width - value.shape[1]))


@dataclass(frozen=True)
class HeadModel:
    """flame: the posing layer; faces (F, 3); layout: N texels bound to faces; model_dir: source."""

    flame: FlameLayer
    faces: torch.Tensor
    layout: UVLayout
    model_dir: Path

    @property
    def num_gaussians(self) -> int:
        return self.layout.num_gaussians

    def pose_track(self, track: dict, timesteps=None, shape=None) -> torch.Tensor:
        """Posed vertices (T, V, 3) from a clip's FLAME track (dict of (T, ...) arrays named as
        sa0.types.FlameParams), optionally only `timesteps`; shape and expression are padded or cut
        to this head's component counts; `shape` (S,) replaces the track's identity (reenactment)."""
        device = self.faces.device
        pick = (lambda v: np.asarray(v)[timesteps]) if timesteps is not None else np.asarray
        fields = {k: torch.as_tensor(pick(v)).to(device).float() for k, v in track.items()}
        if shape is not None:
            fields["shape"] = torch.as_tensor(np.asarray(shape, np.float32)).to(device).expand(len(fields["shape"]), -1)
        for name, width in (("shape", self.flame.num_shape), ("expression", self.flame.num_expression)):
            fields[name] = to_width(fields[name], width)
        with torch.no_grad():
            return self.flame(FlameParams(**fields))

    def to(self, device: torch.device | str) -> "HeadModel":
        """This head on `device`, a copy: this one stays where it is (the FLAME layer, an nn.Module, is
        copied before it moves; nn.Module.to alone would move this head's layer too)."""
        layout = dataclasses.replace(self.layout, **{
            f.name: getattr(self.layout, f.name).to(device)
            for f in dataclasses.fields(self.layout) if isinstance(getattr(self.layout, f.name), torch.Tensor)})
        flame = self.flame if self.faces.device == torch.device(device) else copy.deepcopy(self.flame).to(device)
        return HeadModel(flame, self.faces.to(device), layout, self.model_dir)

    def albedo(self) -> torch.Tensor | None:
        """Per-Gaussian RGB (N, 3) from a synthetic head's synthetic_albedo.npz, else None."""
        path = self.model_dir / "synthetic_albedo.npz"
        if not path.is_file():
            return None
        with np.load(path) as data:
            vertex_colors = torch.from_numpy(data["vertex_colors"])
            mouth = torch.from_numpy(data["mouth_faces"])
        corners = vertex_colors[self.faces[self.layout.face_idx]]  # (N, 3, 3)
        colors = (self.layout.bary[..., None] * corners).sum(1)
        in_mouth = torch.isin(self.layout.face_idx, mouth)
        colors[in_mouth] = torch.tensor([0.18, 0.05, 0.06], dtype=colors.dtype)  # inside of the mouth
        return colors.float()


def load_head_model(flame: FlameConfig | None = None, layout: LayoutConfig | None = None) -> HeadModel:
    """Load FLAME (or ICT-FaceKit, or a synthetic head: any FLAME-format directory) from flame.model_dir /
    $SA0_FLAME_DIR and lay out its UV grid."""
    flame = flame or FlameConfig()
    layout = layout or LayoutConfig()
    model_dir = resolve_flame_dir(flame.model_dir)
    assets = load_flame_assets(model_dir, flame.model_file)
    uv_path = model_dir / flame.uv_file if flame.uv_file else find_uv_file(model_dir)
    vt, ft = load_uv(uv_path, assets.num_faces)
    # FlameConfig's counts are upper bounds: a head with fewer components (ICT-FaceKit: 100 identity, 53
    # expression) uses all it has
    return HeadModel(
        flame=FlameLayer(assets, min(flame.num_shape, assets.max_shape),
                         min(flame.num_expression, assets.max_expression)),
        faces=torch.as_tensor(assets.faces),
        layout=build_uv_layout(vt, ft, layout.uv_resolution),
        model_dir=model_dir,
    )

"""Stage-boundary dataclasses of tensors.

Shapes use: B cameras/frames, N Gaussians, V vertices, F faces, C colour/feature channels.
Every stage takes and returns these; no stage reads state another stage left on an object.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


def _map_tensors(obj, fn):
    updates = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, torch.Tensor):
            updates[f.name] = fn(value)
    return replace(obj, **updates)


@dataclass(frozen=True)
class FlameParams:
    """FLAME coefficients for B frames (axis-angle rotations, radians; translation in metres).

    shape (B, S<=300), expression (B, E<=100), global_rot/neck/jaw (B, 3), eyes (B, 6) as
    left eye then right eye, translation (B, 3).
    """

    shape: torch.Tensor
    expression: torch.Tensor
    global_rot: torch.Tensor
    neck: torch.Tensor
    jaw: torch.Tensor
    eyes: torch.Tensor
    translation: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.shape.shape[0]

    @classmethod
    def zeros(
        cls, batch_size: int, num_shape: int, num_expression: int, dtype=torch.float32
    ) -> "FlameParams":
        z = lambda n: torch.zeros(batch_size, n, dtype=dtype)  # noqa: E731
        return cls(z(num_shape), z(num_expression), z(3), z(3), z(3), z(6), z(3))

    def to(self, *args, **kwargs) -> "FlameParams":
        return _map_tensors(self, lambda t: t.to(*args, **kwargs))


@dataclass(frozen=True)
class Cameras:
    """B pinhole cameras: OpenCV world-to-camera view matrices (B, 4, 4), intrinsics (B, 3, 3)."""

    viewmats: torch.Tensor
    Ks: torch.Tensor
    width: int
    height: int

    def __post_init__(self):
        if self.viewmats.ndim != 3 or self.viewmats.shape[-2:] != (4, 4):
            raise ValueError(f"Cameras.viewmats must be (B, 4, 4), got {tuple(self.viewmats.shape)}")
        if self.Ks.shape != (self.viewmats.shape[0], 3, 3):
            raise ValueError(
                f"Cameras.Ks must be ({self.viewmats.shape[0]}, 3, 3), got {tuple(self.Ks.shape)}"
            )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"Cameras size must be positive, got {self.width}x{self.height}")

    @property
    def num_cameras(self) -> int:
        return self.viewmats.shape[0]

    def to(self, *args, **kwargs) -> "Cameras":
        return _map_tensors(self, lambda t: t.to(*args, **kwargs))


@dataclass(frozen=True)
class Gaussians:
    """N world-space 3D Gaussians, activated; optionally with a leading batch dim B (one set per camera).

    means (N, 3); quats (N, 4) unit wxyz; scales (N, 3) linear standard deviations;
    opacities (N,) in [0, 1]; colors (N, C), any number of channels (RGB or features).
    Batched: the same with (B, N, ...).
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor

    def __post_init__(self):
        lead = tuple(self.means.shape[:-1])
        if self.means.ndim not in (2, 3) or self.means.shape[-1] != 3:
            raise ValueError(f"Gaussians.means must be (N, 3) or (B, N, 3), got {tuple(self.means.shape)}")
        expect = {"quats": lead + (4,), "scales": lead + (3,), "opacities": lead}
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name} must have shape {shape}, got {got}")
        if tuple(self.colors.shape[:-1]) != lead:
            raise ValueError(f"Gaussians.colors must be {lead + ('C',)}, got {tuple(self.colors.shape)}")

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[-2]

    @property
    def is_batched(self) -> bool:
        return self.means.ndim == 3

    def to(self, *args, **kwargs) -> "Gaussians":
        return _map_tensors(self, lambda t: t.to(*args, **kwargs))


@dataclass(frozen=True)
class LocalGaussians:
    """Per-texel Gaussian attributes in their face's local frame, before binding (METHOD §1).

    positions (N, 3) in face units; rotations (N, 4) wxyz (normalised at bind time);
    log_scales (N, 3); colors (N, C); opacity_logits (N,). The layout fixes N.
    """

    positions: torch.Tensor
    rotations: torch.Tensor
    log_scales: torch.Tensor
    colors: torch.Tensor
    opacity_logits: torch.Tensor

    @property
    def num_gaussians(self) -> int:
        return self.positions.shape[0]

    def to(self, *args, **kwargs) -> "LocalGaussians":
        return _map_tensors(self, lambda t: t.to(*args, **kwargs))


@dataclass(frozen=True)
class RenderOut:
    """Renderer output for B cameras.

    image (B, H, W, C); alpha (B, H, W, 1); and per Gaussian per camera: means2d (B, N, 2) in
    pixels, cov2d (B, N, 3) as (xx, xy, yy) including the 0.3 px low-pass, conics (B, N, 3) its
    inverse as (xx, xy, yy), depths (B, N) camera z, radii (B, N) int pixel extent, 0 = culled.
    """

    image: torch.Tensor
    alpha: torch.Tensor
    means2d: torch.Tensor
    cov2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor

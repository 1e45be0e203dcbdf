"""Frozen, keyword-only configs, one per component; `__post_init__` rejects bad values.

Each config converts to/from plain dicts (for checkpoints, MLflow params and job overrides).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")

RENDER_BACKENDS = ("auto", "native", "tiled", "dense", "gsplat")


def to_dict(config) -> dict[str, Any]:
    return asdict(config)


def apply_overrides(config: T, items: list[str]) -> T:
    """`KEY=VALUE` strings -> a copy of `config` with those fields set (values parsed by field type)."""
    from dataclasses import replace

    types = {f.name: type(getattr(config, f.name)) for f in fields(config)}
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise ValueError(f"override {item!r}: expected KEY=VALUE with KEY one of {sorted(types)}")
        kind = types[key]
        if kind is bool:
            changes[key] = value.lower() in ("1", "true", "yes")
        elif kind in (int, float, str):
            try:
                changes[key] = kind(value)
            except ValueError as exc:
                raise ValueError(f"override {item!r}: {key} must be {kind.__name__}") from exc
        else:
            raise ValueError(f"override {item!r}: field {key} cannot be set from the command line")
    return replace(config, **changes)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from a dict, naming any unknown field."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
    return cls(**data)


@dataclass(frozen=True, kw_only=True)
class FlameConfig:
    """Where the FLAME model lives and how many components to use.

    model_dir: directory with the FLAME pickle and UV asset; None reads $SA0_FLAME_DIR.
    model_file / uv_file: file names inside it (None: the first known name present).
    """

    model_dir: str | None = None
    model_file: str | None = None
    uv_file: str | None = None
    num_shape: int = 300
    num_expression: int = 100

    def __post_init__(self):
        if not 0 <= self.num_shape <= 300:
            raise ValueError(f"FlameConfig.num_shape must be in [0, 300], got {self.num_shape}")
        if not 0 <= self.num_expression <= 100:
            raise ValueError(f"FlameConfig.num_expression must be in [0, 100], got {self.num_expression}")


@dataclass(frozen=True, kw_only=True)
class LayoutConfig:
    """UV texel grid resolution R (METHOD §1: R = 256 gives ~58K Gaussians on FLAME)."""

    uv_resolution: int = 256

    def __post_init__(self):
        if not 8 <= self.uv_resolution <= 4096:
            raise ValueError(f"LayoutConfig.uv_resolution must be in [8, 4096], got {self.uv_resolution}")


@dataclass(frozen=True, kw_only=True)
class RenderConfig:
    """3DGS rasterisation settings shared by every backend.

    backend: auto (gsplat for CUDA tensors, else native), native (C++ CPU kernel; falls back to
    tiled when it cannot be built), tiled (pure torch), dense (slow reference), gsplat (CUDA).
    eps2d: screen-space low-pass added to 2D covariances (px^2). alpha_max: per-pixel alpha clamp
    (3DGS uses 0.99; gsplat's CUDA kernel hard-codes 0.999). tile_size: pixels per tile side.
    chunk: Gaussians per tile processed together by the tiled backend.
    """

    backend: str = "auto"
    near: float = 0.01
    far: float = 1e10
    eps2d: float = 0.3
    alpha_max: float = 0.99
    tile_size: int = 16
    chunk: int = 32

    def __post_init__(self):
        if self.backend not in RENDER_BACKENDS:
            raise ValueError(f"RenderConfig.backend must be one of {RENDER_BACKENDS}, got {self.backend!r}")
        if not 0 < self.near < self.far:
            raise ValueError(f"RenderConfig needs 0 < near < far, got near={self.near}, far={self.far}")
        if self.eps2d < 0:
            raise ValueError(f"RenderConfig.eps2d must be >= 0, got {self.eps2d}")
        if not 0 < self.alpha_max < 1:
            raise ValueError(f"RenderConfig.alpha_max must be in (0, 1), got {self.alpha_max}")
        if self.tile_size not in (4, 8, 16, 32):
            raise ValueError(f"RenderConfig.tile_size must be 4, 8, 16 or 32, got {self.tile_size}")
        if not 1 <= self.chunk <= 1024:
            raise ValueError(f"RenderConfig.chunk must be in [1, 1024], got {self.chunk}")

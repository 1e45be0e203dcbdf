"""Frozen, keyword-only configs, one per component; `__post_init__` rejects bad values.

Each config converts to/from plain dicts (for checkpoints, MLflow params and job overrides).
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar

T = TypeVar("T")

RENDER_BACKENDS = ("auto", "native", "tiled", "dense", "gsplat")


def to_dict(config) -> dict[str, Any]:
    return asdict(config)


def _parse_value(item: str, path: str, hint, value: str):
    """One override value -> hint's type (bool, int, float, str, tuple of those, or optional)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint):
        if value.lower() in ("none", "null", ""):
            return None
        hint = args[0]
    origin = typing.get_origin(hint)
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        return tuple(_parse_value(item, path, inner, v.strip()) for v in value.split(",") if v.strip())
    if hint is bool:
        if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(f"override {item!r}: {path} must be true or false, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    if hint in (int, float, str):
        try:
            return hint(value)
        except ValueError as exc:
            raise ValueError(f"override {item!r}: {path} must be {hint.__name__}, got {value!r}") from exc
    raise ValueError(f"override {item!r}: field {path} cannot be set from the command line")


def _override(config, keys: list[str], value: str, item: str, prefix: str):
    names = {f.name for f in fields(config)}
    key = keys[0]
    path = prefix + key
    if key not in names:
        raise ValueError(f"override {item!r}: unknown key {path!r}; {type(config).__name__} has {sorted(names)}")
    current = getattr(config, key)
    if len(keys) > 1:
        if not is_dataclass(current):
            raise ValueError(f"override {item!r}: {path} is not a config section (it is {current!r})")
        new = _override(current, keys[1:], value, item, path + ".")
    elif is_dataclass(current) and value.lower() == "none" and type(None) in typing.get_args(
            typing.get_type_hints(type(config))[key]):
        new = None  # an optional section switched off, e.g. phase2=none
    elif is_dataclass(current):
        raise ValueError(f"override {item!r}: {path} is a section; set one of its fields, e.g. {path}.<field>=...")
    else:
        new = _parse_value(item, path, typing.get_type_hints(type(config))[key], value)
    try:
        return replace(config, **{key: new})
    except ValueError as exc:  # the section's own check; say which key the user set
        if str(exc).startswith("override "):
            raise
        raise ValueError(f"override {item!r}: {exc}") from None


def apply_overrides(config: T, items: list[str]) -> T:
    """`KEY=VALUE` strings -> a copy of `config` with those fields set; KEY may be a dotted path into
    nested configs (`phase1.loss.lpips=1`); values are parsed by the field's type (tuples take
    comma-separated items, optional fields take `none`). Bad keys and values raise ValueError."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r}: expected KEY=VALUE")
        config = _override(config, key.split("."), value, item, "")
    return config


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

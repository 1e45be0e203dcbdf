"""FLAME: file loading (chumpy-free), the posing layer, the synthetic head builder."""

from sa0.flame.io import (
    FLAME_DIR_ENV,
    FlameAssets,
    FlameFileError,
    find_uv_file,
    load_flame_assets,
    load_pickle_without_chumpy,
    load_uv,
)
from sa0.flame.layer import FlameLayer

__all__ = [
    "FLAME_DIR_ENV",
    "FlameAssets",
    "FlameFileError",
    "FlameLayer",
    "find_uv_file",
    "load_flame_assets",
    "load_pickle_without_chumpy",
    "load_uv",
]

"""FLAME-bound Gaussians: UV texel layout, per-face frames, binding."""

from sa0.gaussians.bind import bind, init_local_gaussians
from sa0.gaussians.frames import face_frames
from sa0.gaussians.layout import UVLayout, build_uv_layout, texel_points

__all__ = ["UVLayout", "bind", "build_uv_layout", "face_frames", "init_local_gaussians", "texel_points"]

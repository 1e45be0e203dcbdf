"""Differentiable 3DGS rendering: render() over dense (reference), tiled (CPU default), gsplat (CUDA)."""

from sa0.render.api import render, resolve_backend
from sa0.render.projection import Projected, project

__all__ = ["Projected", "project", "render", "resolve_backend"]

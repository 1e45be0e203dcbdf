"""Differentiable 3DGS rendering: render() over native (C++, CPU default), tiled (torch), dense
(reference) and gsplat (CUDA) backends."""

from sa0.render.api import render, resolve_backend
from sa0.render.projection import Projected, project

__all__ = ["Projected", "project", "render", "resolve_backend"]

"""Export: standard 3DGS .ply files (animatable packages and videos come with refinement jobs)."""

from sa0.export.ply import SH_C0, export_ply, load_ply

__all__ = ["SH_C0", "export_ply", "load_ply"]

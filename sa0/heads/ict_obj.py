"""Reading the ICT-FaceKit "Light" model folder exactly as users download it (FaceXModel/).

The folder holds `generic_neutral_mesh.obj` (26,719 vertices, mostly quads, UVs in stacked tiles,
centimetres, +y up, +z out of the face), `identity000..099.obj` (each the neutral plus one PCA
identity mode at coefficient 1), one OBJ per ARKit-named expression blendshape (the neutral plus
that shape at weight 1), and `vertex_indices.json` (the expression names, the 68 Multi-PIE landmark
vertices, ...). Every OBJ shares the neutral's topology. Facts from ICT's README; the parsing is sa0's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
NUM_IDENTITY = 100
ICT_HELP = ("ICT-FaceKit Light (MIT) is the FaceXModel folder of the public ICT-FaceKit repository "
            "(unpack FaceXModel.tar.xz: tar xJf FaceXModel.tar.xz)")


class IctFileError(ValueError):
    """A file of the ICT-FaceKit folder is missing or malformed; the message names file and line."""


@dataclass(frozen=True)
class IctMesh:
    """The neutral mesh: vertices (V, 3) cm; uvs (T, 2); polygons: per face its vertex and UV indices
    (lists of 3 or 4); the folder it came from."""

    vertices: np.ndarray
    uvs: np.ndarray
    polygons: list[list[int]]
    polygon_uvs: list[list[int]]
    folder: Path


def read_obj_vertices(path: Path) -> np.ndarray:
    """The `v` lines of an OBJ -> (V, 3) float64."""
    if not path.is_file():
        raise IctFileError(f"{path}: not found. {ICT_HELP}")
    rows = [line.split()[1:4] for line in path.read_text(errors="replace").splitlines() if line.startswith("v ")]
    try:
        verts = np.asarray(rows, dtype=np.float64)
    except ValueError as exc:
        raise IctFileError(f"{path}: a 'v' line is not three numbers ({exc})") from exc
    if verts.ndim != 2 or verts.shape[1] != 3 or not np.isfinite(verts).all():
        raise IctFileError(f"{path}: expected finite (V, 3) vertices, got shape {verts.shape}")
    return verts


def read_neutral(folder: Path) -> IctMesh:
    """The neutral mesh with its UVs and polygons (v/vt/vn corners, 1-based)."""
    path = Path(folder) / NEUTRAL_FILE
    if not path.is_file():
        raise IctFileError(f"{path}: not found. {ICT_HELP}")
    verts, uvs, polys, poly_uvs = [], [], [], []
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if line.startswith("v "):
            verts.append(line.split()[1:4])
        elif line.startswith("vt "):
            uvs.append(line.split()[1:3])
        elif line.startswith("f "):
            try:
                corners = [c.split("/") for c in line.split()[1:]]
                polys.append([int(c[0]) - 1 for c in corners])
                poly_uvs.append([int(c[1]) - 1 for c in corners])
            except (IndexError, ValueError) as exc:
                raise IctFileError(f"{path}:{line_no}: face '{line.strip()}' is not v/vt[/vn] corners") from exc
            if len(corners) not in (3, 4):
                raise IctFileError(f"{path}:{line_no}: a face with {len(corners)} corners (expected 3 or 4)")
    return IctMesh(np.asarray(verts, np.float64), np.asarray(uvs, np.float64), polys, poly_uvs, Path(folder))


def read_index(folder: Path) -> dict:
    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise IctFileError(f"{path}: not found. {ICT_HELP}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IctFileError(f"{path}: not JSON ({exc})") from exc
    for key in ("expressions", "idx_to_landmark_verts"):
        if key not in data:
            raise IctFileError(f"{path}: missing key '{key}'; has {sorted(data)}")
    return data


def read_modes(folder: Path, names: list[str], neutral: np.ndarray, progress=None) -> np.ndarray:
    """Each named OBJ minus the neutral -> (K, V, 3) cm; a file with another vertex count is an error."""
    modes = np.empty((len(names), *neutral.shape), np.float64)
    for k, name in enumerate(names):
        verts = read_obj_vertices(Path(folder) / f"{name}.obj")
        if verts.shape != neutral.shape:
            raise IctFileError(f"{Path(folder) / (name + '.obj')}: {len(verts)} vertices, the neutral has "
                               f"{len(neutral)}")
        modes[k] = verts - neutral
        if progress is not None:
            progress.update(1)
    return modes


def identity_names() -> list[str]:
    return [f"identity{k:03d}" for k in range(NUM_IDENTITY)]

"""sa0's compact head file (`sa0_head.npz`): a FLAME-format head in a few MiB.

A head sa0 derives itself (ICT-FaceKit Light, sa0.heads) is shipped in the package, so its file must
be small: blend shapes are stored as integers in steps of QUANTUM metres (0.01 mm; a mesh rebuilt
from one coefficient is within QUANTUM / 2 of the source, per coordinate), expression shapes only on
the vertices they move, pose correctives (none) not at all. `read_compact_head` returns the same dict
of arrays a FLAME pickle gives (v_template, f, shapedirs, posedirs, J_regressor, weights,
kintree_table) plus `expression_offset` (where expressions start in shapedirs: FLAME's 300, here the
number of identity components), so sa0.flame.io validates and loads it like any FLAME.

Keys: v_template (V, 3) float32 m; f (F, 3) int32; shape_q (S, V, 3) int16; expr_rows (E + 1,) int64
offsets into expr_vertex (M,) int32 and expr_q (M, 3) int16; J_regressor (5, V) float64; weights
(V, 5) float32; kintree_table (2, 5) int64; vt (T, 2) float32 and ft (F, 3) int32 (the UV atlas);
format (1,) the version. Anything else (names, landmarks) rides along untouched.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

QUANTUM = 1e-5  # metres per integer step of a stored blend shape
FORMAT_VERSION = 1
COMPACT_FILE = "sa0_head.npz"


def quantize(modes: np.ndarray) -> np.ndarray:
    """(K, V, 3) metres -> int16 steps; a value outside int16's range is an error, not a wrap."""
    steps = np.round(np.asarray(modes) / QUANTUM)
    if np.abs(steps).max(initial=0) > np.iinfo(np.int16).max:
        raise ValueError(f"a blend shape moves a vertex {np.abs(modes).max():.4f} m, more than int16 steps of "
                         f"{QUANTUM} m can hold")
    return steps.astype(np.int16)


def pack_expressions(modes: np.ndarray) -> dict[str, np.ndarray]:
    """(E, V, 3) metres -> the sparse keys: per expression the vertices it moves and their steps."""
    rows, vertices, values = [0], [], []
    for mode in quantize(modes):
        moved = np.nonzero(np.abs(mode).max(1) > 0)[0]
        vertices.append(moved.astype(np.int32))
        values.append(mode[moved])
        rows.append(rows[-1] + len(moved))
    return {"expr_rows": np.asarray(rows, np.int64), "expr_vertex": np.concatenate(vertices),
            "expr_q": np.concatenate(values)}


def write_compact_head(path, *, v_template, faces, shape_modes, expression_modes, J_regressor, weights,
                       kintree_table, vt, ft, **extra) -> Path:
    """Write a compact head file (atomically); modes in metres, (S, V, 3) and (E, V, 3)."""
    from sa0.fsutil import write_bytes_atomic

    arrays = {"format": np.array([FORMAT_VERSION]), "v_template": np.asarray(v_template, np.float32),
              "f": np.asarray(faces, np.int32), "shape_q": quantize(shape_modes),
              **pack_expressions(expression_modes), "J_regressor": np.asarray(J_regressor, np.float64),
              "weights": np.asarray(weights, np.float32), "kintree_table": np.asarray(kintree_table, np.int64),
              "vt": np.asarray(vt, np.float32), "ft": np.asarray(ft, np.int32), **extra}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def read_compact_head(path) -> dict:
    """A compact head file -> FLAME's dict of arrays (module docstring), float64 blend shapes."""
    from sa0.flame.io import NUM_POSE_CORRECTIVES, FlameFileError

    path = Path(path)
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise FlameFileError(f"{path}: cannot be read as an sa0 head file ({exc})") from exc
    missing = [k for k in ("format", "v_template", "f", "shape_q", "expr_rows", "expr_vertex", "expr_q",
                           "J_regressor", "weights", "kintree_table") if k not in arrays]
    if missing:
        raise FlameFileError(f"{path}: missing key(s) {missing}; has {sorted(arrays)}")
    if int(arrays["format"][0]) != FORMAT_VERSION:
        raise FlameFileError(f"{path}: format {int(arrays['format'][0])}, this sa0 reads {FORMAT_VERSION}")
    num_v = len(arrays["v_template"])
    rows = arrays["expr_rows"]
    shape = arrays["shape_q"].astype(np.float64) * QUANTUM  # (S, V, 3)
    expr = np.zeros((len(rows) - 1, num_v, 3))
    for k in range(len(rows) - 1):
        expr[k, arrays["expr_vertex"][rows[k]:rows[k + 1]]] = arrays["expr_q"][rows[k]:rows[k + 1]] * QUANTUM
    return {"v_template": arrays["v_template"].astype(np.float64), "f": arrays["f"].astype(np.int64),
            "shapedirs": np.concatenate((shape, expr)).transpose(1, 2, 0),
            "posedirs": np.zeros((num_v, 3, NUM_POSE_CORRECTIVES)), "J_regressor": arrays["J_regressor"],
            "weights": arrays["weights"].astype(np.float64), "kintree_table": arrays["kintree_table"],
            "expression_offset": len(shape), "vt": arrays["vt"].astype(np.float64),
            "ft": arrays["ft"].astype(np.int64)}

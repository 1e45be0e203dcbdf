"""Loading and validating FLAME model files and UV assets, without chumpy.

Official FLAME pickles (FLAME 2020 `generic_model.pkl`, FLAME 2023 `flame2023.pkl`) were written
with Python 2 and hold some arrays as `chumpy.ch.Ch` objects and the joint regressor as a scipy
sparse matrix. chumpy does not import on numpy 2 / Python 3.11, so `load_pickle_without_chumpy`
replaces every chumpy class with a stand-in that keeps the pickled state; a plain `Ch` keeps its
value in state['x'], which becomes a numpy array.

FLAME is licensed separately and never shipped with sa0: see FLAME_HELP.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FLAME_DIR_ENV = "SA0_FLAME_DIR"
MODEL_FILE_NAMES = ("flame2023.pkl", "generic_model.pkl", "FLAME_NEUTRAL.pkl", "sa0_head.npz")
MEDIAPIPE_EMBEDDING_FILE = "mediapipe_landmark_embedding.npz"  # FLAME's MediaPipe landmark embedding
UV_FILE_NAMES = ("head_template_mesh.obj", "head_template.obj", "FLAME_texture.npz", "flame_uv.npz", "sa0_head.npz")
NUM_JOINTS = 5  # global (root), neck, jaw, left eye, right eye
NUM_POSE_CORRECTIVES = 36  # 4 non-root joints x 9 rotation-matrix entries
SHAPE_OFFSET_EXPRESSION = 300  # FLAME stores 300 shape then 100 expression components

FLAME_HELP = (
    "FLAME is licensed separately and not shipped with sa0: register at https://flame.is.tue.mpg.de, "
    "download FLAME 2020 (generic_model.pkl) or FLAME 2023 (flame2023.pkl) and the FLAME texture/UV "
    f"asset (head_template_mesh.obj or FLAME_texture.npz), put them in one directory and pass it as "
    f"FlameConfig.model_dir or set ${FLAME_DIR_ENV}. To try sa0 without FLAME, build a synthetic head "
    "in FLAME's file format: python -m sa0.flame.synthetic --out DIR"
)


class FlameFileError(ValueError):
    """A FLAME model or UV file is missing or malformed; the message names file, key and value."""


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; keeps the pickled state."""

    chumpy_class = "chumpy"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        self.__dict__["_state"] = state


class _NoChumpyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
        return super().find_class(module, name)


def _to_numpy(value, path: Path, key: str):
    if isinstance(value, _ChumpyStandIn):
        state = value.__dict__.get("_state")
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise FlameFileError(
            f"{path}: key '{key}' holds a chumpy expression ({value.chumpy_class}) rather than a "
            "plain chumpy array; sa0 can read plain arrays only. Re-export this file with numpy arrays."
        )
    if hasattr(value, "toarray"):  # scipy sparse (J_regressor in official files)
        return np.asarray(value.toarray())
    return value


def load_pickle_without_chumpy(path: str | os.PathLike) -> dict:
    """Unpickle a (possibly Python 2, chumpy-bearing) FLAME-style pickle into plain numpy values."""
    path = Path(path)
    if not path.is_file():
        raise FlameFileError(f"FLAME file not found: {path}. {FLAME_HELP}")
    try:
        with open(path, "rb") as fh:
            data = _NoChumpyUnpickler(fh, encoding="latin1").load()
    except FlameFileError:
        raise
    except Exception as exc:  # truncated, not a pickle, unknown class, ...
        raise FlameFileError(f"{path}: cannot be read as a FLAME pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise FlameFileError(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    return {key: _to_numpy(value, path, key) for key, value in data.items()}


@dataclass(frozen=True)
class FlameAssets:
    """Validated FLAME arrays (numpy, float64 / int64), the contract of sa0's FLAME layer.

    v_template (V, 3); faces (F, 3); shapedirs (V, 3, K) with shape components first and, from
    `expression_offset` (FLAME: 300), expression components; posedirs (V, 3, 36); J_regressor (5, V);
    weights (V, 5); parents (5,) with -1 for the root; source names the file.
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    source: str
    expression_offset: int = SHAPE_OFFSET_EXPRESSION

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def max_shape(self) -> int:
        return min(self.shapedirs.shape[2], self.expression_offset)

    @property
    def max_expression(self) -> int:
        return max(0, self.shapedirs.shape[2] - self.expression_offset)


def _field(data: dict, key: str, path: Path, ndim: int, what: str) -> np.ndarray:
    if key not in data:
        raise FlameFileError(f"{path}: missing key '{key}' (expected {what}). Keys present: {sorted(data)}")
    try:
        arr = np.asarray(data[key])
    except Exception as exc:
        raise FlameFileError(f"{path}: key '{key}' is not an array ({exc})") from exc
    if arr.ndim != ndim or arr.dtype == object:
        raise FlameFileError(f"{path}: key '{key}' must be {what}, got shape {arr.shape} dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise FlameFileError(f"{path}: key '{key}' contains non-finite values")
    return arr


def _expect(cond: bool, path: Path, key: str, message: str) -> None:
    if not cond:
        raise FlameFileError(f"{path}: key '{key}' {message}")


def validate_flame_dict(data: dict, path: Path) -> FlameAssets:
    """Check keys, shapes and index ranges of a FLAME dict; return typed assets."""
    v_template = _field(data, "v_template", path, 2, "(V, 3) float vertex positions")
    num_v = v_template.shape[0]
    _expect(v_template.shape[1] == 3, path, "v_template", f"must be (V, 3), got {v_template.shape}")
    faces = _field(data, "f", path, 2, "(F, 3) integer vertex indices")
    _expect(faces.shape[1] == 3 and faces.dtype.kind in "iu", path, "f",
            f"must be (F, 3) integers, got {faces.shape} {faces.dtype}")
    _expect(faces.size > 0 and faces.min() >= 0 and faces.max() < num_v, path, "f",
            f"indices must lie in [0, {num_v}), got [{faces.min()}, {faces.max()}]")
    shapedirs = _field(data, "shapedirs", path, 3, "(V, 3, K) shape+expression basis")
    _expect(shapedirs.shape[:2] == (num_v, 3), path, "shapedirs", f"must be ({num_v}, 3, K), got {shapedirs.shape}")
    posedirs = _field(data, "posedirs", path, 3, f"(V, 3, {NUM_POSE_CORRECTIVES}) pose correctives")
    _expect(posedirs.shape == (num_v, 3, NUM_POSE_CORRECTIVES), path, "posedirs",
            f"must be ({num_v}, 3, {NUM_POSE_CORRECTIVES}), got {posedirs.shape}")
    j_reg = _field(data, "J_regressor", path, 2, f"({NUM_JOINTS}, V) joint regressor")
    _expect(j_reg.shape == (NUM_JOINTS, num_v), path, "J_regressor", f"must be ({NUM_JOINTS}, {num_v}), got {j_reg.shape}")
    weights = _field(data, "weights", path, 2, f"(V, {NUM_JOINTS}) skinning weights")
    _expect(weights.shape == (num_v, NUM_JOINTS), path, "weights", f"must be ({num_v}, {NUM_JOINTS}), got {weights.shape}")
    kintree = _field(data, "kintree_table", path, 2, f"(2, {NUM_JOINTS}) kinematic tree")
    _expect(kintree.shape == (2, NUM_JOINTS), path, "kintree_table", f"must be (2, {NUM_JOINTS}), got {kintree.shape}")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # stored as uint32 max in official files
    _expect(all(0 <= p < i for i, p in enumerate(parents[1:], start=1)), path, "kintree_table",
            f"parents must precede children, got {parents.tolist()}")
    return FlameAssets(
        v_template=v_template.astype(np.float64),
        faces=faces.astype(np.int64),
        shapedirs=shapedirs.astype(np.float64),
        posedirs=posedirs.astype(np.float64),
        J_regressor=j_reg.astype(np.float64),
        weights=weights.astype(np.float64),
        parents=parents,
        source=str(path),
        expression_offset=int(data.get("expression_offset", SHAPE_OFFSET_EXPRESSION)),
    )


def _find_in_dir(directory: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise FlameFileError(f"no {what} found in {directory} (looked for {', '.join(names)}). {FLAME_HELP}")


def resolve_flame_dir(model_dir: str | os.PathLike | None) -> Path:
    """The FLAME directory: the argument, else ${SA0_FLAME_DIR}; an error says how to get one."""
    if model_dir is None:
        model_dir = os.environ.get(FLAME_DIR_ENV)
        if not model_dir:
            raise FlameFileError(f"no FLAME directory given and ${FLAME_DIR_ENV} is not set. {FLAME_HELP}")
    directory = Path(model_dir).expanduser()
    if not directory.is_dir():
        raise FlameFileError(f"FLAME directory does not exist: {directory}. {FLAME_HELP}")
    return directory


def load_flame_assets(model_dir=None, model_file: str | None = None) -> FlameAssets:
    """Load and validate the FLAME model in `model_dir` (or ${SA0_FLAME_DIR}).

    `model_file` picks a file name (or absolute path); default: the first of MODEL_FILE_NAMES present.
    """
    if model_file is not None and Path(model_file).is_absolute():
        path = Path(model_file)
    else:
        directory = resolve_flame_dir(model_dir)
        path = directory / model_file if model_file else _find_in_dir(directory, MODEL_FILE_NAMES, "FLAME model")
    if path.suffix == ".npz":  # sa0's compact head file (a head sa0 derives and ships, e.g. ICT-FaceKit)
        from sa0.flame.compact import read_compact_head

        if not path.is_file():
            raise FlameFileError(f"head file not found: {path}")
        return validate_flame_dict(read_compact_head(path), path)
    return validate_flame_dict(load_pickle_without_chumpy(path), path)


def _read_obj_uv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    vts, fts = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "vt":
                vts.append([float(parts[1]), float(parts[2])])
            elif parts[0] == "f":
                corners = parts[1:]
                if len(corners) != 3:
                    raise FlameFileError(f"{path}:{line_no}: face with {len(corners)} corners; only triangles are supported")
                try:
                    fts.append([int(c.split("/")[1]) - 1 for c in corners])
                except (IndexError, ValueError) as exc:
                    raise FlameFileError(f"{path}:{line_no}: face '{line.strip()}' has no texture index (v/vt)") from exc
    return np.asarray(vts, dtype=np.float64).reshape(-1, 2), np.asarray(fts, dtype=np.int64).reshape(-1, 3)


def load_uv(path: str | os.PathLike, num_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Read UV coordinates vt (T, 2) in [0, 1] and per-face UV indices ft (F, 3) from .obj or .npz."""
    path = Path(path)
    if not path.is_file():
        raise FlameFileError(f"FLAME UV file not found: {path}. {FLAME_HELP}")
    if path.suffix == ".npz":
        with np.load(path) as data:
            for key in ("vt", "ft"):
                if key not in data:
                    raise FlameFileError(f"{path}: missing key '{key}' (UV npz needs vt (T, 2) and ft (F, 3)); has {sorted(data)}")
            vt, ft = np.asarray(data["vt"], np.float64), np.asarray(data["ft"]).astype(np.int64)
    elif path.suffix == ".obj":
        vt, ft = _read_obj_uv(path)
    else:
        raise FlameFileError(f"{path}: unsupported UV file type '{path.suffix}' (use .obj with vt/ft or .npz)")
    if vt.ndim != 2 or vt.shape[1] != 2 or len(vt) == 0:
        raise FlameFileError(f"{path}: 'vt' must be (T, 2), got {vt.shape}")
    if not np.isfinite(vt).all() or vt.min() < -1e-6 or vt.max() > 1 + 1e-6:
        raise FlameFileError(f"{path}: 'vt' values must be finite and in [0, 1], got [{vt.min()}, {vt.max()}]")
    if ft.shape != (num_faces, 3):
        raise FlameFileError(f"{path}: 'ft' must be ({num_faces}, 3) to match the model's faces, got {ft.shape}")
    if ft.min() < 0 or ft.max() >= len(vt):
        raise FlameFileError(f"{path}: 'ft' indices must lie in [0, {len(vt)}), got [{ft.min()}, {ft.max()}]")
    return vt, ft


def find_uv_file(model_dir=None) -> Path:
    """The UV asset in the FLAME directory (first of UV_FILE_NAMES present)."""
    return _find_in_dir(resolve_flame_dir(model_dir), UV_FILE_NAMES, "FLAME UV asset")

"""The ICT-FaceKit Light head sa0 ships (derived by sa0.heads.ict_build; MIT, licence beside it).

`ict_dir()` is a FLAME-format directory every stage loads like FLAME (`FlameConfig(model_dir=...)`):
`sa0_head.npz` (sa0.flame.compact), `mediapipe_landmark_embedding.npz` (derived from MediaPipe on
renders of this head: sa0.track.embedding), `head.json`, `LICENSE.ICT-FaceKit`. `IctFacts` reads
what the pose layer does not need: expression names, the 68 landmark vertices, parts.

Parameters, as the tracker, the reference-frame rule and the generator read them:
- shape: 100 PCA identity coefficients (ICT's modes, unit prior);
- expression: ICT's 53 ARKit-named blendshapes in ICT's order (`expression_names`), weights ~[0, 1];
- jaw: a joint (sa0.heads.ict_rig); ARKit's jawOpen = w is jaw = w x `jaw_open_angle` about
  `jaw_axis` plus the jawOpen expression at w;
- eyes: two joints at the eyeball centres (ICT's eyeLook* shapes move only the lids);
- global rotation, neck, translation: FLAME's meaning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sa0.flame.compact import COMPACT_FILE
from sa0.flame.io import FlameFileError

ICT_DIR = Path(__file__).with_name("ict_light")
ICT_NAME = "ict-facekit-light"


def ict_dir() -> Path:
    """The shipped ICT head's directory; an error names what is missing and how to remake it."""
    if not (ICT_DIR / COMPACT_FILE).is_file():
        raise FlameFileError(f"{ICT_DIR / COMPACT_FILE}: missing from this sa0 installation; remake it with "
                             f"python -m sa0.heads.ict_build --src FaceXModel --out {ICT_DIR}")
    return ICT_DIR


def is_ict(model_dir) -> bool:
    meta = Path(model_dir) / "head.json"
    return meta.is_file() and json.loads(meta.read_text()).get("model") == ICT_NAME


@dataclass(frozen=True)
class IctFacts:
    """expression_names (53,); landmarks68 (68,) vertex ids (Multi-PIE order); parts: name -> vertex
    range; jaw_axis (3,), jaw_open_angle (radians of ARKit's jawOpen = 1); face_polygon (F,) ICT polygon."""

    expression_names: list[str]
    landmarks68: np.ndarray
    parts: dict[str, tuple[int, int]]
    jaw_axis: np.ndarray
    jaw_open_angle: float
    face_polygon: np.ndarray

    @classmethod
    def read(cls, model_dir=None) -> "IctFacts":
        model_dir = Path(model_dir) if model_dir is not None else ict_dir()
        with np.load(model_dir / COMPACT_FILE) as data:
            arrays = {k: data[k] for k in ("expression_names", "landmarks68_vertex", "jaw_axis", "jaw_open_angle",
                                           "face_polygon")}
        meta = json.loads((model_dir / "head.json").read_text())
        return cls([str(n) for n in arrays["expression_names"]], arrays["landmarks68_vertex"].astype(np.int64),
                   {k: tuple(v) for k, v in meta["parts"].items()}, arrays["jaw_axis"],
                   float(arrays["jaw_open_angle"][0]), arrays["face_polygon"])

    def part_of_vertex(self, num_vertices: int) -> np.ndarray:
        """(V,) index into `parts` of each vertex."""
        out = np.full(num_vertices, -1, np.int64)
        for k, (lo, hi) in enumerate(self.parts.values()):
            out[lo:hi] = k
        return out

"""Build sa0's ICT-FaceKit head from the FaceXModel folder users download (ICT-FaceKit Light, MIT).

    python -m sa0.heads.ict_build --src FaceXModel|FaceXModel.tar.xz --out DIR

writes DIR/sa0_head.npz (sa0.flame.compact: mesh, 100 identity and 53 expression shapes, the rig of
sa0.heads.ict_rig, the UV atlas, the 68 Multi-PIE landmark vertices), DIR/head.json (what was derived
and how) and ICT's licence text beside it. sa0 ships the result (sa0/heads/ict_light/); this
command is how it was made, and lets anyone remake it from ICT's files. The MediaPipe landmark
embedding is derived afterwards from renders of this head (python -m sa0.track.embedding).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sa0.flame.compact import COMPACT_FILE, write_compact_head
from sa0.heads.ict_obj import identity_names, read_index, read_modes, read_neutral
from sa0.heads.ict_rig import (EYE_CAP_DEGREES, NUM_KEPT_POLYGONS, NUM_KEPT_VERTICES, PARTS, TILE_PLACEMENT,
                               atlas_uvs, build_rig, triangulate)

CM = 0.01  # ICT's centimetres -> sa0's metres
LICENSE_NAME = "LICENSE.ICT-FaceKit"
MODEL_NAME = "ict-facekit-light"


def _unpacked(src: Path, tmp: Path) -> Path:
    """The FaceXModel folder: `src` itself, or unpacked from the .tar.xz users download."""
    if src.is_dir():
        return src
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such folder or archive (expected ICT-FaceKit's FaceXModel folder or "
                                "FaceXModel.tar.xz)")
    with tarfile.open(src) as tar:
        tar.extractall(tmp, filter="data")
    found = [p.parent for p in tmp.rglob("generic_neutral_mesh.obj")]
    if not found:
        raise FileNotFoundError(f"{src}: no generic_neutral_mesh.obj inside")
    return found[0]


def derive(folder: Path) -> dict:
    """Everything sa0 keeps of the ICT model, in metres: arrays for write_compact_head + facts."""
    mesh = read_neutral(folder)
    index = read_index(folder)
    names = list(index["expressions"])
    neutral = mesh.vertices[:NUM_KEPT_VERTICES]
    with tqdm(total=len(names) + 100, desc="reading ICT shapes", unit="obj") as bar:
        identity = read_modes(folder, identity_names(), mesh.vertices, bar)[:, :NUM_KEPT_VERTICES]
        expression = read_modes(folder, names, mesh.vertices, bar)[:, :NUM_KEPT_VERTICES]
    landmarks = np.asarray(index["idx_to_landmark_verts"], np.int64)
    jaw_k = names.index("jawOpen")
    rig = build_rig(neutral, neutral + expression[jaw_k], int(landmarks[8]))
    expression[jaw_k] = rig.jaw_residual
    faces, face_uv, source = triangulate(mesh.polygons[:NUM_KEPT_POLYGONS], mesh.polygon_uvs[:NUM_KEPT_POLYGONS])
    uv = atlas_uvs(neutral, faces, face_uv, source, mesh.uvs, rig.joints)
    kintree = np.stack((rig.parents, np.arange(5)))
    return {
        "arrays": dict(v_template=neutral * CM, faces=faces, shape_modes=identity * CM,
                       expression_modes=expression * CM, J_regressor=rig.J_regressor, weights=rig.weights,
                       kintree_table=kintree, vt=uv.reshape(-1, 2), ft=np.arange(3 * len(faces)).reshape(-1, 3),
                       expression_names=np.asarray(names), landmarks68_vertex=landmarks,
                       face_polygon=source, jaw_axis=rig.jaw_axis, jaw_open_angle=np.array([rig.jaw_angle])),
        "facts": {"model": MODEL_NAME, "units": "metres (ICT centimetres x 0.01), +y up, +z out of the face",
                  "num_vertices": int(len(neutral)), "num_faces": int(len(faces)), "num_identity": 100,
                  "expressions": names, "parts": {k: list(v[:2]) for k, v in PARTS.items()},
                  "jaw": {"joint_m": (rig.joints[2] * CM).tolist(), "axis": rig.jaw_axis.tolist(),
                          "jawOpen_angle_rad": rig.jaw_angle,
                          "note": "jawOpen = jaw rotation by jawOpen_angle_rad about axis + the jawOpen expression"},
                  "joints_m": (rig.joints * CM).tolist(),
                  "atlas": {"tiles": {str(k): v for k, v in TILE_PLACEMENT.items()}, "eye_cap_degrees": EYE_CAP_DEGREES},
                  "source": "ICT-FaceKit Light (FaceXModel), MIT licence, USC Institute for Creative Technologies"},
    }


def build(src, out) -> Path:
    """Derive the head from `src` (folder or .tar.xz) and write it into `out` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _unpacked(Path(src), Path(tmp))
        derived = derive(folder)
        write_compact_head(out / COMPACT_FILE, **derived["arrays"])
        licence = next((p for p in (folder / "LICENSE", folder.parent / "LICENSE", Path(src).parent / "LICENSE")
                        if p.is_file()), None)
        if licence is not None:
            shutil.copyfile(licence, out / LICENSE_NAME)
    (out / "head.json").write_text(json.dumps(derived["facts"], indent=1) + "\n")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="ICT-FaceKit's FaceXModel folder or FaceXModel.tar.xz")
    parser.add_argument("--out", required=True, help="directory to write the head into")
    args = parser.parse_args(argv)
    out = build(args.src, args.out)
    size = (out / COMPACT_FILE).stat().st_size / 2**20
    print(f"wrote {out / COMPACT_FILE} ({size:.1f} MiB) and head.json")


if __name__ == "__main__":
    main()

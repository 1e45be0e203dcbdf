"""Expression streams from other tools, read into a motion for the avatar's head.

A `Motion` is per-frame driving parameters in FLAME's layout (sa0.types.FlameParams' names without
the identity: expression, global_rot, neck, jaw, eyes, translation; (T, k) float32) and a frame rate.

* ARKit's 52 blendshapes (Apple ARKit, Live Link Face, MediaPipe's face blendshapes, Audio2Face): a
  CSV as Live Link Face writes it (a header row of names such as `EyeBlinkLeft`, `JawOpen`; columns
  `Timecode`, `BlendShapeCount` and the head and eye angles HeadYaw/Pitch/Roll, Left/RightEyeYaw/
  Pitch/Roll in radians) or JSON (`{"fps": 60, "frames": [{"jawOpen": 0.4, ...}, ...]}` or a bare
  list of such objects). Names are ARKit's, first letter in either case. They reach the head
  through its `sa0.drive.arkit.ArkitMap`: the ICT-FaceKit head's own (its expressions are ARKit's;
  jawOpen also turns the jaw joint; ICT has no `tongueOut`, which is read and ignored), or for FLAME
  and the synthetic head a linear map sa0 fits from the ICT head (see sa0.drive.arkit).
* FLAME parameter sequences: sa0's own motion (`drive.py --record` writes it: an .npz of the fields
  above and `fps`), or VHAP's export (a folder of per-frame `flame_param/NNNNN.npz` with expr,
  rotation, neck_pose, jaw_pose, eyes_pose, translation, or the folder above it).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sa0.drive.arkit import ARKIT_NAMES, ArkitMap

POSE_FIELDS = ("expression", "global_rot", "neck", "jaw", "eyes", "translation")
POSE_WIDTHS = {"global_rot": 3, "neck": 3, "jaw": 3, "eyes": 6, "translation": 3}
LIVE_LINK_EXTRA = ("timecode", "blendShapeCount", "headYaw", "headPitch", "headRoll", "leftEyeYaw", "leftEyePitch",
                   "leftEyeRoll", "rightEyeYaw", "rightEyePitch", "rightEyeRoll")


class DriveError(ValueError):
    """Bad driving input; the message names the file, the field and the value."""


@dataclass(frozen=True)
class Motion:
    """params: name -> (T, k) float32 for POSE_FIELDS; fps: frames per second; source: what it came
    from; head: the head model the parameters are for (sa0's head name, e.g. "ict"; None: unknown)."""

    params: dict[str, np.ndarray]
    fps: float
    source: str
    head: str | None = None

    @property
    def num_frames(self) -> int:
        return len(self.params["expression"])

    def save(self, path) -> Path:
        """An .npz any sa0 reader of motions takes (read_params); written atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, fps=np.float32(self.fps), head=np.str_(self.head or ""), **self.params)
        tmp.replace(path)
        return path


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _arkit_rows(path: Path) -> tuple[list[dict[str, float]], float | None]:
    """Rows of name -> weight (names as written) and the file's fps if it says."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            frames = data.get("frames") if isinstance(data, dict) else data
            fps = data.get("fps") if isinstance(data, dict) else None
            if not isinstance(frames, list) or not all(isinstance(r, dict) for r in frames):
                raise DriveError(f"{path}: expected a list of {{name: weight}} objects or {{'frames': [...]}}")
            return [{k: float(v) for k, v in r.items()} for r in frames], fps
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DriveError(f"{path}: cannot read ARKit weights ({type(exc).__name__}: {exc})") from None
    except (TypeError, ValueError) as exc:
        raise DriveError(f"{path}: a weight is not a number ({exc})") from None
    out = []
    for k, row in enumerate(rows):
        try:
            out.append({n.strip(): float(v) for n, v in row.items() if n and _lower_first(n.strip()) != "timecode"})
        except (TypeError, ValueError):
            bad = next(n for n, v in row.items() if n and _lower_first(n.strip()) != "timecode" and not _is_number(v))
            raise DriveError(f"{path}: row {k + 2}, column '{bad}': {row[bad]!r} is not a number") from None
    return out, None


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def read_arkit(path, mapping: ArkitMap, fps: float | None = None) -> Motion:
    """ARKit weights (CSV or JSON) -> Motion for the head `mapping` is for. Head and eye angles (Live
    Link Face) drive the global rotation and the eye joints (added to what the map gives the eyes)."""
    path = Path(path)
    if not path.is_file():
        raise DriveError(f"{path}: no such file")
    rows, file_fps = _arkit_rows(path)
    if not rows:
        raise DriveError(f"{path}: no frames")
    names = sorted({_lower_first(n) for r in rows for n in r})
    unknown = [n for n in names if n not in ARKIT_NAMES and n not in LIVE_LINK_EXTRA]
    if unknown:
        raise DriveError(f"{path}: unknown blendshape name(s) {', '.join(unknown)} (ARKit's 52 are "
                         f"{ARKIT_NAMES[0]} ... {ARKIT_NAMES[-1]})")
    shapes = [n for n in ARKIT_NAMES if n in names]
    weights = np.array([[_get(r, n) for n in shapes] for r in rows], np.float32)
    angle = lambda n: np.array([_get(r, n) for r in rows], np.float32)  # noqa: E731
    params = _empty(len(rows), mapping.expression.shape[1])
    params.update(mapping.apply(weights, shapes))
    # ARKit's yaw turns the head to its left (seen from the camera), pitch nods down; FLAME: y up, z toward the camera
    params["global_rot"] = np.stack((-angle("headPitch"), angle("headYaw"), -angle("headRoll")), 1)
    for side, offset in (("left", 0), ("right", 3)):
        params["eyes"][:, offset:offset + 3] += np.stack((-angle(f"{side}EyePitch"), angle(f"{side}EyeYaw"),
                                                         np.zeros(len(rows), np.float32)), 1)
    rate = fps or file_fps or 60.0
    return Motion(params, float(rate), str(path), mapping.head)


def _get(row: dict[str, float], name: str) -> float:
    return row.get(name, row.get(name[:1].upper() + name[1:], 0.0))


def _empty(frames: int, num_expression: int) -> dict[str, np.ndarray]:
    out = {"expression": np.zeros((frames, num_expression), np.float32)}
    out.update({k: np.zeros((frames, w), np.float32) for k, w in POSE_WIDTHS.items()})
    return out


VHAP_KEYS = {"expr": "expression", "rotation": "global_rot", "neck_pose": "neck", "jaw_pose": "jaw",
             "eyes_pose": "eyes", "translation": "translation"}


def read_params(path, head_name: str, num_expression: int, fps: float | None = None) -> Motion:
    """FLAME parameters for the head `head_name` (sa0.heads.head_name: ict-facekit-light, synthetic,
    flame): sa0's motion .npz (refused if recorded for another head), or a VHAP export (a flame_param
    folder of per-frame .npz, or its parent: FLAME's). Expression padded or cut to the head's count."""
    path = Path(path)
    if path.is_dir():
        folder = path / "flame_param" if (path / "flame_param").is_dir() else path
        files = sorted(folder.glob("*.npz"))
        if not files:
            raise DriveError(f"{path}: no per-frame .npz files (VHAP's flame_param/NNNNN.npz)")
        made_for = "flame"  # sa0.heads.FLAME_NAME
        frames = [_read_npz(f, VHAP_KEYS) for f in files]
        params = {k: np.concatenate([fr[k] for fr in frames]) for k in frames[0]}
        rate = fps or 25.0
    elif path.is_file():
        params = _read_npz(path, {k: k for k in POSE_FIELDS})
        with np.load(path) as data:
            rate = fps or (float(data["fps"]) if "fps" in data.files else 25.0)
            made_for = str(data["head"]) if "head" in data.files and str(data["head"]) else None
    else:
        raise DriveError(f"{path}: no such file or folder")
    if made_for is not None and made_for != head_name:
        raise DriveError(f"{path}: parameters for the {made_for} head; this avatar's head is {head_name}")
    out = _empty(len(params["expression"]), num_expression)
    width = min(num_expression, params["expression"].shape[1])
    out["expression"][:, :width] = params["expression"][:, :width]
    for k in POSE_WIDTHS:
        if k in params:
            out[k] = params[k]
    return Motion(out, float(rate), str(path), head_name)


def _read_npz(path: Path, keys: dict[str, str]) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            found = {ours: np.atleast_2d(np.asarray(data[theirs], np.float32))
                     for theirs, ours in keys.items() if theirs in data.files}
    except (OSError, ValueError) as exc:
        raise DriveError(f"{path}: not a readable .npz ({exc})") from None
    if "expression" not in found:
        raise DriveError(f"{path}: no field '{next(t for t, o in keys.items() if o == 'expression')}' "
                         f"(FLAME expression)")
    frames = len(found["expression"])
    for k, v in found.items():
        width = POSE_WIDTHS.get(k)
        if width is not None:
            found[k] = v.reshape(frames, -1)
            if found[k].shape[1] != width:
                raise DriveError(f"{path}: field '{k}' has {found[k].shape[1]} values per frame, expected {width}")
    return found


def motion_clip_like(motion: Motion, like, frame: int, shape: np.ndarray):
    """A Clip that plays `motion` (drive.py's record, or any read_params input) for the players
    (export_web, reenact, export): every timestep seen by `like`'s camera at `frame` (the avatar's
    own clip and reference frame), the identity `shape`, no translation (as drive.py poses it). The
    images are a read-only broadcast of that frame (the players read only their size)."""
    import dataclasses

    from sa0.data.schema import FlameTrack

    t = motion.num_frames
    rep = lambda a: np.broadcast_to(a[frame:frame + 1], (t,) + a.shape[1:])  # noqa: E731
    params = {k: v for k, v in motion.params.items()}
    params["translation"] = np.zeros_like(params["translation"])
    track = FlameTrack(shape=np.repeat(np.asarray(shape, np.float32)[None], t, 0), **params)
    return dataclasses.replace(like, images=rep(like.images), mattes=rep(like.mattes), viewmats=rep(like.viewmats),
                               Ks=rep(like.Ks), face_boxes=rep(like.face_boxes), flame=track,
                               meta=dataclasses.replace(like.meta, subject=f"{like.meta.subject} ({Path(motion.source).name})"))

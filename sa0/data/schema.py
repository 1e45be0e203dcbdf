"""The clip contract every converter produces and every consumer reads (METHOD §5).

A clip is one subject captured over T timesteps by C cameras (C = 1: monocular; C > 1:
multi-view, every camera at every timestep). Per frame (t, c): RGB image, foreground matte,
camera (OpenCV world-to-camera view matrix + pixel intrinsics, sa0.geometry.camera) and face box;
per timestep: FLAME parameters (shared by the cameras of that instant). Per clip: identifiers,
source dataset, domain tag, split and schema version.

`validate_clip(clip, source)` raises ClipError naming the source (file), the field, the frame and
the offending value; converters and the shard reader call it before anything trains.

Converters and the shard writer also speak a streaming form of the same contract: a `ClipSource`
(meta + an iterator over `Timestep`s, each one instant's C frames and parameters, or a `Skip`
naming a timestep that could not be read), so a 16-camera x 300-timestep capture is converted
holding one timestep in memory, and a bad frame costs its timestep, not the clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

SCHEMA_VERSION = 2  # 2: shards with a per-clip frame index (sa0.data.shards); 1 is refused
SPLITS = ("train", "val", "test")
FLAME_FIELDS = {  # name -> width (None: any width >= 1)
    "shape": None,
    "expression": None,
    "global_rot": 3,
    "neck": 3,
    "jaw": 3,
    "eyes": 6,
    "translation": 3,
}
ROTATION_TOLERANCE = 1e-3


class ClipError(ValueError):
    """A clip breaks the contract; the message names the source, field, frame and value."""


@dataclass(frozen=True)
class ClipMeta:
    """Identifiers: subject (person), clip_id (unique within the dataset), dataset (e.g. "vfhq"),
    domain (a tag for cross-domain evaluation), split (train / val / test)."""

    subject: str
    clip_id: str
    dataset: str
    domain: str
    split: str
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        """Shard sample key: dataset__subject__clip, with characters WebDataset keys cannot hold replaced."""
        raw = f"{self.dataset}__{self.subject}__{self.clip_id}"
        return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in raw)


@dataclass(frozen=True)
class FlameTrack:
    """Per-timestep FLAME parameters (numpy float32): shape (T, S), expression (T, E),
    global_rot / neck / jaw (T, 3) axis-angle, eyes (T, 6) left then right, translation (T, 3)."""

    shape: np.ndarray
    expression: np.ndarray
    global_rot: np.ndarray
    neck: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    translation: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Clip:
    """images (T, C, H, W, 3) uint8; mattes (T, C, H, W) uint8 (255 = foreground);
    viewmats (T, C, 4, 4) and Ks (T, C, 3, 3) float32; face_boxes (T, C, 4) float32 as
    (x0, y0, x1, y1) pixels; flame: one entry per timestep."""

    meta: ClipMeta
    images: np.ndarray
    mattes: np.ndarray
    viewmats: np.ndarray
    Ks: np.ndarray
    face_boxes: np.ndarray
    flame: FlameTrack
    extras: dict = field(default_factory=dict)

    @property
    def num_timesteps(self) -> int:
        return self.images.shape[0]

    @property
    def num_cameras(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.images.shape[2], self.images.shape[3]


def _where(index: tuple[int, ...]) -> str:
    names = ("frame", "camera")
    return " ".join(f"{n} {i}" for n, i in zip(names, index))


def _fail(source: str, name: str, message: str) -> None:
    raise ClipError(f"{source}: field '{name}' {message}")


def _check_array(source, name, arr, shape, dtype_kind) -> None:
    if not isinstance(arr, np.ndarray):
        _fail(source, name, f"must be a numpy array, got {type(arr).__name__}")
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        _fail(source, name, f"must have shape {want}, got {arr.shape}")
    if arr.dtype.kind not in dtype_kind:
        _fail(source, name, f"has dtype {arr.dtype}, expected {'uint8' if dtype_kind == 'u' else 'float'}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        _fail(source, name, f"has a non-finite value {arr[bad]} at {_where(bad[:2])} (index {bad})")


def validate_clip(clip: Clip, source: str = "<clip>") -> Clip:
    """Check the whole contract; returns the clip unchanged or raises ClipError."""
    meta = clip.meta
    if meta.schema_version != SCHEMA_VERSION:
        _fail(source, "schema_version", f"is {meta.schema_version}; this sa0 reads version {SCHEMA_VERSION}")
    if meta.split not in SPLITS:
        _fail(source, "split", f"must be one of {SPLITS}, got {meta.split!r}")
    for name in ("subject", "clip_id", "dataset", "domain"):
        if not getattr(meta, name):
            _fail(source, name, "must not be empty")
    if not isinstance(clip.images, np.ndarray) or clip.images.ndim != 5 or clip.images.shape[0] == 0:
        shape = getattr(clip.images, "shape", None)
        _fail(source, "images", f"must be a non-empty (T, C, H, W, 3) array, got shape {shape}")
    t, c, h, w = clip.images.shape[:4]
    if c == 0 or h == 0 or w == 0:
        _fail(source, "images", f"has an empty dimension: {clip.images.shape}")
    _check_array(source, "images", clip.images, (t, c, h, w, 3), "u")
    if clip.images.dtype != np.uint8:
        _fail(source, "images", f"has dtype {clip.images.dtype}, expected uint8")
    _check_array(source, "mattes", clip.mattes, (t, c, h, w), "u")
    _check_array(source, "viewmats", clip.viewmats, (t, c, 4, 4), "f")
    _check_array(source, "Ks", clip.Ks, (t, c, 3, 3), "f")
    _check_array(source, "face_boxes", clip.face_boxes, (t, c, 4), "f")
    for name, width in FLAME_FIELDS.items():
        _check_array(source, f"flame.{name}", getattr(clip.flame, name), (t, width), "f")
    _check_cameras(clip, source)
    boxes = clip.face_boxes
    bad = np.argwhere((boxes[..., 2] <= boxes[..., 0]) | (boxes[..., 3] <= boxes[..., 1]))
    if len(bad):
        i = tuple(int(v) for v in bad[0])
        _fail(source, "face_boxes", f"at {_where(i)} is empty or inverted: {boxes[i].tolist()}")
    return clip


def _check_cameras(clip: Clip, source: str) -> None:
    rot = clip.viewmats[..., :3, :3].astype(np.float64)
    ortho = np.abs(np.swapaxes(rot, -1, -2) @ rot - np.eye(3)).max(axis=(-1, -2))
    det = np.linalg.det(rot)
    bad = np.argwhere((ortho > ROTATION_TOLERANCE) | (np.abs(det - 1.0) > ROTATION_TOLERANCE))
    if len(bad):
        i = tuple(int(v) for v in bad[0])
        _fail(source, "viewmats", f"at {_where(i)} is not a rotation (|R^T R - I| = {ortho[i]:.3g}, det = {det[i]:.4g})")
    last_row = np.abs(clip.viewmats[..., 3, :] - np.array([0, 0, 0, 1], dtype=np.float32)).max(-1)
    bad = np.argwhere(last_row > 1e-6)
    if len(bad):
        i = tuple(int(v) for v in bad[0])
        _fail(source, "viewmats", f"at {_where(i)} has last row {clip.viewmats[i][3].tolist()}, expected [0, 0, 0, 1]")
    K = clip.Ks
    bad = np.argwhere((K[..., 0, 0] <= 0) | (K[..., 1, 1] <= 0) | (np.abs(K[..., 2, :] - [0, 0, 1]).max(-1) > 1e-6)
                      | (np.abs(K[..., 0, 1]) > 1e-6) | (np.abs(K[..., 1, 0]) > 1e-6))
    if len(bad):
        i = tuple(int(v) for v in bad[0])
        _fail(source, "Ks", f"at {_where(i)} is not a pinhole intrinsic matrix: {K[i].tolist()}")


@dataclass(frozen=True)
class Timestep:
    """One instant of a clip: images (C, H, W, 3) uint8, mattes (C, H, W) uint8, viewmats (C, 4, 4),
    Ks (C, 3, 3), face_boxes (C, 4) float32, flame {field: (width,)} float32. `source` names the
    files it came from (for messages)."""

    images: np.ndarray
    mattes: np.ndarray
    viewmats: np.ndarray
    Ks: np.ndarray
    face_boxes: np.ndarray
    flame: dict
    source: str = ""

    def as_clip(self, meta: ClipMeta) -> Clip:
        """A one-timestep Clip (for validation with validate_clip)."""
        one = lambda a: np.asarray(a)[None]  # noqa: E731
        return Clip(meta, one(self.images), one(self.mattes), one(self.viewmats), one(self.Ks), one(self.face_boxes),
                    FlameTrack(**{name: np.asarray(self.flame[name], np.float32).reshape(1, -1) for name in FLAME_FIELDS}))


@dataclass(frozen=True)
class Skip:
    """A timestep a converter could not read: `source` (file) and `reason` (field and value)."""

    source: str
    reason: str


@dataclass(frozen=True)
class ClipSource:
    """A clip as a stream: meta, `timesteps()` -> iterator of Timestep | Skip, `source` (its file or
    directory), extras (converter notes kept in meta.json)."""

    meta: ClipMeta
    timesteps: object  # Callable[[], Iterator[Timestep | Skip]]
    source: str
    extras: dict = field(default_factory=dict)


def clip_source(clip: Clip, source: str = "<clip>") -> ClipSource:
    """The streaming form of an in-memory clip."""

    def timesteps():
        for t in range(clip.num_timesteps):
            yield Timestep(clip.images[t], clip.mattes[t], clip.viewmats[t], clip.Ks[t], clip.face_boxes[t],
                           {name: getattr(clip.flame, name)[t] for name in FLAME_FIELDS}, f"{source} frame {t}")

    return ClipSource(clip.meta, timesteps, source, dict(clip.extras))


def materialise(src: ClipSource) -> Clip:
    """Collect a ClipSource into a validated Clip; the first Skip raises ClipError (strict)."""
    steps = []
    for item in src.timesteps():
        if isinstance(item, Skip):
            raise ClipError(f"{item.source}: {item.reason}")
        steps.append(item)
    if not steps:
        raise ClipError(f"{src.source}: no frames")
    stack = lambda name: np.stack([getattr(s, name) for s in steps])  # noqa: E731
    try:
        clip = Clip(src.meta, stack("images"), stack("mattes"), stack("viewmats").astype(np.float32),
                    stack("Ks").astype(np.float32), stack("face_boxes").astype(np.float32),
                    FlameTrack(**{n: np.stack([np.asarray(s.flame[n], np.float32).reshape(-1) for s in steps])
                                  for n in FLAME_FIELDS}), dict(src.extras))
    except ValueError as exc:  # frames of different sizes, parameters of different widths
        raise ClipError(f"{src.source}: timesteps do not stack into one clip ({exc})") from exc
    return validate_clip(clip, src.source)

"""The jobs that play an avatar package (jobs/export_web.py, jobs/reenact.py): configs and runs.

The package owns its facts: its head, UV resolution, subject and the shard directories it was
refined from (meta "shards"). The motion is the driver's (default: the avatar's own subject), its
first clip, found in the given shards, else the package's, else every shard directory under ./data.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from sa0.cli import Flag
from sa0.export.package import AvatarPackage, load_package, package_head

# The flags of every job that plays a package (export_web.py, reenact.py), defined once.
PLAY_FLAGS = (
    Flag(("--driver",), "driver", "subject whose motion plays (default: the avatar's own)"),
    Flag(("--camera",), "camera", "the driver clip's camera"),
    Flag(("--fps",), "fps", "frames per second"),
    Flag(("--motion",), "motion", "a recorded motion (drive.py --record) to play instead of the driver's clip", path=True),
)


@dataclass(frozen=True, kw_only=True)
class PlayJob:
    """avatar: avatar.npz from refine_batch.py. driver: the subject whose motion plays (None: the
    avatar's own). shards: where to find it (empty: the avatar's own, else ./data). head: a
    FLAME directory for a FLAME avatar (others are recorded). camera: the driver clip's camera.
    motion: a recorded motion (drive.py --record) played instead, seen by the avatar's own camera."""

    avatar: str = ""
    driver: str | None = None
    shards: tuple[str, ...] = ()
    out: str = ""
    head: str | None = None
    camera: int = 0
    fps: int = 25
    motion: str = ""
    serve: bool = False
    port: int = 8000
    uv_resolution: int | None = None

    def __post_init__(self):
        if self.camera < 0 or self.fps < 1 or not 0 < self.port < 65536:
            raise ValueError(f"camera must be >= 0, fps >= 1 and port in 1..65535, got {self.camera}, {self.fps}, "
                             f"{self.port}")


def web_job() -> PlayJob:
    return PlayJob(out="site")


def reenact_job() -> PlayJob:
    return PlayJob(out="reenact.mp4")


def _open(job: PlayJob) -> tuple[AvatarPackage, str, list[str]]:
    """(package, driver, shard directories), every input checked; ValueError names the flag."""
    from sa0.refine.subjects import BadInput, resolve_shard_dirs

    if not job.avatar:
        raise ValueError("--avatar is required (OUT/<subject>/avatar.npz from refine_batch.py)")
    if not Path(job.avatar).is_file():
        raise ValueError(f"--avatar {job.avatar}: no such file (refine_batch.py writes OUT/<subject>/avatar.npz)")
    try:
        package = load_package(job.avatar)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"--avatar {job.avatar}: {exc}") from None
    if job.uv_resolution not in (None, package.uv_resolution):
        raise ValueError(f"--uv-resolution {job.uv_resolution}: {job.avatar} was made at UV resolution "
                         f"{package.uv_resolution}")
    driver = job.driver or package.meta.get("subject")
    if not driver:
        raise ValueError(f"--avatar {job.avatar} names no subject; pass --driver SUBJECT")
    recorded = [d for d in package.meta.get("shards") or [] if (Path(d) / "manifest.json").is_file()]
    try:
        shards = resolve_shard_dirs(list(job.shards) or recorded or None)
    except BadInput as exc:
        raise ValueError(str(exc)) from None
    return package, driver, shards


@contextlib.contextmanager
def opened(job: PlayJob):
    """-> (package, head, driver clip); ValueError for bad input."""
    from sa0.flame import FlameFileError
    from sa0.refine.subjects import BadInput, driver_clip

    package, driver, shards = _open(job)
    try:
        clip = driver_clip(driver, shards)
        with package_head(package, job.head) as head:
            if job.motion:
                clip = _recorded(job.motion, head, clip, package)
            yield package, head, clip
    except (BadInput, FlameFileError) as exc:
        raise ValueError(str(exc)) from None


def _recorded(path: str, head, own_clip, package):
    """The clip that plays a recorded motion, seen by the avatar's own camera at its reference frame."""
    from sa0.drive.streams import motion_clip_like, read_params
    from sa0.heads import head_name

    motion = read_params(path, head_name(head.model_dir), head.flame.num_expression)
    frame = min(int(package.meta.get("reference_frame", 0)), own_clip.num_timesteps - 1)
    return motion_clip_like(motion, own_clip, frame, package.shape)


def run_web_job(job: PlayJob) -> int:
    """Write the viewer folder (and serve it if asked). -> exit status."""
    from sa0.export.serve import served
    from sa0.export.web import export_site

    try:
        with opened(job) as (package, head, clip):
            site = export_site(package, head, clip, job.out, camera=job.camera, fps=job.fps)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in site.iterdir()) / 2**20
    print(f"wrote {site}/: {package.local.positions.shape[0]} Gaussians, {clip.num_timesteps} frames of "
          f"{clip.meta.subject}, {size:.1f} MiB; open it with: python -m http.server --bind 127.0.0.1 -d {site}")
    if job.serve:
        with served(site, job.port, quiet=False) as url:
            print(f"serving {site} at {url}/  (Ctrl-C stops)", flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
    return 0


def run_reenact_job(job: PlayJob) -> int:
    """Render the avatar driven by the driver's clip into a video. -> exit status."""
    from sa0.export.reenact import reenact_frames, write_video

    try:
        with opened(job) as (package, head, clip):
            frames = reenact_frames(package, head, clip, camera=job.camera)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_video(frames, job.out, job.fps)
    print(f"wrote {job.out}: {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}")
    return 0


@dataclass(frozen=True, kw_only=True)
class ExportJob:
    """jobs/export.py: the avatar posed at one frame of a motion (or every frame: sequence) as a
    standard splat file. format: glb | spz | ply. frame: None = the avatar's reference frame (its
    own motion), else frame 0. out: "" = beside the avatar (avatar.<format>, or sequence_<format>/).
    fps: the sequence's timing (sequence.json)."""

    avatar: str = ""
    driver: str | None = None
    shards: tuple[str, ...] = ()
    out: str = ""
    head: str | None = None
    format: str = "glb"
    frame: int | None = None
    sequence: bool = False
    fps: float = 25.0
    motion: str = ""
    uv_resolution: int | None = None

    def __post_init__(self):
        from sa0.export.splats import FORMATS

        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.fps <= 0 or (self.frame is not None and self.sequence):
            raise ValueError(f"fps must be > 0 and frame cannot go with sequence (got fps {self.fps}, frame "
                             f"{self.frame}, sequence {self.sequence})")


def _export_out(job: ExportJob) -> Path:
    if job.out:
        return Path(job.out)
    where = Path(job.avatar).parent
    return where / (f"sequence_{job.format}" if job.sequence else f"avatar.{job.format}")


def run_export_job(job: ExportJob) -> int:
    """Write the frame (or the sequence); print what was written. -> exit status."""
    from sa0.export.splats import posed_gaussians, write_sequence, write_splats

    out = _export_out(job)
    try:
        with opened(job) as (package, head, clip):
            if job.sequence:
                written = write_sequence(package, head, clip, out, job.format, job.fps)
                size = sum(p.stat().st_size for p in written.iterdir())
                what = f"{clip.num_timesteps} frames"
            else:
                own = clip.meta.subject == package.meta.get("subject")
                frame = job.frame if job.frame is not None else (package.meta.get("reference_frame", 0) if own else 0)
                (gaussians,) = posed_gaussians(package, head, clip, [frame])
                written = write_splats(gaussians, out, job.format)
                size, what = written.stat().st_size, f"frame {frame}"
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written}: {len(package.face_idx)} Gaussians, {what} of {clip.meta.subject}'s motion, "
          f"{size / 2**20:.2f} MiB ({job.format})")
    return 0

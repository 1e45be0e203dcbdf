"""jobs/drive.py: drive an avatar from a camera, a video, ARKit weights or FLAME parameters.

Every input is checked before anything starts (the source opened or parsed, the avatar's package
and head read): a camera index that does not exist, an unreadable file, an unknown blendshape name
or parameters for another head than the avatar's are errors naming the thing, with nothing started.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sa0.drive.streams import DriveError

SOURCES = ("camera", "video", "arkit", "params")


@dataclass(frozen=True, kw_only=True)
class DriveJob:
    """avatar: avatar.npz from refine_batch.py; exactly one source: camera (a device index), video
    (a file, played at its own frame rate), arkit (ARKit-52 weights, CSV or JSON), params (FLAME
    parameters: sa0's motion .npz, a VHAP export). serve: stream to the browser viewer on
    127.0.0.1:port (0: a free port) until the source ends (a camera: until Ctrl-C); without it
    frames are processed as fast as they come (e.g. to --record). record: write the posed
    parameters as a motion .npz. fps: override the source's frame rate. out: the viewer folder (""
    = a temporary one). iterations: live-fit steps per frame. threads: torch's threads for the fit
    and the pose (1: their tensors are small, and with a browser drawing on the same cores two
    threads waited on each other: the fit took ~325 ms a frame instead of ~10, measured with
    headless Chromium on 2 cores)."""

    avatar: str = ""
    camera: int | None = None
    video: str = ""
    arkit: str = ""
    params: str = ""
    serve: bool = False
    port: int = 8000
    record: str = ""
    fps: float | None = None
    out: str = ""
    head: str | None = None
    shards: tuple[str, ...] = ()
    iterations: int = 3
    threads: int = 1
    linger: float = -1.0

    def __post_init__(self):
        if not 0 <= self.port < 65536 or (self.fps is not None and self.fps <= 0) or min(self.iterations,
                                                                                        self.threads) < 1:
            raise ValueError(f"port must be in 0..65535, fps > 0, iterations and threads >= 1 (got {self.port}, "
                             f"{self.fps}, {self.iterations}, {self.threads})")

    @property
    def source(self) -> str:
        return next((name for name in SOURCES if getattr(self, name) not in (None, "")), "sliders")


def one_source(job: DriveJob) -> DriveJob:
    """The job if it names at most one source, and one unless it serves (the page's sliders alone)
    (JobSpec.prepare); ValueError naming the flags."""
    chosen = [name for name in SOURCES if getattr(job, name) not in (None, "")]
    if len(chosen) > 1 or (not chosen and not job.serve):
        raise ValueError(f"give one of --camera, --video, --arkit, --params, or --serve alone for the viewer's "
                         f"sliders (got {', '.join('--' + c for c in chosen) or 'none'})")
    return job


def camera_device(index: int) -> str:
    """The ffmpeg name of camera `index`; DriveError when the machine has no such camera."""
    device = Path(f"/dev/video{index}")
    if not device.exists():
        present = sorted(p.name for p in Path("/dev").glob("video*"))
        raise DriveError(f"--camera {index}: no camera {device} (cameras here: {', '.join(present) or 'none'})")
    return f"<video{index}>"


def _images(path: str):
    """(fps, iterator of (H, W, 3) uint8 frames) of a video file or camera; DriveError if unreadable."""
    from sa0.track.frames import TrackError, video_source

    if path.startswith("<video"):
        import imageio.v2 as imageio

        try:
            reader = imageio.get_reader(path, format="ffmpeg")
            fps = float(reader.get_meta_data().get("fps") or 30.0)
        except Exception as exc:  # the device exists but ffmpeg cannot open it
            raise DriveError(f"--camera {path}: cannot be opened ({type(exc).__name__}: {str(exc)[:200]})") from None
        return fps, (np.asarray(im)[..., :3] for im in reader)
    try:
        source = video_source(path)
    except TrackError as exc:
        raise DriveError(f"--video {exc}") from None
    return source.fps, (f.image for f in source.frames() if hasattr(f, "image"))


@contextlib.contextmanager
def _frames(job: DriveJob, head, package, counts, realtime: bool):
    """-> (fps, DriveFrame iterator) for the job's source; DriveError for bad input."""
    from sa0.drive import pipeline, streams
    from sa0.drive.arkit import arkit_map_for, describe
    from sa0.drive.fastfit import LiveFitConfig, LiveFitter
    from sa0.heads import head_name
    from sa0.track.fit import FitConfig

    name = head_name(head.model_dir)
    if job.source == "sliders":  # nothing streams: the page's sliders pose the avatar
        yield 25.0, iter(())
        return
    if job.source in ("arkit", "params"):
        if job.source == "arkit":
            mapping = arkit_map_for(head)
            print(describe(mapping), flush=True)
            motion = streams.read_arkit(job.arkit, mapping, job.fps)
        else:
            motion = streams.read_params(job.params, name, head.flame.num_expression, job.fps)
        yield motion.fps, pipeline.motion_frames(motion, package.shape, counts, realtime)
        return
    fps, images = _images(camera_device(job.camera) if job.source == "camera" else job.video)
    with _landmarks(head) as (detector, layer, ids):
        make = lambda size: LiveFitter(layer, package.shape, FitConfig().focal_init, size,  # noqa: E731
                                       LiveFitConfig(iterations=job.iterations))
        yield job.fps or fps, pipeline.video_frames(images, job.fps or fps, detector, make, ids, counts, realtime)


@contextlib.contextmanager
def _landmarks(head):
    """-> (MediaPipe detector, the head's landmark layer, the detector ids in the layer's order)."""
    from sa0.flame.landmarks import LandmarkLayer, load_mediapipe_embedding, with_irises
    from sa0.track.mp_detector import MediaPipeDetector

    embedding = with_irises(load_mediapipe_embedding(head.model_dir, len(head.faces)), head.flame)
    with MediaPipeDetector(static=False, matte=False) as detector:
        yield detector, LandmarkLayer(head.flame, embedding), embedding.ids


def _summary(counts, seconds: float, hub) -> str:
    rate = counts.posed / seconds if seconds > 0 else float("nan")
    line = (f"{counts.posed} of {counts.read} frames posed in {seconds:.1f} s ({rate:.1f} frames/s; "
            f"{counts.dropped} dropped behind real time, {counts.no_face} without a face)")
    if hub is not None and hub.stats.latency_ms:
        lat = np.array(hub.stats.latency_ms)
        line += (f"; the page posed {len(lat)} (latency median {np.median(lat):.0f} ms, p95 "
                 f"{np.percentile(lat, 95):.0f} ms)")
    return line


def _serve_and_drive(job: DriveJob, package, head, clip, frames, counts, record):
    """Export the viewer, serve it with /live, drive every frame into it; -> (seconds, hub)."""
    from sa0.drive.live import FrameHub, LiveServer
    from sa0.drive.pipeline import Poser, drive
    from sa0.export.web import export_site

    hub, poser, sliders = FrameHub(), Poser(head, package.shape), _sliders(head, package)
    with tempfile.TemporaryDirectory(prefix="sa0-drive-") as tmp:
        site = export_site(package, head, clip, job.out or Path(tmp) / "site")
        hello = {"frame": int(package.meta.get("reference_frame", 0)), "subject": package.meta.get("subject"),
                 "controls": sliders.controls}
        on_set = lambda values: hub.publish_next(time.perf_counter(), poser(sliders.params(values)))  # noqa: E731
        with LiveServer(site, hub, job.port, hello, on_set) as server:
            print(f"live: open {server.url}/?live=1  (Ctrl-C stops)", flush=True)
            if job.source not in ("camera", "sliders"):  # a recorded source starts when someone watches
                print("waiting for a page to connect", flush=True)
                hub.page.wait()
            seconds = _timed_drive(lambda: drive(frames, poser, hub.publish, counts, record))
            hub.end()
            print(f"source ended: {_summary(counts, seconds, hub)}", flush=True)
            _linger(job.linger)
    return seconds, hub


def _sliders(head, package):
    from sa0.drive.arkit import arkit_map_for
    from sa0.drive.sliders import Sliders

    try:
        mapping = arkit_map_for(head)
    except ValueError as exc:
        print(f"warning: the page's sliders move only the jaw ({exc})", file=sys.stderr)
        mapping = None
    return Sliders(head.flame.num_shape, head.flame.num_expression, package.shape, mapping)


def _timed_drive(run) -> float:
    """Seconds `run()` took; Ctrl-C ends it (a camera has no end) and keeps what was done."""
    start = time.perf_counter()
    try:
        run()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return time.perf_counter() - start


def _linger(seconds: float) -> None:
    try:
        if seconds < 0:
            threading.Event().wait()
        time.sleep(seconds)
    except KeyboardInterrupt:
        pass


def run_drive_job(job: DriveJob) -> int:
    """Check the inputs, then drive (serving if asked). -> exit status."""
    import torch

    from sa0.drive.pipeline import DriveCounts, Poser, drive, recorded_motion
    from sa0.export.job import PlayJob, opened
    from sa0.heads import head_name

    torch.set_num_threads(job.threads)
    counts, record = DriveCounts(), ([] if job.record else None)
    hub = None
    try:
        with opened(PlayJob(avatar=job.avatar, shards=job.shards, head=job.head)) as (package, head, clip), \
                _frames(job, head, package, counts, realtime=job.serve) as (fps, frames):
            name = head_name(head.model_dir)
            print(f"driving {package.meta.get('subject')} ({name} head, {head.model_dir}) from --{job.source}",
                  flush=True)
            if job.serve:
                seconds, hub = _serve_and_drive(job, package, head, clip, frames, counts, record)
            else:
                poser = Poser(head, package.shape)
                seconds = _timed_drive(lambda: drive(frames, poser, lambda *_: None, counts, record))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the source started (waiting for a page)
        print("stopped", file=sys.stderr)
        return 130
    print(_summary(counts, seconds, hub))
    if record:
        path = recorded_motion(record, fps, job.source, name).save(job.record)
        print(f"wrote {path}: {len(record)} frames at {fps:g} frames/s")
    return 0

"""Live driving (jobs/drive.py): server-side frame rate, latency to the page, fit accuracy.

    python benchmarks/bm_drive.py [--json] [--quick] [--uv-resolution 128] [--threads N]

* server: a 512^2 video (the shared real video lp_d0, else a rendered ICT head) read, MediaPipe's
  landmarks, the live fit, the pose, the message packed, as fast as it goes: `frames_per_second`
  and each stage's median milliseconds.
* live: the same video played at its own frame rate into sa0's viewer open in headless Chromium
  (?live=1): latency from a frame's read to the page's posing of it (median, p95, on the server's
  clock), `frames_posed_fraction` (frames the page posed / frames in the video) and the page's own
  `draw_frames_per_second` (WebGL here runs on SwiftShader, on the CPU); where the latency went:
  `server_ms_*` (read -> published: detection, fit, pose), `waiting_ms_*` (published -> sent: the
  page had not asked yet), `in_flight_ms_*` (sent -> the page's `posed`).
* accuracy: the live fit on projected landmarks of known parameters (0.5 px noise) against the truth
  (jaw, head rotation), and its landmark RMS beside the offline tracker's landmark stage on the same
  frames.
* real videos (not with --quick): each shared video played in real time without a page: frames/s and
  the fraction posed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sa0.config import FlameConfig, LayoutConfig  # noqa: E402
from sa0.drive.fastfit import LiveFitConfig, LiveFitter  # noqa: E402
from sa0.drive.job import DriveJob  # noqa: E402
from sa0.drive.live import FrameHub, LiveServer, frame_message  # noqa: E402
from sa0.drive.pipeline import DriveCounts, Poser, drive, video_frames  # noqa: E402
from sa0.flame.landmarks import LandmarkLayer, load_mediapipe_embedding, with_irises  # noqa: E402
from sa0.head import load_head_model  # noqa: E402
from sa0.heads.ict import ict_dir  # noqa: E402
from sa0.track.fit import FitConfig  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "videos"


class Timed:
    """Wraps a callable, keeping each call's milliseconds."""

    def __init__(self, fn):
        self.fn, self.ms = fn, []

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.fn(*args)
        self.ms.append((time.perf_counter() - start) * 1000)
        return out


def _images(path: Path):
    from sa0.track.frames import video_source

    source = video_source(path)
    return source.fps, [f.image for f in source.frames() if hasattr(f, "image")]


def _setup(uv: int):
    head = load_head_model(FlameConfig(model_dir=str(ict_dir())), LayoutConfig(uv_resolution=uv))
    embedding = with_irises(load_mediapipe_embedding(ict_dir(), len(head.faces)), head.flame)
    layer = LandmarkLayer(head.flame, embedding)
    return head, layer, embedding.ids


class _Detector:
    def __init__(self, detector):
        self.detect = Timed(detector.detect)


def _poser(head) -> Poser:
    """The identity the fits carry (zeros, as _Fitters'), baked in as drive.py bakes the avatar's."""
    return Poser(head, np.zeros(head.flame.num_shape))


class _Fitters:
    """make(size) for video_frames, each fit timed."""

    def __init__(self, layer):
        self.layer, self.fit = layer, None

    def __call__(self, size):
        fitter = LiveFitter(self.layer, np.zeros(self.layer.num_shape), FitConfig().focal_init, size, LiveFitConfig())
        self.fit = Timed(fitter.fit)
        return self


def server_side(images, fps, head, layer, ids, detector) -> dict:
    """Every frame through read -> detect -> fit -> pose -> pack, as fast as it goes."""
    timed, fitters = _Detector(detector), _Fitters(layer)
    poser = Timed(_poser(head))
    pack = Timed(lambda k, t, v: frame_message(k, np.ascontiguousarray(v, np.float32).tobytes(), 0.0))
    counts = DriveCounts()
    start = time.perf_counter()
    drive(video_frames(iter(images), fps, timed, fitters, ids, counts, realtime=False), poser, pack, counts)
    seconds = time.perf_counter() - start
    fit_ms = fitters.fit.ms if fitters.fit else [float("nan")]
    return {"frames": counts.read, "posed": counts.posed, "frames_per_second": round(counts.posed / seconds, 1),
            "detect_ms": round(float(np.median(timed.detect.ms)), 1), "fit_ms": round(float(np.median(fit_ms[1:])), 1),
            "first_fit_ms": round(fit_ms[0]), "pose_ms": round(float(np.median(poser.ms)), 1),
            "pack_ms": round(float(np.median(pack.ms)), 2)}


def _site(root: Path, head):
    """A small ICT avatar (neutral start on a synthetic clip) and its viewer folder."""
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.export.package import load_package, save_package
    from sa0.export.web import export_site
    from sa0.refine.reference import neutral_init

    (clip,) = synthetic_clips(head, "mono", 1, 1, 2, 1, 512, DOMAINS["studio"], seed=5)
    verts = head.pose_track(clip.flame.as_dict())
    avatar = save_package(root / "avatar.npz", neutral_init(head, verts[0], clip, 0), head.layout,
                          clip.flame.shape[0], {"subject": clip.meta.subject})
    return export_site(load_package(avatar), head, clip, root / "site")


class _Watcher(threading.Thread):
    """The page in headless Chromium, in its own thread (the drive runs in the main thread, as in
    drive.py): opens the viewer, samples its draw rate until the source ends, then times its draws."""

    def __init__(self, url: str):
        super().__init__(name="bm-drive-page", daemon=True)
        self.url, self.rates, self.draw_ms, self.error = url, [], float("nan"), None

    def run(self):
        from sa0.export.serve import headless_chromium

        try:
            with headless_chromium() as browser:
                page = browser.new_page()
                page.goto(f"{self.url}/?live=1")
                ended = "window.sa0viewer.live && window.sa0viewer.live.stats && window.sa0viewer.live.stats.ended"
                while not page.evaluate(ended):
                    time.sleep(0.5)
                    self.rates.append(page.evaluate("window.sa0viewer.state ? window.sa0viewer.state.rate : 0"))
                self.draw_ms = page.evaluate("window.sa0viewer.bench(5)")
        except Exception as exc:  # re-raised by live_with_page
            self.error = exc


def live_with_page(images, fps, head, layer, ids, detector, site: Path) -> dict:
    """The video at its frame rate into the viewer in headless Chromium."""
    hub, counts = FrameHub(), DriveCounts()
    with LiveServer(site, hub) as server:
        watcher = _Watcher(server.url)
        watcher.start()
        if not hub.page.wait(120):
            raise RuntimeError(f"no page connected to {server.url} in 120 s: {watcher.error}")
        frames = video_frames(iter(images), fps, _Detector(detector), _Fitters(layer), ids, counts, realtime=True)
        start = time.perf_counter()
        drive(frames, _poser(head), hub.publish, counts)
        seconds = time.perf_counter() - start
        hub.end()
        watcher.join(120)
    if watcher.error is not None or watcher.is_alive():
        raise RuntimeError(f"the page failed: {watcher.error or 'no end after 120 s'}")
    lat = np.array(hub.stats.latency_ms)
    drawn = [r for r in watcher.rates[1:] if r > 0]
    return {"frames": len(images), "seconds": round(seconds, 1), "server_posed": counts.posed,
            "dropped_behind_real_time": counts.dropped, "frames_posed_fraction": round(len(lat) / len(images), 3),
            "latency_ms_median": round(float(np.median(lat)), 1), "latency_ms_p95": round(float(np.percentile(lat, 95)), 1),
            **_latency_parts(hub.stats),
            "draw_frames_per_second": round(1000 / watcher.draw_ms, 1),
            "page_draws_per_second_live": round(float(np.median(drawn)), 1) if drawn else 0.0}


def _latency_parts(stats) -> dict:
    """Where a posed frame's latency went (median and p95 ms): read -> published (detection, fit,
    pose), published -> sent (waiting for the page to ask), sent -> posed (to the page and posed)."""
    parts = {"server": [], "waiting": [], "in_flight": []}
    for k in stats.posed:
        read, published, sent = stats.read_at[k], stats.published_at[k], stats.sent_at[k]
        parts["server"].append(published - read)
        parts["waiting"].append(sent - published)
    parts["in_flight"] = [ms / 1000 for ms in stats.in_flight_ms]
    return {f"{name}_ms_{q}": round(float(np.percentile(np.array(v) * 1000, 50 if q == "median" else 95)), 1)
            for name, v in parts.items() for q in ("median", "p95")}


def accuracy(layer, frames: int = 40) -> dict:
    """The live fit and the offline tracker's landmark stage on the same projected landmarks of known
    parameters (0.5 px noise, 512^2)."""
    from smplx.lbs import batch_rodrigues

    from sa0.drive.synthetic import known_landmarks
    from sa0.track.fit import fit_landmarks

    shape, truths, seen = known_landmarks(layer, frames)
    fitter = LiveFitter(layer, shape, 1.8, (512, 512))
    live = [fitter.fit(s) for s in seen]
    angle = lambda a, b: float(np.degrees(np.arccos(np.clip(  # noqa: E731
        (float((batch_rodrigues(a.float()) @ batch_rodrigues(b.float()).transpose(1, 2))[0].trace()) - 1) / 2, -1, 1))))
    jaw = [abs(float(p.jaw[0, 0] - t.jaw[0, 0])) for (p, _), t in zip(live, truths)]
    rot = [angle(p.global_rot, t.global_rot) for (p, _), t in zip(live, truths)]
    offline = fit_landmarks(layer, np.stack(seen), np.full((frames, 2), 512), FitConfig(focal=1.8))
    return {"jaw_error_deg_max": round(float(np.degrees(max(jaw[1:]))), 2),
            "rotation_error_deg_max": round(max(rot[1:]), 2),
            "landmark_rmse_px_live": round(float(np.median([e for _, e in live[1:]])), 3),
            "landmark_rmse_px_offline": round(float(np.median(offline.error_px)), 3)}


def real_videos(head, layer, ids, detector, quick: bool) -> dict:
    """Each shared real video played in real time, no page: frames/s posed and the fraction posed."""
    out = {}
    for path in sorted(VIDEOS.glob("*.mp4"))[: 1 if quick else None]:
        fps, images = _images(path)
        counts = DriveCounts()
        frames = video_frames(iter(images), fps, _Detector(detector), _Fitters(layer), ids, counts, realtime=True)
        start = time.perf_counter()
        drive(frames, _poser(head), lambda *_: None, counts)
        seconds = time.perf_counter() - start
        out[path.stem] = {"frames": len(images), "video_fps": round(fps, 2), "posed_fraction": round(counts.posed / len(images), 3),
                          "frames_per_second": round(counts.posed / seconds, 1), "no_face": counts.no_face}
    return out


def _video(root: Path, head) -> tuple[float, list]:
    if (VIDEOS / "lp_d0.mp4").is_file():
        return _images(VIDEOS / "lp_d0.mp4")
    from sa0.drive.synthetic import talking_head_frames

    return 25.0, talking_head_frames(head, np.clip(np.sin(np.linspace(0, 6 * np.pi, 75)), 0, 1), size=512)


def main(argv=None) -> None:
    from sa0.track.mp_detector import MediaPipeDetector

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="lp_d0 only among the real videos")
    parser.add_argument("--uv-resolution", type=int, default=128)
    parser.add_argument("--threads", type=int, default=DriveJob().threads, help="torch threads (default: drive.py's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    head, layer, ids = _setup(args.uv_resolution)
    report = {"threads": torch.get_num_threads(), "uv_resolution": args.uv_resolution, "accuracy": accuracy(layer)}
    with tempfile.TemporaryDirectory() as tmp, MediaPipeDetector(static=False, matte=False) as detector:
        fps, images = _video(Path(tmp), head)
        report["video"] = {"frames": len(images), "fps": fps, "size": list(images[0].shape[:2])}
        report["server"] = server_side(images, fps, head, layer, ids, detector)
    with tempfile.TemporaryDirectory() as tmp, MediaPipeDetector(static=False, matte=False) as detector:
        report["live"] = live_with_page(images, fps, head, layer, ids, detector, _site(Path(tmp), head))
    with MediaPipeDetector(static=False, matte=False) as detector:
        report["real_videos"] = real_videos(head, layer, ids, detector, args.quick)
    flat = {"frames_per_second": report["server"]["frames_per_second"],
            **{k: report["live"][k] for k in ("latency_ms_median", "latency_ms_p95", "frames_posed_fraction",
                                              "draw_frames_per_second")}}
    report = {**flat, **report}
    print(json.dumps(report, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))


if __name__ == "__main__":
    main()

"""The tracking job's config and run (jobs/track.py): a video or photos in, FLAME-format parameters
and cameras per frame out, as shards the refiner reads."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from sa0.config import FlameConfig, LayoutConfig
from sa0.track.run import TrackConfig


@dataclass(frozen=True, kw_only=True)
class TrackJob:
    """video: a video file; images: photo files or folders (one subject); exactly one. out: the shard
    directory (None: data/<input name>). every: take every N-th video frame. max_frames: stop after
    N. device: cpu or cuda (None: cuda when present). flame.model_dir: None = $SA0_FLAME_DIR, else
    the ICT-FaceKit head. track.photo=none: landmarks only. uv_resolution: the photometric stage's
    Gaussian layout (an appearance model that lets pixels correct pose and shape; not the avatar's,
    which refine_batch.py chooses)."""

    video: str | None = None
    images: tuple[str, ...] = ()
    out: str | None = None
    flame: FlameConfig = field(default_factory=FlameConfig)
    every: int = 1
    max_frames: int | None = None
    device: str | None = None
    uv_resolution: int = 64
    track: TrackConfig = field(default_factory=TrackConfig)

    def __post_init__(self):
        if self.every < 1 or (self.max_frames is not None and self.max_frames < 1):
            raise ValueError(f"every and max_frames must be >= 1, got {self.every} and {self.max_frames}")
        if self.track.size < 32:
            raise ValueError(f"track.size must be >= 32, got {self.track.size}")


def photometric_items(visits: int) -> list[str]:
    """--photometric VISITS as config keys: 0 switches the stage off."""
    return ["track.photo=none"] if int(visits) == 0 else [f"track.photo.visits={int(visits)}"]


def prepare_track(job: TrackJob) -> TrackJob:
    if (job.video is None) == (not job.images):
        raise ValueError("give exactly one of --video FILE or --images FILES_OR_FOLDERS")
    if job.video and not Path(job.video).is_file():
        raise ValueError(f"--video {job.video}: no such file")
    return job


def run_track_job(job: TrackJob) -> int:
    """Track the input into shards; print the summary and the next command. -> exit status."""
    import torch

    from sa0.flame import FlameFileError
    from sa0.flame.landmarks import load_mediapipe_embedding, with_irises
    from sa0.head import load_head_model
    from sa0.heads import ICT_NAME, chosen_head
    from sa0.track.frames import TrackError, image_source, video_source
    from sa0.track.mediapipe_env import MediaPipeMissing
    from sa0.track.run import OVERLAY, REPORT, report_summary, track

    cfg = replace(job.track, device=job.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        frames = (video_source(job.video, job.every, job.max_frames) if job.video
                  else image_source(list(job.images)))
        out = Path(job.out or Path("data") / frames.name)
        from sa0.track.mp_detector import MediaPipeDetector

        with chosen_head(job.flame.model_dir, default=ICT_NAME) as (flame_dir, head_name):
            print(f"head: {head_name} ({flame_dir})", flush=True)
            head = load_head_model(replace(job.flame, model_dir=str(flame_dir)),
                                   LayoutConfig(uv_resolution=job.uv_resolution))
            embedding = with_irises(load_mediapipe_embedding(flame_dir, len(head.faces)), head.flame)
            log = str(out.parent / f".{out.name}.mediapipe.log") if out.parent.exists() else None
            with MediaPipeDetector(static=not frames.video, log=log) as detector:
                report = track(frames, detector, head, embedding, out, cfg)
    except (TrackError, FlameFileError, MediaPipeMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report_summary(report))
    print(f"wrote {out}/ (shards + manifest.json, {REPORT}{', ' + OVERLAY if cfg.overlay else ''})")
    print(f"next: python jobs/refine_batch.py --subjects {report['subject']} --shards {out}")
    return 0

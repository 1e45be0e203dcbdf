"""Track a phone video or a few portraits into clips sa0 can refine: FLAME + camera per frame.

    python jobs/track.py --video FILE [--out data/<name>] [--flame-dir DIR] [--size 512] [--every N]
        [--max-frames N] [--subject NAME] [--focal F] [--photometric VISITS] [--no-overlay]
        [--device cpu|cuda]
    python jobs/track.py --images DIR_OR_FILES ... [same options]

Writes OUT/shard-*.tar + manifest.json (one clip, split train: the refiner holds out its last fifth),
OUT/tracking_report.json (per-frame landmark error, frames skipped and why, timings) and
OUT/overlay.mp4 (fitted mesh and landmarks over each crop). Landmarks come from MediaPipe in sa0's
own environment (`python -m sa0.track.mediapipe_env` installs it; the README's install command runs
it). Without --flame-dir or $SA0_FLAME_DIR it fits the ICT-FaceKit head sa0 ships (an open human head
model, MIT; `--flame-dir synthetic` fits sa0's synthetic head). After the landmark fit a
photometric stage (--photometric VISITS: renders per frame, default 80, ~1.3 s per frame on 2 CPU
cores; 0 turns it off) polishes the identity shape and each frame's pose and expression against the
pixels and the matte through sa0's renderer: on sa0's synthetic benchmark it brings refinement from
tracked parameters from ~2.2 dB to ~0.6 dB of refinement from the true ones
(benchmarks/bm_track.py). Then:

    python jobs/refine_batch.py --subjects <name> --shards OUT
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame import FlameFileError
from sa0.flame.landmarks import load_mediapipe_embedding, with_irises
from sa0.head import load_head_model
from sa0.heads import ICT_NAME, chosen_head
from sa0.track.fit import FitConfig
from sa0.track.frames import TrackError, image_source, video_source
from sa0.track.mediapipe_env import MediaPipeMissing
from sa0.track.photometric import PhotoConfig
from sa0.track.run import OVERLAY, REPORT, TrackConfig, report_summary, track


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="a video file (mp4, mov, webm, ...)")
    src.add_argument("--images", nargs="+", help="photo files or folders of photos (one subject)")
    parser.add_argument("--out", default=None, help="shard directory to write (default data/<input name>)")
    parser.add_argument("--flame-dir", default=None, help="head: a FLAME directory, or ict / synthetic (default "
                                                          "$SA0_FLAME_DIR, else ict: ICT-FaceKit, shipped with sa0)")
    parser.add_argument("--size", type=int, default=512, help="crop side in pixels (default 512)")
    parser.add_argument("--every", type=int, default=1, help="take every N-th video frame")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--subject", default=None, help="subject name in the clip (default: the input's name)")
    parser.add_argument("--focal", type=float, default=None, help="known focal length in units of the longer "
                                                                  "image side (default: fitted)")
    parser.add_argument("--photometric", type=int, default=PhotoConfig.visits, metavar="VISITS",
                        help=f"photometric stage: renders per frame (default {PhotoConfig.visits}, about 1.3 s per "
                             "frame on 2 CPU cores; 0: landmarks only)")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    args = parser.parse_args(argv)
    if args.size < 32 or args.every < 1 or args.photometric < 0:
        parser.error("--size must be >= 32, --every >= 1 and --photometric >= 0")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        frames = video_source(args.video, args.every, args.max_frames) if args.video else image_source(args.images)
        out = Path(args.out or Path("data") / frames.name)
        cfg = TrackConfig(size=args.size, subject=args.subject, overlay=not args.no_overlay, device=device,
                          fit=FitConfig(focal=args.focal),
                          photo=PhotoConfig(visits=args.photometric) if args.photometric else None)
        from sa0.track.mp_detector import MediaPipeDetector

        with chosen_head(args.flame_dir, default=ICT_NAME) as (flame_dir, head_name):
            print(f"head: {head_name} ({flame_dir})", flush=True)
            head = load_head_model(FlameConfig(model_dir=str(flame_dir)), LayoutConfig(uv_resolution=64))
            embedding = with_irises(load_mediapipe_embedding(flame_dir, len(head.faces)), head.flame)
            with MediaPipeDetector(static=not frames.video, log=str(out.parent / f".{out.name}.mediapipe.log")
                                   if out.parent.exists() else None) as detector:
                report = track(frames, detector, head, embedding, out, cfg)
    except (TrackError, FlameFileError, MediaPipeMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report_summary(report))
    print(f"wrote {out}/ (shards + manifest.json, {REPORT}{', ' + OVERLAY if cfg.overlay else ''})")
    print(f"next: python jobs/refine_batch.py --subjects {report['subject']} --shards {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

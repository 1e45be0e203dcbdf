"""Track a phone video or a few portraits into clips sa0 can refine: FLAME + camera per frame.

    python jobs/track.py --video FILE [--out data/<name>] [--size 512] [--every N] [--max-frames N]
        [--subject NAME] [--focal F] [--photometric VISITS] [--no-overlay] [--device cpu|cuda]
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

import sys

from sa0.cli import Flag, JobSpec, parse_job
from sa0.track.job import TrackJob, photometric_items, prepare_track, run_track_job

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": TrackJob},
    shared={"out": "out", "head": "flame.model_dir", "video": "video"},
    flags=(
        Flag(("--images",), "images", "photo files or folders of photos (one subject)", nargs="+", path=True,
             metavar="PATH"),
        Flag(("--size",), "track.size", "crop side in pixels"),
        Flag(("--every",), "every", "take every N-th video frame"),
        Flag(("--max-frames",), "max_frames", "stop after this many frames"),
        Flag(("--subject",), "track.subject", "subject name in the clip (default: the input's name)"),
        Flag(("--focal",), "track.fit.focal", "known focal length in units of the longer image side (default: fitted)"),
        Flag(("--photometric",), "track.photo.visits", "photometric stage: renders per frame (about 1.3 s per frame "
             "at 80 on 2 CPU cores; 0: landmarks only)", items=photometric_items, metavar="VISITS"),
        Flag(("--no-overlay",), "track.overlay", "skip overlay.mp4", switch=True, value="false"),
        Flag(("--device",), "device", "cpu or cuda (default: cuda when present)", choices=("cpu", "cuda")),
    ),
    prepare=prepare_track,
)


def main(argv=None) -> int:
    return run_track_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())

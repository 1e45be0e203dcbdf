"""Evaluate a generator checkpoint or refined avatars under one protocol; write tables and grids.

    python jobs/evaluate.py --protocol ff_self --checkpoint runs/demo/generator_phase2 --data SHARDS [...] --out DIR
    python jobs/evaluate.py --protocol subject_mono --avatars out/refine --data SHARDS --out DIR

Protocols: ff_self | ff_cross | subject_mono | multiview_novel (see sa0/eval/protocols.py and the
README's Evaluation section). Options: --num-sources K (1..4), --test-frames N (subject_mono; default
the last 20 %), --held-out-camera C, --max-targets N per clip, --no-lpips, --arcface/--dmm/--landmarks
FILE (TorchScript face models; without them CSIM/AED/APD/AKD are reported unavailable), --flame-dir,
--uv-resolution, --mlflow-uri URI | --no-mlflow, --address RAY.
Writes OUT/results.json (every frame, per clip, overall), OUT/results.md (the paper's table
layout), OUT/best.png and OUT/worst.png (prediction | ground truth) and one MLflow run.
"""

from __future__ import annotations

import argparse
import os
import sys

from sa0.config import FlameConfig, LayoutConfig
from sa0.eval.face_models import FaceModelConfig
from sa0.eval.protocols import PROTOCOLS, EvalConfig
from sa0.eval.run import run_evaluation
from sa0.experiments import Tracker
from sa0.flame.io import FLAME_DIR_ENV
from sa0.heads import SYNTHETIC_NAME, chosen_head
from sa0.model.saved import is_exported, load_generator
from sa0.refine.subjects import recorded_head


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--checkpoint", help="exported generator directory (runs/<run>/generator_phase<p>)")
    what.add_argument("--avatars", help="refine_batch output directory (<subject>/avatar.npz)")
    parser.add_argument("--data", nargs="+", required=True, help="shard directories")
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-sources", type=int, default=1)
    parser.add_argument("--test-frames", type=int, default=None)
    parser.add_argument("--held-out-camera", type=int, default=-1)
    parser.add_argument("--max-targets", type=int, default=32)
    parser.add_argument("--targets-from", type=int, default=0, help="ff_*: first target timestep (same targets for every K)")
    parser.add_argument("--no-lpips", action="store_true")
    parser.add_argument("--arcface", default=None)
    parser.add_argument("--dmm", default=None)
    parser.add_argument("--landmarks", default=None)
    parser.add_argument("--flame-dir", default=None, help=f"head: a FLAME directory, or ict / synthetic (default: the "
                        f"head the data was made with, else ${FLAME_DIR_ENV}, else the synthetic head)")
    parser.add_argument("--uv-resolution", type=int, default=None, help="default: the checkpoint's, else 128")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--address", default=None)
    args = parser.parse_args(argv)
    try:
        cfg = EvalConfig(protocol=args.protocol, num_sources=args.num_sources, test_frames=args.test_frames,
                         held_out_camera=args.held_out_camera, max_targets=args.max_targets,
                         targets_from=args.targets_from, lpips=not args.no_lpips,
                         faces=FaceModelConfig(arcface=args.arcface, dmm=args.dmm, landmarks=args.landmarks))
    except ValueError as exc:
        parser.error(str(exc))
    resolution = args.uv_resolution
    if args.checkpoint:
        if not is_exported(args.checkpoint):
            parser.error(f"--checkpoint: {args.checkpoint} is not a complete exported generator")
        resolution = resolution or load_generator(args.checkpoint)[1]["layout"]["uv_resolution"]
    import ray

    ray.init(address=args.address)
    tracker = Tracker("sa0-eval", args.mlflow_uri, enabled=not args.no_mlflow)
    try:
        with chosen_head(args.flame_dir, recorded_head(None, args.data), SYNTHETIC_NAME) as (flame_dir, _):
            summary = run_evaluation(cfg, args.data, args.out, FlameConfig(model_dir=flame_dir),
                                     LayoutConfig(uv_resolution=resolution or 128),
                                     checkpoint=os.path.abspath(args.checkpoint) if args.checkpoint else None,
                                     avatars=os.path.abspath(args.avatars) if args.avatars else None, tracker=tracker)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    print(open(os.path.join(args.out, "results.md")).read())
    for clip, reason in summary["skipped_clips"].items():
        print(f"skipped {clip}: {reason}")
    print(f"{summary['frames']} frames; results in {args.out}/results.json")
    return 0 if summary["frames"] else 1


if __name__ == "__main__":
    sys.exit(main())

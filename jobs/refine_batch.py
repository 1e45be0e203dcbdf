"""Refine many subjects, one Ray task each.

    python jobs/refine_batch.py --subjects list.txt --shards DIR [DIR ...] --out DIR
        [--flame-dir DIR] [--uv-resolution 128] [--steps 10000] [--max-in-flight N]
        [--mlflow-uri URI | --no-mlflow] [--address RAY_ADDRESS] [--generator RUNS/<run>/generator_phase2] [--set KEY=VALUE ...]

list.txt holds one subject id per line (as in the shards' manifests; '#' starts a comment).
Writes OUT/<subject>/{avatar.npz, avatar.ply, metrics.json, preview.mp4}; subjects whose output is
complete are skipped, so a rerun does no work. Prints a table; exits 1 if any subject failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from sa0.config import FlameConfig, LayoutConfig, apply_overrides
from sa0.flame.io import FLAME_DIR_ENV
from sa0.flame.synthetic import write_synthetic_flame
from sa0.refine.fanout import refine_batch
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import format_table
from sa0.tracking import Tracker
from sa0.train.checkpoint import is_exported


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", required=True, help="text file with one subject id per line")
    parser.add_argument("--shards", nargs="+", required=True, help="shard directories (make_shards.py output)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--flame-dir", default=None, help=f"FLAME directory (default ${FLAME_DIR_ENV} or a synthetic head)")
    parser.add_argument("--uv-resolution", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: MLflow's own default)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    parser.add_argument("--generator", default=None,
                        help="exported generator (runs/<run>/generator_phase2) to start each avatar from; "
                        "default: flat discs coloured from the reference frame")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a RefineConfig field, e.g. --set aspect_weight=0.5 (repeatable)")
    args = parser.parse_args(argv)
    if args.generator and not is_exported(args.generator):
        parser.error(f"--generator: {args.generator} is not a complete exported generator "
                     "(expected runs/<run-name>/generator_phase<p>/ from jobs/train_generator.py)")
    path = Path(args.subjects)
    if not path.is_file():
        parser.error(f"--subjects: {path} does not exist")
    subjects = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    subjects = [s for s in subjects if s]
    if not subjects:
        parser.error(f"--subjects: {path} lists no subjects")
    try:
        refine_cfg = apply_overrides(RefineConfig(steps=args.steps), args.set)
    except ValueError as exc:
        parser.error(str(exc))
    import ray

    ray.init(address=args.address)
    tracker = Tracker("sa0-refine", args.mlflow_uri, enabled=not args.no_mlflow)
    with tempfile.TemporaryDirectory() as tmp:
        flame_dir = args.flame_dir or os.environ.get(FLAME_DIR_ENV) or str(write_synthetic_flame(tmp, seed=0))
        tracker.start("refine_batch", {"subjects": len(subjects), "steps": args.steps, "out": args.out})
        rows = refine_batch(subjects, args.shards, args.out, FlameConfig(model_dir=flame_dir),
                            LayoutConfig(uv_resolution=args.uv_resolution), refine_cfg,
                            max_in_flight=args.max_in_flight, tracker=tracker,
                            generator_dir=os.path.abspath(args.generator) if args.generator else None)
        tracker.end({"failed": sum(r["status"] == "failed" for r in rows)})
    ray.shutdown()
    print(format_table(rows))
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

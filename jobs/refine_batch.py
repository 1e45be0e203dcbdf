"""Refine many subjects as Ray tasks, several subjects batched in a task on GPUs.

    python jobs/refine_batch.py --subjects list.txt|ID[,ID...] [--shards DIR [DIR ...]] [--out out/refine]
        [--flame-dir DIR] [--uv-resolution 128] [--steps 10000] [--subjects-per-task N]
        [--cpus-per-subject N] [--max-in-flight N] [--mlflow-uri URI | --no-mlflow]
        [--address RAY_ADDRESS] [--generator RUNS/<run>/generator_phase2] [--web] [--set KEY=VALUE ...]

list.txt holds one subject id per line (as in the shards' manifests; '#' starts a comment); without such
a file, --subjects takes the ids themselves: --subjects me, or --subjects alice,bob.
--shards defaults to every shard directory under ./data (each holds a manifest.json).
Writes OUT/<subject>/{avatar.npz, avatar.ply, metrics.json, preview.mp4}; subjects whose output is
complete are skipped, so a rerun does no work, and an interrupted subject resumes from its last
checkpoint (OUT/.checkpoints). Shows steps done over all subjects with an ETA; each subject's MLflow
run gets live curves. --web also writes OUT/<subject>/web/, a browser viewer of the avatar playing
its own motion (jobs/export_web.py; added to complete subjects too), logged to MLflow as the
artifact folder web/. Prints a table; exits 1 if any subject failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from sa0.config import FlameConfig, LayoutConfig, apply_overrides
from sa0.console import quiet_ray_init
from sa0.experiments import Tracker
from sa0.flame import FlameFileError
from sa0.flame.io import FLAME_DIR_ENV
from sa0.heads import SYNTHETIC_NAME, chosen_head
from sa0.model.saved import is_exported
from sa0.refine.fanout import GPU_SUBJECTS_PER_TASK, refine_batch
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import BadInput, format_table, parse_subjects, recorded_head, resolve_shard_dirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", required=True, help="text file with one subject id per line, or the ids "
                                                          "themselves, comma-separated")
    parser.add_argument("--shards", nargs="+", default=None,
                        help="shard directories (make_shards.py output; default: every one under ./data)")
    parser.add_argument("--out", default="out/refine", help="output directory (default out/refine)")
    parser.add_argument("--flame-dir", default=None, help=f"head: a FLAME directory, or ict / synthetic (default: the "
                        f"head the subjects were tracked with, else ${FLAME_DIR_ENV}, else the synthetic head)")
    parser.add_argument("--uv-resolution", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--subjects-per-task", type=int, default=None,
                        help=f"subjects refined together in one task (default: up to {GPU_SUBJECTS_PER_TASK} per GPU, "
                        "1 on CPUs)")
    parser.add_argument("--cpus-per-subject", type=int, default=None,
                        help="CPUs (and torch threads) per subject on CPU clusters (default: fill the machine)")
    parser.add_argument("--max-in-flight", type=int, default=None, help="tasks at a time (default: as many as fit)")
    parser.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: MLflow's own default)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--web", action="store_true", help="also write each subject's browser viewer (OUT/<subject>/web)")
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
    for name in ("subjects_per_task", "cpus_per_subject", "max_in_flight"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    defaulted = args.shards is None
    try:
        args.shards = resolve_shard_dirs(args.shards)
    except BadInput as exc:
        parser.error(str(exc))
    if defaulted:
        print(f"shards: {' '.join(args.shards)}", flush=True)
    try:
        subjects = parse_subjects(args.subjects)
    except BadInput as exc:
        parser.error(str(exc))
    try:
        refine_cfg = apply_overrides(RefineConfig(steps=args.steps), args.set)
        recorded = recorded_head(subjects, args.shards)
    except (ValueError, BadInput) as exc:
        parser.error(str(exc))
    with contextlib.ExitStack() as stack:
        try:  # a head that contradicts the subjects' own is refused before Ray starts
            flame_dir, head = stack.enter_context(chosen_head(args.flame_dir, recorded, default=SYNTHETIC_NAME))
        except FlameFileError as exc:
            parser.error(str(exc))
        print(f"head: {head} ({flame_dir})", flush=True)
        import ray

        quiet_ray_init(args.address, worker_output=True)  # task warnings show; Ray's and MLflow's INFO lines do not
        tracker = Tracker("sa0-refine", args.mlflow_uri, enabled=not args.no_mlflow)
        tracker.start("refine_batch", {"subjects": len(subjects), "steps": args.steps, "out": args.out})
        rows = refine_batch(subjects, args.shards, args.out, FlameConfig(model_dir=flame_dir),
                            LayoutConfig(uv_resolution=args.uv_resolution), refine_cfg,
                            max_in_flight=args.max_in_flight, tracker=tracker,
                            generator_dir=os.path.abspath(args.generator) if args.generator else None,
                            subjects_per_task=args.subjects_per_task, cpus_per_subject=args.cpus_per_subject,
                            web=args.web)
        tracker.end({"failed": sum(r["status"] == "failed" for r in rows)})
        ray.shutdown()
    print(format_table(rows))
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the feed-forward generator: phase 1 (monocular) then phase 2 (multi-view), on Ray Train + DeepSpeed.

    python jobs/train_generator.py                       # the demo: synthetic head and data, a few minutes on 2 cores
    python jobs/train_generator.py --recipe base --flame-dir DIR --phase1-shards D1 --phase2-shards D2 \\
        --set model.encoder_weights=dinov3_vitb16.pth
    ray job submit --working-dir . -- python jobs/train_generator.py --storage /shared/runs \\
        --mlflow-uri sqlite:////shared/mlflow.db

Options: --recipe demo|base|cluster; --run-name NAME (the same name resumes, a new one starts
fresh); --storage DIR (runs/<run-name>/ holds checkpoints, exports, job.json); --mlflow-uri URI
(default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current directory) or --no-mlflow; --address (Ray cluster;
default $RAY_ADDRESS or a local Ray); --cache-dir (demo head and shards); --set KEY=VALUE overrides
any config field by its dotted path (e.g. --set phase1.steps=100 --set train.num_workers=4);
--print-config prints the resolved configuration and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from sa0.console import quiet_ray_init
from sa0.config import apply_overrides
from sa0.train.demo import ensure_demo_inputs
from sa0.train.job import train_generator
from sa0.train.recipes import RECIPES, check_resources, local_resources, recipe, validate_job


def _overrides(args) -> list[str]:
    items = []
    if args.run_name:
        items.append(f"train.run_name={args.run_name}")
    if args.storage:
        items.append(f"train.storage_path={os.path.abspath(args.storage)}")
    if args.no_mlflow:
        items.append("train.mlflow_uri=off")
    elif args.mlflow_uri:
        items.append(f"train.mlflow_uri={args.mlflow_uri}")
    if args.flame_dir:
        items.append(f"flame.model_dir={os.path.abspath(args.flame_dir)}")
    for phase, dirs in ((1, args.phase1_shards), (2, args.phase2_shards)):
        if dirs:
            items.append(f"phase{phase}.data.shard_dirs={','.join(os.path.abspath(d) for d in dirs)}")
    return items + args.set


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="demo", choices=RECIPES)
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--storage", default=None, help="directory for runs/<run-name>/ (default ./runs)")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS or a local Ray)")
    parser.add_argument("--flame-dir", default=None)
    parser.add_argument("--phase1-shards", nargs="+", default=None, help="monocular shard directories")
    parser.add_argument("--phase2-shards", nargs="+", default=None, help="multi-view shard directories")
    parser.add_argument("--cache-dir", default=os.path.join(Path.home(), ".cache", "sa0"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--print-config", action="store_true")
    args = parser.parse_args(argv)
    try:
        job = apply_overrides(recipe(args.recipe), _overrides(args))
        if job.train.mlflow_uri is None:
            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{os.path.abspath('mlflow.db')}"
            job = apply_overrides(job, [f"train.mlflow_uri={uri}"])
        job = apply_overrides(job, [f"train.storage_path={os.path.abspath(job.train.storage_path)}"])
        validate_job(job)
        address = args.address or os.environ.get("RAY_ADDRESS")
        if not address:
            check_resources(job.train, *local_resources(), "this machine")
    except ValueError as exc:
        parser.error(str(exc))
    if args.print_config:
        print(json.dumps(asdict(job), indent=1, default=str))
        return 0
    if args.recipe == "demo":
        job = ensure_demo_inputs(job, Path(args.cache_dir))
    for number, phase in job.phases():
        if not phase.data.shard_dirs:
            parser.error(f"phase {number} has no data: pass --phase{number}-shards DIR (make_shards.py output)")
    import ray

    quiet_ray_init(address)  # worker output to Ray's log files; progress and warnings come via sa0.console
    try:
        result = train_generator(job)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    print(f"\ndone: generator {result.generator}\n      run directory {result.run_dir}")
    if result.mlflow_run_id:
        print(f"      MLflow run {result.mlflow_run_id}: mlflow ui --backend-store-uri {job.train.mlflow_uri}")
    if result.skipped_samples:
        print(f"      {result.skipped_samples} undecodable samples were skipped (see the worker logs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

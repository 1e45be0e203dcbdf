"""Train the feed-forward generator: phase 1 (monocular) then phase 2 (multi-view), on Ray Train + DeepSpeed.

    python jobs/train_generator.py                       # the demo: synthetic head and data, a few minutes on 2 cores
    python jobs/train_generator.py --recipe base --flame-dir DIR --phase1-shards D1 --phase2-shards D2 \\
        --set model.encoder_weights=dinov3_vitb16.pth
    ray job submit --working-dir . -- python jobs/train_generator.py --storage /shared/runs \\
        --mlflow-uri sqlite:////shared/mlflow.db

Recipes: demo (tiny model, synthetic head and shards built in --cache-dir), proof (the CPU proof that
training works: a small CNN encoder trained from scratch, 40 synthetic identities, ~24 minutes on 2
cores; benchmarks/bm_generator.py evaluates it), base (the paper's, one machine), cluster (base on 4
GPU workers). --run-name: the same name resumes, a new one starts fresh;
runs/<run-name>/ holds checkpoints, exports and job.json. --set KEY=VALUE overrides any config key
(e.g. --set phase1.steps=100 --set train.num_workers=4; a phase's data stream follows its steps).
"""

import sys

from sa0.cli import Flag, JobSpec, Use, parse_job
from sa0.train.job import prepare_job, run_train_job
from sa0.train.recipes import RECIPES, recipe

SPEC = JobSpec(
    doc=__doc__,
    recipes={name: (lambda name=name: recipe(name)) for name in RECIPES},
    shared={"out": Use("train.storage_path", ("--storage",)), "head": "flame.model_dir", "address": "train.address",
            "mlflow": "train.mlflow_uri"},
    flags=(
        Flag(("--run-name",), "train.run_name", "the same name resumes, a new one starts fresh"),
        Flag(("--phase1-shards",), "phase1.data.shard_dirs", "monocular shard directories", nargs="+", path=True,
             metavar="DIR"),
        Flag(("--phase2-shards",), "phase2.data.shard_dirs", "multi-view shard directories", nargs="+", path=True,
             metavar="DIR"),
        Flag(("--cache-dir",), "train.cache_dir", "where the demo builds its head and shards", path=True),
    ),
    prepare=prepare_job,
)


def main(argv=None) -> int:
    return run_train_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())

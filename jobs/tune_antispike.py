"""Sweep the anti-spike weights with Ray Tune on a few validation subjects.

    python jobs/tune_antispike.py --subjects val.txt|ID[,ID...] --shards DIR [DIR ...] --storage DIR
        [--name antispike] [--samples 8] [--steps 2000] [--max-ar 10] [--mlflow-uri URI]
        [--flame-dir DIR] [--uv-resolution 128] [--address RAY_ADDRESS]

Running it again with the same --storage and --name resumes an interrupted sweep. Prints the best
trial and the overrides to pass to jobs/refine_batch.py.
"""

from __future__ import annotations

import argparse
import sys

from sa0.config import FlameConfig, LayoutConfig
from sa0.heads import SYNTHETIC_NAME, chosen_head
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import BadInput, parse_subjects, recorded_head
from sa0.refine.tune import overrides, tune_antispike


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", required=True, help="text file with one subject id per line, or the ids "
                                                          "themselves, comma-separated")
    parser.add_argument("--shards", nargs="+", required=True)
    parser.add_argument("--storage", required=True, help="directory that holds the Tune experiment")
    parser.add_argument("--name", default="antispike")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--max-ar", type=float, default=10.0, help="maxAR bound (penalised above)")
    parser.add_argument("--mlflow-uri", default=None)
    parser.add_argument("--flame-dir", default=None, help="head: a FLAME directory, or ict / synthetic (default: the "
                        "head the subjects were made with, else $SA0_FLAME_DIR, else the synthetic head)")
    parser.add_argument("--uv-resolution", type=int, default=128)
    parser.add_argument("--address", default=None)
    args = parser.parse_args(argv)
    try:
        subjects = parse_subjects(args.subjects)
    except BadInput as exc:
        parser.error(str(exc))
    import ray

    ray.init(address=args.address)
    base = RefineConfig(steps=args.steps, log_every=max(1, args.steps // 10))
    with chosen_head(args.flame_dir, recorded_head(subjects, args.shards), SYNTHETIC_NAME) as (flame_dir, _):
        config, metrics, _ = tune_antispike(subjects, args.shards, FlameConfig(model_dir=flame_dir),
                                            LayoutConfig(uv_resolution=args.uv_resolution), base, args.storage,
                                            args.name, args.samples, args.max_ar, mlflow_uri=args.mlflow_uri)
    ray.shutdown()
    print(f"best trial: score {metrics['score']:.3f}, PSNR {metrics.get('psnr', float('nan')):.2f}, "
          f"maxAR {metrics['max_ar']:.2f}")
    print(f"overrides for refine_batch.py: {overrides(base, config)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sweep the anti-spike weights with Ray Tune on a few validation subjects.

    python jobs/tune_antispike.py --subjects val.txt|ID[,ID...] [--shards DIR ...] [--storage runs/tune]
        [--name antispike] [--samples 8] [--steps 2000] [--max-ar 10]

Running it again with the same --storage and --name resumes an interrupted sweep. Prints the best
trial and the overrides to pass to jobs/refine_batch.py. Subjects, head and UV layout are checked as
refine_batch.py checks them, before Ray starts.
"""

import sys

from sa0.cli import Flag, JobSpec, Use, parse_job
from sa0.refine.job import TuneJob, run_tune_job

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": TuneJob},
    shared={"subjects": "subjects", "shards": "shards", "out": Use("storage", ("--storage",)),
            "head": "flame.model_dir", "address": "address", "mlflow": "mlflow_uri", "steps": "refine.steps",
            "uv_resolution": Use("uv_resolution", help="UV grid side (default 128)")},
    flags=(
        Flag(("--name",), "name", "experiment name (the same storage and name resume)"),
        Flag(("--samples",), "samples", "trials"),
        Flag(("--max-ar",), "max_ar", "maxAR bound (penalised above)"),
    ),
    required=("subjects",),
)


def main(argv=None) -> int:
    return run_tune_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())

"""Refine many subjects as Ray tasks, several subjects batched in a task on GPUs.

    python jobs/refine_batch.py --subjects list.txt|ID[,ID...] [--shards DIR ...] [--out out/refine]
        [--steps 10000] [--generator RUNS/<run>/generator_phase2] [--web] [--set refine.KEY=VALUE ...]

list.txt holds one subject id per line (as in the shards' manifests; '#' starts a comment); without such
a file, --subjects takes the ids themselves: --subjects me, or --subjects alice,bob.
--shards defaults to every shard directory under ./data (each holds a manifest.json). The head is the
one the subjects were tracked with; the UV resolution the generator's, else 128. Every subject is
looked up in the manifests, and the head and generator checked, before Ray starts.
Writes OUT/<subject>/{avatar.npz, avatar.ply, metrics.json, preview.mp4}; subjects whose output is
complete are skipped, so a rerun does no work, and an interrupted subject resumes from its last
checkpoint (OUT/.checkpoints). Shows steps done over all subjects with an ETA; each subject's MLflow
run gets live curves. --web also writes OUT/<subject>/web/, a browser viewer of the avatar playing
its own motion (jobs/export_web.py; added to complete subjects too), logged to MLflow as the
artifact folder web/. --export glb,spz also writes OUT/<subject>/avatar.glb and avatar.spz (the
reference frame; jobs/export.py), logged to MLflow too. Prints a table; exits 1 if any subject failed, 2 on bad input.
"""

import sys

from sa0.cli import Flag, JobSpec, Use, parse_job
from sa0.refine.job import RefineJob, run_refine_job

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": RefineJob},
    shared={"subjects": "subjects", "shards": "shards", "out": "out", "head": "flame.model_dir",
            "address": "address", "mlflow": "mlflow_uri", "steps": "refine.steps",
            "uv_resolution": Use("uv_resolution", help="UV grid side (default: the generator's, else 128)")},
    flags=(
        Flag(("--generator",), "generator", "exported generator (runs/<run>/generator_phase2) to start from",
             path=True),
        Flag(("--web",), "web", "also write each subject's browser viewer (OUT/<subject>/web)", switch=True),
        Flag(("--export",), "export", "formats of the reference frame beside each avatar, e.g. glb,spz",
             metavar="FORMATS"),
        Flag(("--subjects-per-task",), "subjects_per_task", "subjects refined together in one task"),
        Flag(("--cpus-per-subject",), "cpus_per_subject", "CPUs (and torch threads) per subject"),
        Flag(("--max-in-flight",), "max_in_flight", "tasks at a time (default: as many as fit)"),
    ),
    required=("subjects",),
)


def main(argv=None) -> int:
    return run_refine_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())

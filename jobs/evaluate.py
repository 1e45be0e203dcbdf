"""Evaluate a generator checkpoint or refined avatars under one protocol; write tables and grids.

    python jobs/evaluate.py --protocol ff_self --checkpoint runs/demo/generator_phase2 --data SHARDS [...] --out DIR
    python jobs/evaluate.py --protocol subject_mono --avatars out/refine --data SHARDS --out DIR

Protocols: ff_self | ff_cross | subject_mono | multiview_novel (see sa0/eval/protocols.py and the
README's Evaluation section). Face models (--arcface/--dmm/--landmarks: TorchScript files) are
optional; without them CSIM/AED/APD/AKD are reported unavailable. The UV resolution and head are
the checkpoint's or the avatars' own. Writes OUT/results.json (every frame, per clip, overall),
OUT/results.md (the paper's table layout), OUT/best.png and OUT/worst.png (prediction | ground
truth) and one MLflow run.
"""

import sys

from sa0.cli import Flag, JobSpec, Use, parse_job
from sa0.eval.job import EvalJob, prepare_eval, run_eval_job
from sa0.eval.protocols import PROTOCOLS

SPEC = JobSpec(
    doc=__doc__,
    recipes={"default": EvalJob},
    shared={"shards": Use("data", ("--data",)), "out": "out", "head": "flame.model_dir", "address": "address",
            "mlflow": "mlflow_uri", "uv_resolution": "uv_resolution"},
    flags=(
        Flag(("--protocol",), "eval.protocol", "what is evaluated and how", choices=PROTOCOLS),
        Flag(("--checkpoint",), "checkpoint", "exported generator directory (runs/<run>/generator_phase<p>)",
             path=True),
        Flag(("--avatars",), "avatars", "refine_batch.py output directory (<subject>/avatar.npz), or one avatar.npz "
             "scored as every clip's prediction (a baseline, e.g. bm_generator's mean avatar)", path=True),
        Flag(("--num-sources",), "eval.num_sources", "source frames K (1..4)"),
        Flag(("--test-frames",), "eval.test_frames", "subject_mono: held-out frames (default the last 20 %)"),
        Flag(("--held-out-camera",), "eval.held_out_camera", "multiview_novel: the camera held out"),
        Flag(("--max-targets",), "eval.max_targets", "target frames per clip"),
        Flag(("--targets-from",), "eval.targets_from", "ff_*: first target timestep (same targets for every K)"),
        Flag(("--sources",), "eval.sources", "ff_*: the first K timesteps, or K spread over the clip (as training "
             "draws them)", choices=("first", "spread")),
        Flag(("--no-lpips",), "eval.lpips", "skip LPIPS", switch=True, value="false"),
        Flag(("--arcface",), "eval.faces.arcface", "ArcFace TorchScript file (CSIM)", path=True),
        Flag(("--dmm",), "eval.faces.dmm", "3DMM regressor TorchScript file (AED/APD)", path=True),
        Flag(("--landmarks",), "eval.faces.landmarks", "landmark TorchScript file (AKD)", path=True),
    ),
    prepare=prepare_eval,
)


def main(argv=None) -> int:
    return run_eval_job(parse_job(SPEC, argv))


if __name__ == "__main__":
    sys.exit(main())

"""The evaluation job's config, its checks before Ray, and the run (jobs/evaluate.py).

What is evaluated owns its facts: an exported generator says its UV resolution (meta.json), refined
avatars say theirs and their head (avatar.npz); the data says the head it was made with. A given
--uv-resolution or --flame-dir that contradicts them is refused before Ray starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sa0.config import FlameConfig, LayoutConfig
from sa0.eval.protocols import EvalConfig


@dataclass(frozen=True, kw_only=True)
class EvalJob:
    """jobs/evaluate.py. checkpoint: an exported generator; avatars: refine_batch.py's output folder
    (exactly one of them). data: shard directories. uv_resolution: None = the checkpoint's or the
    avatars' own. mlflow_uri: None = MLflow's default, "off" = none."""

    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: str | None = None
    avatars: str | None = None
    data: tuple[str, ...] = ()
    out: str = "out/eval"
    flame: FlameConfig = field(default_factory=FlameConfig)
    uv_resolution: int | None = None
    address: str | None = None
    mlflow_uri: str | None = None


def _avatar_facts(avatars: str) -> tuple[int, str | None]:
    """(UV resolution, head) of `avatars` (one avatar.npz) or of the first avatar package under it."""
    from sa0.export.package import load_package

    found = [Path(avatars)] if Path(avatars).is_file() else sorted(Path(avatars).glob("*/avatar.npz"))
    if not found:
        raise ValueError(f"--avatars {avatars}: no <subject>/avatar.npz inside (refine_batch.py output expected, "
                         "or one avatar.npz for every clip)")
    package = load_package(found[0])
    return package.uv_resolution, package.meta.get("head")


def prepare_eval(job: EvalJob) -> EvalJob:
    """Checks before Ray: one of checkpoint / avatars, complete and fitting the protocol; data given;
    the UV resolution taken from what is evaluated (a contradicting one refused)."""
    from sa0.model.saved import is_exported, load_generator

    if (job.checkpoint is None) == (job.avatars is None):
        raise ValueError("give exactly one of --checkpoint (an exported generator) or --avatars (refine_batch output)")
    if not job.data:
        raise ValueError("--data is required (shard directories to evaluate on)")
    if job.checkpoint:
        if not is_exported(job.checkpoint):
            raise ValueError(f"--checkpoint {job.checkpoint}: not a complete exported generator")
        own = int(load_generator(job.checkpoint)[1]["layout"]["uv_resolution"])
    else:
        if job.eval.protocol in ("ff_self", "ff_cross") and not Path(job.avatars).is_file():
            raise ValueError(f"--protocol {job.eval.protocol} evaluates the feed-forward generator: pass --checkpoint "
                             "(or one avatar.npz as a baseline for every clip)")
        own = _avatar_facts(job.avatars)[0]
    if job.uv_resolution not in (None, own):
        raise ValueError(f"uv_resolution={job.uv_resolution} contradicts {job.checkpoint or job.avatars}, made at {own}")
    return dataclasses.replace(job, uv_resolution=own)


def run_eval_job(job: EvalJob) -> int:
    """prepare_eval, then the protocol on Ray; print the table. -> exit status."""
    import ray

    from sa0.console import quiet_ray_init
    from sa0.eval.run import run_evaluation
    from sa0.experiments import OFF, Tracker, tracking_uri
    from sa0.heads import SYNTHETIC_NAME, chosen_head
    from sa0.refine.subjects import recorded_head

    with contextlib.ExitStack() as stack:
        try:
            job = prepare_eval(job)
            recorded = _avatar_facts(job.avatars)[1] if job.avatars else recorded_head(None, list(job.data))
            flame_dir, _ = stack.enter_context(chosen_head(job.flame.model_dir, recorded, SYNTHETIC_NAME))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        quiet_ray_init(job.address, worker_output=True)  # task warnings show; Ray's INFO lines do not
        try:
            summary = run_evaluation(job.eval, list(job.data), job.out,
                                     dataclasses.replace(job.flame, model_dir=str(flame_dir)),
                                     LayoutConfig(uv_resolution=job.uv_resolution),
                                     checkpoint=os.path.abspath(job.checkpoint) if job.checkpoint else None,
                                     avatars=os.path.abspath(job.avatars) if job.avatars else None,
                                     tracker=Tracker("sa0-eval", tracking_uri(job.mlflow_uri),
                                                     enabled=job.mlflow_uri != OFF))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            ray.shutdown()
    print((Path(job.out) / "results.md").read_text())
    for clip, reason in summary["skipped_clips"].items():
        print(f"skipped {clip}: {reason}")
    print(f"{summary['frames']} frames; results in {job.out}/results.json")
    return 0 if summary["frames"] else 1

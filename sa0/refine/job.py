"""The refinement jobs' configs and the checks they make before any Ray work.

`RefineJob` is what `jobs/refine_batch.py` runs (a frozen config; every flag sets one of its keys),
`TuneJob` what `jobs/tune_antispike.py` runs. `plan_refinement` turns either into a `RefinePlan`: shard
directories found, subjects read and each found in the manifests, the head chosen against the one
the subjects were tracked with, the UV resolution taken from the generator when there is one and
refused when it contradicts it. Everything that can be wrong with the input is reported here, in
the job's words (flag or dotted key), before Ray starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass, field

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.reader import clip_records
from sa0.data.shards import ShardError
from sa0.heads import SYNTHETIC_NAME, chosen_head
from sa0.model.saved import is_exported, load_generator
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import BadInput, parse_subjects, recorded_head, resolve_shard_dirs, subject_of

# The UV grid a refinement uses when no generator fixes it: 128^2 texels (~14K Gaussians on FLAME,
# ~9K on ICT) fits a phone video's detail on CPUs; the paper's 256 is `--uv-resolution 256`.
REFINE_UV_RESOLUTION = 128


@dataclass(frozen=True, kw_only=True)
class RefineJob:
    """jobs/refine_batch.py. subjects: a list file or comma-separated ids. shards: () = every shard
    directory under ./data. uv_resolution: None = the generator's, else REFINE_UV_RESOLUTION.
    generator: an exported generator to start each avatar from (None: flat discs coloured from the
    reference frame). subjects_per_task / cpus_per_subject / max_in_flight: None = fill the
    machine. web: also write each subject's browser viewer. export: formats of the reference frame
    written beside each avatar (glb, spz, ply) and logged to MLflow. mlflow_uri: None = MLflow's default,
    "off" = no tracking. address: None = $RAY_ADDRESS, else a local Ray."""

    subjects: str = ""
    shards: tuple[str, ...] = ()
    out: str = "out/refine"
    flame: FlameConfig = field(default_factory=FlameConfig)
    uv_resolution: int | None = None
    generator: str | None = None
    subjects_per_task: int | None = None
    cpus_per_subject: int | None = None
    max_in_flight: int | None = None
    web: bool = False
    export: tuple[str, ...] = ()
    address: str | None = None
    mlflow_uri: str | None = None
    refine: RefineConfig = field(default_factory=RefineConfig)

    def __post_init__(self):
        from sa0.export.splats import FORMATS

        unknown = [f for f in self.export if f not in FORMATS]
        if unknown:
            raise ValueError(f"export: {', '.join(unknown)} is not a format; choose from {', '.join(FORMATS)}")
        for name in ("subjects_per_task", "cpus_per_subject", "max_in_flight", "uv_resolution"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True, kw_only=True)
class TuneJob:
    """jobs/tune_antispike.py: a Ray Tune sweep of the anti-spike weights on a few subjects.
    storage / name: where the Tune experiment lives (the same pair resumes). samples: trials.
    max_ar: the maxAR bound trials are penalised above. refine: each trial's base settings (a trial
    reports ten times, whatever refine.log_every says)."""

    subjects: str = ""
    shards: tuple[str, ...] = ()
    storage: str = "runs/tune"
    name: str = "antispike"
    samples: int = 8
    max_ar: float = 10.0
    flame: FlameConfig = field(default_factory=FlameConfig)
    uv_resolution: int | None = None
    address: str | None = None
    mlflow_uri: str | None = None
    refine: RefineConfig = field(default_factory=lambda: RefineConfig(steps=2000))

    def __post_init__(self):
        if self.samples < 1 or self.max_ar <= 1:
            raise ValueError(f"samples must be >= 1 and max_ar > 1, got {self.samples} and {self.max_ar}")


@dataclass(frozen=True)
class RefinePlan:
    """A refinement's checked inputs: subjects (each in the manifests), shard directories, head and
    layout, and the generator to start from (None: flat discs)."""

    subjects: list[str]
    shard_dirs: list[str]
    flame: FlameConfig
    layout: LayoutConfig
    head: str
    generator: str | None


def missing_subjects(subjects: list[str], shard_dirs: list[str]) -> list[str]:
    """The subjects no clip in the manifests belongs to."""
    try:
        records = clip_records(shard_dirs)
    except ShardError as exc:
        raise BadInput(str(exc)) from exc
    present = {record["key"].split("__")[1] for _, record in records}
    return [s for s in subjects if subject_of(s) not in present]


def generator_resolution(generator: str | None, given: int | None) -> int:
    """The UV resolution a refinement uses: a generator's own (refusing a contradicting `given`),
    else `given`, else REFINE_UV_RESOLUTION."""
    if generator is None:
        return given or REFINE_UV_RESOLUTION
    if not is_exported(generator):
        raise BadInput(f"--generator {generator}: not a complete exported generator (expected "
                       "runs/<run-name>/generator_phase<p>/ from jobs/train_generator.py)")
    trained = int(load_generator(generator)[1]["layout"]["uv_resolution"])
    if given not in (None, trained):
        raise BadInput(f"uv_resolution={given} contradicts the generator's: {generator} was trained at UV resolution "
                       f"{trained} (leave --uv-resolution out to use it)")
    return trained


@contextlib.contextmanager
def plan_refinement(subjects: str, shards: tuple[str, ...], flame: FlameConfig, uv_resolution: int | None,
                    generator: str | None = None):
    """Context -> RefinePlan (the head directory lives while the context does). BadInput names the
    flag or key; raised before any Ray work."""
    if not subjects:
        raise BadInput("--subjects is required (a list file or ids separated by commas)")
    shard_dirs = resolve_shard_dirs(list(shards) or None)
    names = parse_subjects(subjects)
    missing = missing_subjects(names, shard_dirs)
    if missing:
        raise BadInput(f"--subjects: {', '.join(map(repr, missing))} not found in the manifests of "
                       f"{', '.join(shard_dirs)} (subject ids are listed in each manifest.json)")
    generator = os.path.abspath(generator) if generator else None
    resolution = generator_resolution(generator, uv_resolution)
    with chosen_head(flame.model_dir, recorded_head(names, shard_dirs), default=SYNTHETIC_NAME) as (head_dir, head):
        yield RefinePlan(names, shard_dirs, dataclasses.replace(flame, model_dir=str(head_dir)),
                         LayoutConfig(uv_resolution=resolution), head, generator)


def run_refine_job(job: RefineJob) -> int:
    """Check everything (plan_refinement), then refine on Ray; print the table. -> exit status: 0,
    1 when a subject failed, 2 for bad input (nothing started)."""
    from sa0.console import quiet_ray_init
    from sa0.experiments import OFF, Tracker, tracking_uri
    from sa0.refine.fanout import refine_batch
    from sa0.refine.subjects import format_table

    try:
        with plan_refinement(job.subjects, job.shards, job.flame, job.uv_resolution, job.generator) as plan:
            if not job.shards:
                print(f"shards: {' '.join(plan.shard_dirs)}", flush=True)
            print(f"head: {plan.head} ({plan.flame.model_dir}); UV resolution {plan.layout.uv_resolution}", flush=True)
            import ray

            quiet_ray_init(job.address, worker_output=True)  # task warnings show; Ray's and MLflow's INFO do not
            try:
                tracker = Tracker("sa0-refine", tracking_uri(job.mlflow_uri), enabled=job.mlflow_uri != OFF)
                tracker.start("refine_batch", {"subjects": len(plan.subjects), "steps": job.refine.steps,
                                               "out": job.out, "head": plan.head})
                rows = refine_batch(plan.subjects, plan.shard_dirs, job.out, plan.flame, plan.layout, job.refine,
                                    max_in_flight=job.max_in_flight, tracker=tracker, generator_dir=plan.generator,
                                    subjects_per_task=job.subjects_per_task, cpus_per_subject=job.cpus_per_subject,
                                    web=job.web, export=job.export)
                failed = sum(r.failed for r in rows)
                tracker.end({"failed": failed}, failed=failed > 0)
            finally:
                ray.shutdown()
    except (BadInput, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 1 if failed else 0


def run_tune_job(job: TuneJob) -> int:
    """Check the subjects, head and layout (plan_refinement), then sweep; print the best trial."""
    from sa0.console import quiet_ray_init
    from sa0.experiments import tracking_uri
    from sa0.refine.tune import overrides, tune_antispike

    try:
        with plan_refinement(job.subjects, job.shards, job.flame, job.uv_resolution) as plan:
            import ray

            quiet_ray_init(job.address, worker_output=True)
            try:
                base = dataclasses.replace(job.refine, log_every=max(1, job.refine.steps // 10))
                config, metrics, _ = tune_antispike(plan.subjects, plan.shard_dirs, plan.flame, plan.layout, base,
                                                    os.path.abspath(job.storage), job.name, job.samples, job.max_ar,
                                                    mlflow_uri=tracking_uri(job.mlflow_uri))  # None when "off"
            finally:
                ray.shutdown()
    except (BadInput, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"best trial: score {metrics['score']:.3f}, PSNR {metrics.get('psnr', float('nan')):.2f}, "
          f"maxAR {metrics['max_ar']:.2f}")
    print(f"overrides for refine_batch.py: {overrides(base, config)}")
    return 0

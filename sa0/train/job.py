"""The driver side of generator training: one TorchTrainer per phase, exports, job state, MLflow run.

    train_generator(job) -> JobResult
      runs/<run_name>/job.json            config, MLflow run id, finished phases
      runs/<run_name>/phase<p>/           Ray Train's run directory (checkpoints) for phase p
      runs/<run_name>/generator_phase<p>/ exported generator after phase p (COMPLETE marker)

A phase whose export is complete is skipped, so running the same command again after the driver
died continues where it stopped (inside a phase, Ray Train restores the latest checkpoint of the
same-named run); a new run name starts fresh. The TorchTrainer itself is built in sa0.train.on_ray
(ARCHITECTURE: Ray at the edges; sa0.train.loop.train_local runs a phase without Ray). Call
train_generator after ray.init().
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from sa0.console import make_console, print_while
from sa0.train.checkpoint import export_generator, is_exported, verify_checkpoint
from sa0.train.loop import GENERATOR_FILE, PhaseRun, flatten
from sa0.train.on_ray import fit_phase
from sa0.train.recipes import GeneratorJob, check_resources, validate_job, wants_gpu

log = logging.getLogger(__name__)
JOB_STATE = "job.json"
BUILDS_OWN_DATA = ("demo", "proof")  # recipes whose head and shards sa0.train.demo builds


@dataclass(frozen=True)
class JobResult:
    run_dir: Path
    exports: dict[int, Path]  # phase -> exported generator directory
    mlflow_run_id: str | None
    skipped_samples: int

    @property
    def generator(self) -> Path:
        return self.exports[max(self.exports)]


def _tracker(job: GeneratorJob):
    from sa0.experiments import Tracker

    return Tracker("sa0-generator", job.train.mlflow_uri, enabled=job.train.mlflow_uri != "off")


def _export_phase(result, run: PhaseRun, path: Path) -> Path:
    if result.error is not None:
        raise RuntimeError(f"phase {run.phase} failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"phase {run.phase} ended without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        state = verify_checkpoint(directory, run.job.train.num_workers)[0]
        if state["step"] != run.cfg.steps or not (Path(directory) / GENERATOR_FILE).is_file():
            raise RuntimeError(f"phase {run.phase}: the last checkpoint is at step {state['step']} of {run.cfg.steps}")
        weights = torch.load(Path(directory) / GENERATOR_FILE, map_location="cpu", weights_only=True)
    meta = {"phase": run.phase, "step": state["step"], "segments": state["segments"],
            "model": asdict(run.job.model), "flame": asdict(run.job.flame), "layout": asdict(run.job.layout),
            "recipe": run.job.recipe, "run_name": run.job.train.run_name,
            "image_size": run.cfg.data.example.image_size}
    return export_generator(path, weights, meta)


def _load_state(path: Path, job: GeneratorJob) -> dict:
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    if state.get("config") != json.loads(json.dumps(asdict(job), default=str)):
        log.warning("%s: the configuration differs from the one this run started with; continuing with the new one "
                    "(finished phases are kept)", path)
    return state


def train_generator(job: GeneratorJob) -> JobResult:
    """Validate, then train every phase that is not finished yet; -> where the results are."""
    import ray

    from sa0.data.pipeline import make_skip_counter

    validate_job(job)
    resources = ray.cluster_resources()
    check_resources(job.train, resources.get("CPU", 0.0), resources.get("GPU", 0.0), "the Ray cluster")
    use_gpu = wants_gpu(job.train, resources.get("GPU", 0.0) > 0)
    log.info("training on %s (train.use_gpu=%s, cluster GPUs: %g)", "GPU" if use_gpu else "CPU, fp32",
             job.train.use_gpu, resources.get("GPU", 0.0))
    job = replace(job, train=replace(job.train, use_gpu="true" if use_gpu else "false"))
    run_dir = Path(job.train.storage_path).absolute() / job.train.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / JOB_STATE
    state = _load_state(state_path, job)
    tracker = _tracker(job)
    run_id = tracker.start(job.train.run_name, flatten(asdict(job)), run_id=state.get("mlflow_run_id"))
    tracker.tags({"sa0.recipe": job.recipe, "sa0.phases": ",".join(str(n) for n, _ in job.phases())})
    state.update(config=json.loads(json.dumps(asdict(job), default=str)), mlflow_run_id=run_id)
    state_path.write_text(json.dumps(state, indent=1))
    counter, console = make_skip_counter(), make_console()
    exports, init = {}, None
    for number, _ in job.phases():
        path = run_dir / f"generator_phase{number}"
        run = PhaseRun(job, number, init=init, mlflow_run_id=run_id)
        if is_exported(path):
            print(f"phase {number}: already finished ({path}); skipping", flush=True)
        else:
            print(f"phase {number}: {run.cfg.steps} steps on {job.train.num_workers} worker(s)", flush=True)
            _export_phase(print_while(lambda: fit_phase(run, run_dir, counter, console), console), run, path)
        exports[number] = init = path
        tracker.tags({f"sa0.phase{number}": "finished", f"sa0.phase{number}.export": str(path)})
        state["finished_phases"] = sorted(exports)
        state_path.write_text(json.dumps(state, indent=1))
    skipped = ray.get(counter.count.remote())
    tracker.end({"skipped_samples": skipped})
    return JobResult(run_dir, exports, run_id, skipped)



def prepare_job(job: GeneratorJob) -> GeneratorJob:
    """Everything a training job can settle before Ray starts, without side effects: the MLflow URI
    and storage made absolute, the ICT head's name resolved, every phase's data given (the demo
    builds its own), cross-field checks and (on a local Ray) the machine's resources. ValueError
    names the key."""
    from sa0.experiments import OFF, tracking_uri
    from sa0.heads import ALIASES, ICT_NAME, ict_dir
    from sa0.train.recipes import local_resources

    train = replace(job.train, mlflow_uri=tracking_uri(job.train.mlflow_uri) or OFF,
                    storage_path=str(Path(job.train.storage_path).absolute()),
                    address=job.train.address or os.environ.get("RAY_ADDRESS"))
    job = replace(job, train=train)
    if ALIASES.get(job.flame.model_dir or "") == ICT_NAME:
        job = replace(job, flame=replace(job.flame, model_dir=str(ict_dir())))
    validate_job(job)
    if not train.address:
        check_resources(train, *local_resources(), "this machine")
    for number, phase in job.phases():
        if not phase.data.shard_dirs and job.recipe not in BUILDS_OWN_DATA:
            raise ValueError(f"phase{number}.data.shard_dirs is empty: pass --phase{number}-shards DIR "
                             "(make_shards.py output)")
    return job


def run_train_job(job: GeneratorJob) -> int:
    """prepare_job (again: a library caller may skip the CLI), the demo's inputs, then both phases on
    Ray; print where the results are. -> exit status."""
    import ray

    from sa0.console import quiet_ray_init
    from sa0.train.demo import ensure_demo_inputs

    try:
        job = prepare_job(job)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if job.recipe in BUILDS_OWN_DATA:
        job = ensure_demo_inputs(job, Path(job.train.cache_dir))
    quiet_ray_init(job.train.address)  # worker output to Ray's log files; progress and warnings via sa0.console
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

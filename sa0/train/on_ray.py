"""Generator training on Ray Train: the one module that wires the loop into a TorchTrainer.

`RaySession` is sa0.train.session's interface over Ray Train's worker context (rank, device, the
checkpoint Ray restored, `ray.train.report`); `train_loop_per_worker` runs sa0.train.loop.train_phase
with it; `fit_phase` builds the TorchTrainer of one phase on the driver.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from sa0.train.loop import PhaseRun, train_phase


class RaySession:
    """Inside a Ray Train worker. counter: the driver's skip counter (sa0.data.pipeline), read into
    rank 0's metrics."""

    data_runner = "ray"

    def __init__(self, counter=None):
        import ray.train

        context = ray.train.get_context()
        self.rank, self.world, self.counter = context.get_world_rank(), context.get_world_size(), counter

    def device(self, use_gpu: bool) -> torch.device:
        import ray.train.torch

        if use_gpu:
            return ray.train.torch.get_device()
        import os

        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # read when deepspeed is first imported
        return torch.device("cpu")

    @contextlib.contextmanager
    def latest_checkpoint(self):
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if not checkpoint:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield directory

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    def skipped(self) -> int | None:
        import ray

        return ray.get(self.counter.count.remote()) if self.counter is not None else None


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry: config = {"run": PhaseRun, "counter": SkipCounter, "console": Console}."""
    train_phase(config["run"], RaySession(config.get("counter")), config.get("console"))


def fit_phase(run: PhaseRun, run_dir: Path, counter=None, console=None):
    """One phase on Ray Train; -> Ray's Result (resumes the same-named phase run if it exists).
    The shards are checked here, before any worker starts; each worker then streams its share."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from sa0.data.pipeline import shard_paths

    shard_paths(run.cfg.data.shard_dirs)
    train = run.job.train
    use_gpu = train.use_gpu == "true"
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run": run, "counter": counter, "console": console},
        scaling_config=ScalingConfig(num_workers=train.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": train.cpus_per_worker, **({"GPU": 1} if use_gpu else {})}),
        run_config=RunConfig(name=f"phase{run.phase}", storage_path=str(run_dir),
                             failure_config=FailureConfig(max_failures=train.max_failures), **_quiet_train()),
    )
    return trainer.fit()


def _quiet_train() -> dict:
    """Ray Train's per-report INFO lines ("Reporting training result N: ...") off the console
    (they stay in Ray's log files), where this Ray has the option."""
    try:
        from ray.train import LoggingConfig
    except ImportError:
        return {}
    return {"logging_config": LoggingConfig(log_level="WARNING")}

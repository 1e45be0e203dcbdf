"""Distributed generator training: the per-worker loop (DeepSpeed engine) and its Ray Train wiring.

The loop runs under Ray Train's TorchTrainer, which has already set up torch.distributed (gloo on
CPU, NCCL on GPU); DeepSpeed attaches to that process group. Each `checkpoint_every` steps every
rank saves the DeepSpeed state (ZeRO shards have per-rank names, so Ray merges them into one
checkpoint) plus its own loop_rank<r>.json (step, that rank's data position, resolved config, and on
rank 0 the MLflow run id); Ray Train commits it. On a
restart (worker crash, or the same RunConfig name after the driver died) the loop loads the latest
checkpoint and continues from its step and data position.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field

import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.pipeline import DataConfig
from sa0.model import ModelConfig
from sa0.train.step import LossConfig

LOOP_STATE = "loop_rank{rank}.json"  # one per rank: Ray merges every rank's checkpoint files
SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """steps: optimiser steps; batch_size: per worker; zero_stage: DeepSpeed ZeRO stage (0-2)."""

    steps: int = 200
    batch_size: int = 2
    lr: float = 2.5e-4
    grad_clip: float = 5.0
    zero_stage: int = 2
    checkpoint_every: int = 50
    log_every: int = 10
    num_workers: int = 2
    cpus_per_worker: float = 0.5
    run_name: str = "sa0-generator"
    storage_path: str = "runs"
    mlflow_uri: str | None = None  # None: no MLflow logging from the loop

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.num_workers < 1:
            raise ValueError("TrainConfig.steps, batch_size and num_workers must be >= 1")
        if self.zero_stage not in (0, 1, 2):
            raise ValueError(f"TrainConfig.zero_stage must be 0, 1 or 2, got {self.zero_stage}")
        if self.lr <= 0 or self.grad_clip <= 0 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("TrainConfig.lr, grad_clip, checkpoint_every and log_every must be positive")


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything a worker needs, as plain picklable configs."""

    train: TrainConfig
    model: ModelConfig
    loss: LossConfig
    flame: FlameConfig
    layout: LayoutConfig
    data: DataConfig = field(default_factory=DataConfig)


def train_loop_per_worker(spec: RunSpec) -> None:
    import deepspeed
    import ray.train

    from sa0.data.pipeline import ExampleStream
    from sa0.head import load_head_model
    from sa0.model import Generator
    from sa0.train.step import compute_losses, prepare_batch

    cfg = spec.train
    torch.manual_seed(1234)  # identical initial weights on every rank
    head = load_head_model(spec.flame, spec.layout)
    model = Generator(spec.model, head)
    params = [p for p in model.parameters() if p.requires_grad]
    ds_config = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "steps_per_print": 10**9,
    }
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=torch.optim.Adam(params, lr=cfg.lr),
                                           model_parameters=params, config=ds_config)
    step, position, run_id = 0, None, None
    rank = ray.train.get_context().get_world_rank()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            engine.load_checkpoint(directory, tag="state")
            state = json.loads(open(os.path.join(directory, LOOP_STATE.format(rank=rank))).read())
            step, position, run_id = state["step"], state["data"], state.get("mlflow_run_id")
    tracker = None
    if cfg.mlflow_uri and rank == 0:
        from sa0.tracking import Tracker

        tracker = Tracker("sa0-generator", cfg.mlflow_uri)
        run_id = tracker.start(cfg.run_name, _flatten(asdict(spec)), run_id=run_id)
    stream = ExampleStream(ray.train.get_dataset_shard("train"), cfg.batch_size, position=position)
    for batch in stream:
        prepared = prepare_batch(batch, head)
        total, terms, _ = compute_losses(engine.module, prepared, spec.loss)
        engine.backward(total)
        engine.step()
        step += 1
        metrics = {"step": step, "loss": float(total.detach()), **terms}
        if tracker is not None and (step % cfg.log_every == 0 or step == cfg.steps):
            tracker.metrics(metrics, step)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            with tempfile.TemporaryDirectory() as directory:
                engine.save_checkpoint(directory, tag="state")
                state = {"schema_version": SCHEMA_VERSION, "step": step, "data": stream.state_dict(),
                         "config": json.loads(json.dumps(asdict(spec), default=str)), "mlflow_run_id": run_id}
                with open(os.path.join(directory, LOOP_STATE.format(rank=rank)), "w") as fh:
                    json.dump(state, fh)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
        elif step % cfg.log_every == 0:
            ray.train.report(metrics)
        if step >= cfg.steps:
            break
    if tracker is not None:
        tracker.end()


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def fit_generator(spec: RunSpec):
    """Run (or resume, for the same run_name and storage_path) the training; returns Ray's Result."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from sa0.data.pipeline import example_dataset

    cfg = spec.train
    use_gpu = torch.cuda.is_available()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=spec,
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=use_gpu,
                                     resources_per_worker=None if use_gpu else {"CPU": cfg.cpus_per_worker}),
        run_config=RunConfig(name=cfg.run_name, storage_path=os.path.abspath(cfg.storage_path),
                             failure_config=FailureConfig(max_failures=2)),
        datasets={"train": example_dataset(spec.data)},
    )
    return trainer.fit()

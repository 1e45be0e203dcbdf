"""What a generator training job is: the job-wide settings, the two phases, and named recipes.

A job = GeneratorJob(train, model, flame, layout, phase1, phase2). `recipe(name)` gives a complete
job; `jobs/train_generator.py` applies `--set a.b.c=value` overrides on top and `validate_job`
checks everything that can be checked before any Ray work (values, K, phase consistency,
resources). Recipes:
  demo     tiny model (UV 64^2, small ViT at 84 px, randomly initialised unless weights are given),
           synthetic head and shards built in a cache directory; both phases in a few minutes on
           2 CPU cores.
  proof    the CPU-size proof that training works (benchmarks/bm_generator.py): the demo model with
           a small CNN encoder trained from scratch (model.encoder=cnn, not the paper's frozen DINO)
           and the visibility pool, more synthetic identities (sa0.train.demo.RECIPE_DATA), both
           phases in under an hour on 2 CPU cores.
  base     the paper's recipe (METHOD §3) on one machine: paper model, 200K + phase-2 steps,
           batches 48 / 12 split over the workers; needs real shards, FLAME and ViT weights.
  cluster  `base` with 4 GPU workers (global batches 48 / 12 as in the paper) and storage on a
           shared path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.examples import ExampleConfig
from sa0.data.pipeline import DataConfig
from sa0.data.sampling import SamplerConfig
from sa0.model import ModelConfig
from sa0.train.optim import OptimConfig
from sa0.train.step import LossConfig

RECIPES = ("demo", "proof", "base", "cluster")
MAX_K = 4  # METHOD §2: K in 1..4
PROOF_STEPS = {1: 6000, 2: 600}  # the proof recipe: ~24 minutes on 2 CPU cores (benchmarks/bm_generator.py)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Job-wide settings. batch_size in the phases is per worker. zero_stage: DeepSpeed ZeRO 0-2.
    storage_path/run_name: where checkpoints, exports and job state live (runs/<run_name>/...); the
    same run_name resumes, a new one starts fresh. mlflow_uri: None = $MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db in the current directory; "off" disables tracking. address: the Ray cluster
    (None: $RAY_ADDRESS, else a local Ray). cache_dir: where the demo recipe builds its head and shards. check_resources: refuse to start when the
    cluster has fewer CPUs/GPUs than the workers need (turn off for autoscaling clusters)."""

    num_workers: int = 2
    cpus_per_worker: float = 0.5
    use_gpu: str = "auto"
    zero_stage: int = 2
    grad_clip: float = 5.0
    checkpoint_every: int = 50
    log_every: int = 10
    run_name: str = "sa0-generator"
    storage_path: str = "runs"
    mlflow_uri: str | None = None
    address: str | None = None
    cache_dir: str = os.path.join(os.path.expanduser("~"), ".cache", "sa0")
    max_failures: int = 2
    check_resources: bool = True
    seed: int = 1234

    def __post_init__(self):
        if self.num_workers < 1:
            raise ValueError(f"train.num_workers must be >= 1, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"train.cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.use_gpu not in ("auto", "true", "false"):
            raise ValueError(f"train.use_gpu must be auto, true or false, got {self.use_gpu!r}")
        if self.zero_stage not in (0, 1, 2):
            raise ValueError(f"train.zero_stage must be 0, 1 or 2, got {self.zero_stage}")
        if self.grad_clip <= 0 or self.checkpoint_every < 1 or self.log_every < 1 or self.max_failures < 0:
            raise ValueError("train.grad_clip, checkpoint_every and log_every must be positive, max_failures >= 0")
        if not self.run_name or "/" in self.run_name:
            raise ValueError(f"train.run_name must be a non-empty name without '/', got {self.run_name!r}")


@dataclass(frozen=True, kw_only=True)
class PhaseConfig:
    """One training phase: its length, per-worker batch, optimiser and schedule, loss weights, data.
    bf16: autocast the generator to bf16 on GPU (ignored on CPU, which trains in fp32). The data
    stream's total_steps (temperature anneal, stream window) is always `steps` (set here)."""

    steps: int
    batch_size: int
    optim: OptimConfig
    loss: LossConfig
    data: DataConfig
    bf16: bool = False

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"phase steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.data.total_steps != self.steps:  # one owner: the stream's length (anneal, window) is the phase's
            object.__setattr__(self, "data", replace(self.data, total_steps=self.steps))


@dataclass(frozen=True, kw_only=True)
class GeneratorJob:
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    flame: FlameConfig = field(default_factory=FlameConfig)
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    phase1: PhaseConfig
    phase2: PhaseConfig | None = None
    recipe: str = "custom"

    def phases(self) -> list[tuple[int, PhaseConfig]]:
        return [(p, cfg) for p, cfg in ((1, self.phase1), (2, self.phase2)) if cfg is not None]


def _phase(number: int, steps: int, batch: int, image: int, shard_dirs=(), examples_per_clip: int = 4,
           lpips: float = 0.0, lr: float = 2.5e-4) -> PhaseConfig:
    optim = OptimConfig.phase1(lr) if number == 1 else OptimConfig.phase2(lr)
    return PhaseConfig(
        steps=steps, batch_size=batch, optim=optim, bf16=number == 2,
        loss=LossConfig(phase=number, lpips=lpips),
        data=DataConfig(shard_dirs=tuple(shard_dirs), examples_per_clip=examples_per_clip,
                        example=ExampleConfig(phase=number, image_size=image, sampler=SamplerConfig(max_sources=MAX_K))),
    )


def recipe(name: str) -> GeneratorJob:
    if name == "demo":
        model = ModelConfig(image_size=84, dpt_channels=16, unet_channels=(16, 32, 48), out_channels=16,
                            residual_hidden=32)
        return GeneratorJob(
            recipe="demo", model=model, layout=LayoutConfig(uv_resolution=64),
            train=TrainConfig(run_name="demo", checkpoint_every=25, log_every=5),
            phase1=_phase(1, 240, 2, 96, examples_per_clip=8, lr=1e-3),
            phase2=_phase(2, 120, 2, 96, examples_per_clip=8, lr=5e-4),
        )
    if name == "proof":
        demo = recipe("demo")
        model = replace(demo.model, encoder="cnn", freeze_encoder=False, image_size=96, pool="visible")
        return replace(demo, recipe="proof", model=model,
                       train=replace(demo.train, run_name="proof", checkpoint_every=200, log_every=20),
                       phase1=_phase(1, PROOF_STEPS[1], 2, 96, examples_per_clip=8, lr=1e-3),
                       phase2=_phase(2, PROOF_STEPS[2], 2, 96, examples_per_clip=8, lr=2e-4))
    if name == "base":
        return GeneratorJob(
            recipe="base", model=ModelConfig.paper(), layout=LayoutConfig(uv_resolution=256),
            train=TrainConfig(num_workers=1, cpus_per_worker=4, checkpoint_every=2000, log_every=50, run_name="base"),
            phase1=_phase(1, 200_000, 48, 512, lpips=1.0),
            phase2=_phase(2, 50_000, 12, 512, lpips=1.0),
        )
    if name == "cluster":
        base = recipe("base")
        return replace(base, recipe="cluster",
                       train=replace(base.train, num_workers=4, cpus_per_worker=8, use_gpu="true", check_resources=False,
                                     storage_path="/mnt/shared/sa0/runs", run_name="cluster"),
                       phase1=replace(base.phase1, batch_size=12), phase2=replace(base.phase2, batch_size=3))
    raise ValueError(f"unknown recipe {name!r}; choose one of {RECIPES}")


def validate_job(job: GeneratorJob) -> None:
    """Cross-field checks the per-component configs cannot make alone (each already checked itself)."""
    for number, phase in job.phases():
        where = f"phase{number}"
        if phase.loss.phase != number or phase.data.example.phase != number:
            raise ValueError(f"{where}.loss.phase and {where}.data.example.phase must be {number}, got "
                             f"{phase.loss.phase} and {phase.data.example.phase}")
        k = phase.data.example.sampler.max_sources
        if not 1 <= k <= MAX_K or k > job.model.max_sources:
            raise ValueError(f"{where}.data.example.sampler.max_sources (K) must be in 1..{min(MAX_K, job.model.max_sources)}"
                             f" (model.max_sources={job.model.max_sources}), got {k}")


def wants_gpu(train: TrainConfig, cuda_available: bool) -> bool:
    return train.use_gpu == "true" or (train.use_gpu == "auto" and cuda_available)


def check_resources(train: TrainConfig, cpus: float, gpus: float, where: str) -> None:
    """Raise if `where` (a machine or cluster) cannot host the workers at all."""
    if not train.check_resources:
        return
    need_gpu = train.use_gpu == "true" or (train.use_gpu == "auto" and gpus > 0)
    if need_gpu and train.num_workers > gpus:
        raise ValueError(f"train.num_workers={train.num_workers} GPU workers, but {where} has {gpus:g} GPU(s); "
                         "lower train.num_workers or set train.check_resources=false on an autoscaling cluster")
    need_cpu = train.num_workers * train.cpus_per_worker
    if need_cpu > cpus:
        raise ValueError(f"train.num_workers={train.num_workers} x train.cpus_per_worker={train.cpus_per_worker:g} = "
                         f"{need_cpu:g} CPUs, but {where} has {cpus:g}; lower them or set train.check_resources=false "
                         "on an autoscaling cluster")
    if not need_gpu and need_cpu > cpus - 0.5:
        raise ValueError(f"train.num_workers x train.cpus_per_worker = {need_cpu:g} of the {cpus:g} CPUs of {where} "
                         "leaves none for Ray Data's read tasks (the run would hang); lower train.cpus_per_worker")


def local_resources() -> tuple[float, float]:
    import torch

    return float(os.cpu_count() or 1), float(torch.cuda.device_count() if torch.cuda.is_available() else 0)

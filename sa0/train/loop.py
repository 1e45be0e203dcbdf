"""The per-rank training loop of one phase: DeepSpeed engine, schedule, checkpoints, tracking.

`train_phase(run, session)` steps, checkpoints and reports through a Session (sa0.train.session):
`LocalSession` runs it in this process with no Ray (`train_local`: a one-process torch.distributed
group), RaySession (sa0.train.on_ray) runs it inside a Ray Train worker, where
TorchTrainer has set up torch.distributed (gloo on CPU, NCCL on GPU; DeepSpeed attaches to it).
Every `checkpoint_every` steps and at the end of the phase every rank saves its DeepSpeed state into
a temporary directory and then its completion marker (sa0.train.checkpoint), and reports it; Ray
merges the ranks' files into one checkpoint and commits it. At the phase's last step rank 0 also
writes the full generator state (generator.pt), which the driver exports. On a restart the loop
verifies the latest checkpoint, loads it and continues from its step and data position; the
`segments` it records show which steps each attempt trained.

Rank 0 keeps metric rows in memory and sends them to MLflow only after the checkpoint covering
them is committed, so a resumed run never logs a step twice; it also logs an image grid
(sources | target | prediction | alpha) at each checkpoint and prints one line per `log_every`
steps with samples/s and the ETA.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sa0.console import forward_warnings, say
from sa0.faults import maybe_crash
from sa0.train.checkpoint import verify_checkpoint, write_rank_marker
from sa0.train.recipes import GeneratorJob, PhaseConfig
from sa0.train.session import Session

log = logging.getLogger(__name__)
GENERATOR_FILE = "generator.pt"


@dataclass(frozen=True)
class PhaseRun:
    """What every worker of one phase gets. init: an exported generator to start from (phase 2:
    phase 1's, which is also the L2-SP anchor); mlflow_run_id: the job's MLflow run (None: off)."""

    job: GeneratorJob
    phase: int
    init: str | None = None
    mlflow_run_id: str | None = None

    @property
    def cfg(self) -> PhaseConfig:
        return self.job.phase1 if self.phase == 1 else self.job.phase2


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def build_engine(run: PhaseRun, device: torch.device):
    """-> (DeepSpeed engine, head on `device`, L2-SP anchor or None) for one rank. Needs the
    torch.distributed environment: Ray Train sets it; a single process (benchmarks/gpu_check.py)
    sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT itself."""
    import deepspeed

    from sa0.head import load_head_model
    from sa0.model import Generator
    from sa0.train.checkpoint import load_generator
    from sa0.train.optim import make_optimizer, make_scheduler

    job, cfg = run.job, run.cfg
    torch.manual_seed(job.train.seed)  # identical initial weights on every rank
    head = load_head_model(job.flame, job.layout).to(device)
    model = Generator(job.model, head)
    anchor = None
    if run.init:
        state, _ = load_generator(run.init)
        model.load_state_dict(state)
        if cfg.loss.l2_sp > 0:
            anchor = {n: p.detach().clone().to(device) for n, p in model.named_parameters() if p.requires_grad}
    model.to(device)
    optimizer = make_optimizer(model, cfg.optim)
    ds_config = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": job.train.grad_clip,
        "zero_optimization": {"stage": job.train.zero_stage},
        "steps_per_print": 10**9,
    }
    deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config,
                                           lr_scheduler=make_scheduler(optimizer, cfg.steps, cfg.optim))
    return engine, head, anchor


def _lpips(cfg: PhaseConfig, device):
    if cfg.loss.lpips <= 0:
        return None
    from sa0.losses.generator_terms import make_lpips

    return make_lpips().to(device)


class _Logger:
    """Rank 0's metric buffer, console lines and MLflow hand-off."""

    def __init__(self, run: PhaseRun, start_step: int, skipped=None, console=None):
        self.run, self.prefix, self.rows = run, f"phase{run.phase}/", []
        self.skipped, self.console = skipped, console
        self.t0, self.start_step = time.monotonic(), start_step
        self.tracker = None
        if run.mlflow_run_id:
            from sa0.experiments import Tracker

            self.tracker = Tracker(None, run.job.train.mlflow_uri)  # continue the driver's run, in its experiment
            self.tracker.start(run.job.train.run_name, {}, run_id=run.mlflow_run_id)

    def add(self, step: int, metrics: dict) -> None:
        """Buffer a row (adding the skipped-sample count), print a line."""
        if self.skipped is not None:
            metrics["skipped_samples"] = self.skipped()
        self.rows.append((step, {self.prefix + k: v for k, v in metrics.items()}))
        total = self.run.cfg.steps
        rate = (step - self.start_step) / max(1e-9, time.monotonic() - self.t0)
        eta = (total - step) / rate if rate > 0 else float("nan")
        say(self.console, f"[phase{self.run.phase}] step {step}/{total}  loss {metrics['loss']:.4f}  "
            f"{metrics['samples_per_s']:.1f} samples/s  data wait {100 * metrics['data_wait_frac']:.0f}%  "
            f"ETA {time.strftime('%H:%M:%S', time.gmtime(eta)) if eta == eta else '?'}")

    def committed(self, step: int, grid=None) -> None:
        """The checkpoint at `step` is committed: send every buffered row up to it."""
        if self.tracker is not None:
            for row_step, values in self.rows:
                self.tracker.metrics(values, row_step)
            if grid is not None:
                self.tracker.image(grid, f"phase{self.run.phase}_grid", step)
        self.rows = []

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.end()


def image_grid(batch: dict, shown: dict, index: int = 0) -> np.ndarray:
    """One example as a uint8 row: its valid sources | target | prediction | alpha (H, W*(K+3), 3)."""
    src = torch.as_tensor(batch["src_images"])[index].cpu().numpy()  # (K, h, w, 3) uint8
    mask = torch.as_tensor(batch["src_mask"])[index].cpu().numpy().astype(bool)
    target = torch.as_tensor(batch["tgt_image"])[index].cpu().numpy()
    h, w = target.shape[:2]
    pred = (shown["image"][index].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    alpha = (shown["alpha"][index].clamp(0, 1).cpu().numpy() * 255).astype(np.uint8).repeat(3, -1)
    tiles = [s if s.shape[:2] == (h, w) else np.asarray(
        torch.nn.functional.interpolate(torch.as_tensor(s).permute(2, 0, 1)[None].float(), size=(h, w))[0]
        .permute(1, 2, 0).byte()) for s in src[mask]]
    return np.concatenate(tiles + [target, pred, alpha], axis=1)


def optimizer_state_bytes(engine) -> tuple[int, int]:
    """-> (bytes of the torch optimiser's per-parameter state on this rank (Adam's moments; ZeRO 1-2
    keep only this rank's partition), bytes of ZeRO's fp32 master partition (0 without ZeRO))."""
    inner = engine.optimizer
    while not isinstance(inner, torch.optim.Optimizer) and hasattr(inner, "optimizer"):
        inner = inner.optimizer
    size = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)  # noqa: E731
    moments = [t for state in inner.state.values() for t in state.values() if torch.is_tensor(t) and t.dim() > 0]
    return size(moments), size(getattr(engine.optimizer, "single_partition_of_fp32_groups", []))


def _resume(engine, session: Session) -> dict:
    with session.latest_checkpoint() as directory:
        if directory is None:
            return {"step": 0, "data": None, "segments": []}
        state = verify_checkpoint(directory, session.world)[session.rank]
        engine.load_checkpoint(directory, tag="state")
    log.info("rank %d resumed at step %d (data position %s)", session.rank, state["step"], state["data"])
    return state


class _Interval:
    """Time spent waiting for data and computing since the last logged step."""

    def __init__(self):
        self.waited = self.computed = 0.0
        self.steps = 0

    def add(self, waited: float, computed: float) -> None:
        self.waited, self.computed, self.steps = self.waited + waited, self.computed + computed, self.steps + 1

    def take(self, samples_per_step: int) -> dict:
        busy = max(1e-9, self.waited + self.computed)
        out = {"samples_per_s": samples_per_step * self.steps / busy, "data_wait_frac": self.waited / busy}
        self.__init__()
        return out


def _save_and_report(engine, run: PhaseRun, session: Session, step: int, loop_state: dict, metrics: dict) -> None:
    """Every rank: DeepSpeed state, (last step, rank 0) the full generator, then the completion marker."""
    with tempfile.TemporaryDirectory() as directory:
        engine.save_checkpoint(directory, tag="state")
        if session.rank == 0 and step == run.cfg.steps:
            torch.save({k: v.detach().cpu() for k, v in engine.module.state_dict().items()},
                       os.path.join(directory, GENERATOR_FILE))
        write_rank_marker(directory, session.rank, loop_state)
        session.report(metrics, checkpoint_dir=directory)


def train_phase(run: PhaseRun, session: Session, console=None) -> None:
    """One phase on one rank, through `session` (sa0.train.session: LocalSession in this process,
    RaySession under Ray Train). Each rank streams its own planned share of every epoch
    (sa0.data.pipeline), so its data position resumes exactly. Rank 0's progress lines and warnings
    go to the driver's terminal (sa0.console; printed here without a console)."""
    from sa0.data.pipeline import ExampleStream
    from sa0.model.batch import prepare_batch
    from sa0.train.step import compute_losses

    cfg, train = run.cfg, run.job.train
    rank, world = session.rank, session.world
    if rank == 0:
        forward_warnings(console, f"[phase{run.phase}] ")
    device = session.device(train.use_gpu == "true")
    engine, head, anchor = build_engine(run, device)
    lpips_fn = _lpips(cfg, device)
    state = _resume(engine, session)
    step, segments = state["step"], [list(s) for s in state["segments"]]
    if step >= cfg.steps:
        return  # this phase finished before the restart; its last checkpoint holds the result
    segments.append([step + 1, step])
    logger = _Logger(run, step, getattr(session, "skipped", None), console) if rank == 0 else None
    stream = ExampleStream(cfg.data, cfg.batch_size, rank=rank, world=world, position=state["data"],
                           counter=getattr(session, "counter", None), runner=session.data_runner)
    batches, interval = iter(stream), _Interval()
    while step < cfg.steps:
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        total, terms, shown = compute_losses(engine.module, prepare_batch(batch, head, device), cfg.loss, lpips_fn,
                                             anchor, bf16=cfg.bf16)
        engine.backward(total)
        engine.step()
        step += 1
        segments[-1][1] = step
        interval.add(t1 - t0, time.perf_counter() - t1)
        maybe_crash(f"{train.run_name}-rank{rank}", f"step{step}")
        checkpoint_now = step % train.checkpoint_every == 0 or step == cfg.steps
        if not checkpoint_now and step % train.log_every:
            continue
        metrics = {"step": step, "loss": float(total.detach()), **terms, "lr": engine.get_lr()[0],
                   **interval.take(world * cfg.batch_size),
                   **dict(zip(("optimizer_state_mib", "zero_master_mib"),
                              (b / 2**20 for b in optimizer_state_bytes(engine))))}
        if logger is not None:
            logger.add(step, metrics)
        if not checkpoint_now:
            session.report(metrics)
            continue
        loop_state = {"step": step, "data": stream.state_dict(), "segments": segments, "phase": run.phase,
                      "config": json.loads(json.dumps(asdict(run.job), default=str))}
        _save_and_report(engine, run, session, step, loop_state, metrics)
        if logger is not None:
            logger.committed(step, image_grid(batch, shown))
    batches.close()  # stop the data pipeline while Ray is still up
    if logger is not None:
        logger.close()


def train_local(run: PhaseRun, root) -> list[dict]:
    """The phase in this process, no Ray (single rank; checkpoints under ROOT/checkpoint, a rerun on
    the same root resumes); -> every reported metrics row."""
    from sa0.train.session import LocalSession, ensure_local_process_group

    session = LocalSession(root)
    ensure_local_process_group()
    train_phase(run, session)
    return session.reports

"""refine_subjects(): several subjects refined in one optimiser loop, each exactly as if alone.

Each subject keeps its own seed-derived frame order and background colours (a numpy Generator and
a torch Generator, both seeded from RefineConfig.seed), its own step count, learning-rate schedule,
scale freeze, clamps and aspect-penalty start. One loop step takes one step of every subject that
is still running: the subjects' bound Gaussians are stacked (S, N, ...) and rendered as one batch
per image size (one set per camera: the render API's batched form, gsplat's too), the loss is the
sum of the per-subject losses (so each subject's gradient is its own loss's), and RowAdam updates
each row with its subject's learning rate. A subject that finishes, or whose loss turns non-finite,
leaves the batch; the others go on. With one subject this is refine_subject.

Checkpoints (optional): every `checkpoint_every` steps a subject's whole state (parameters, Adam
moments and counts, both generators, history) is written atomically to <dir>/<name>.pt; a rerun
with the same configuration resumes each subject from its own checkpoint and ends where an
uninterrupted run ends.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.gaussians import bind
from sa0.head import HeadModel
from sa0.losses import aspect_penalty, clamp_log_scales, max_aspect_ratio, ssim_per_image
from sa0.refine.adam import RowAdam
from sa0.refine.reference import choose_reference_frame, neutral_init
from sa0.refine.refine import (
    ATTRIBUTES,
    RefineConfig,
    RefineResult,
    camera_of,
    evaluate,
    frames_of,
    novel_view_max_ar,
    target_of,
)
from sa0.refine.unseen import UnseenGuard, guard_unseen
from sa0.render.api import render
from sa0.types import Cameras, LocalGaussians, RenderOut


@dataclass
class Subject:
    """One subject's inputs: its training clip, held-out clip and optional start."""

    name: str
    train: Clip
    test: Clip | None = None
    init: LocalGaussians | None = None


class Observer:
    """What a refinement reports while it runs (every method a no-op here; override any)."""

    def progress(self, name: str, step: int) -> None:
        """`step` steps of subject `name` are done."""

    def log(self, name: str, record: dict) -> None:
        """Every log_every steps: {step, loss, l1, ssim, max_ar, steps_per_s}."""

    def heldout(self, name: str, step: int, metrics: dict) -> None:
        """Every eval_every steps: held-out {psnr, ssim} on up to eval_frames frames."""

    def image(self, name: str, step: int, image: np.ndarray) -> None:
        """At a few points: (H, 2W, 3) uint8, render | ground truth of the first held-out frame."""


@dataclass
class _State:
    subject: Subject
    verts: torch.Tensor
    frames: list
    rng: np.random.Generator
    gen: torch.Generator
    reference: int
    step: int = 0
    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    elapsed: float = 0.0
    last_log: tuple = (0, 0.0)
    error: str | None = None
    unseen: UnseenGuard = field(default_factory=UnseenGuard)  # the unseen-region terms (sa0.refine.unseen)


def lr_factor(step: int, total: int, final: float) -> float:
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def _slice(out: RenderOut, i: int) -> RenderOut:
    return RenderOut(*(getattr(out, f)[i:i + 1] for f in RenderOut.__dataclass_fields__))


def _fingerprint(cfg, subject: Subject, n: int) -> str:
    clip = subject.train
    return f"{cfg!r}|{n}|{clip.meta.key}|{clip.num_timesteps}x{clip.num_cameras}"


def _start(head: HeadModel, subject: Subject, cfg, generator, blob: dict | None) -> tuple[_State, LocalGaussians]:
    """A subject's state and start: from its checkpoint `blob`, else from scratch."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = subject.train
    verts = head.pose_track(train.flame.as_dict())
    ref = blob["reference"] if blob is not None else choose_reference_frame(train.flame.jaw, rng)
    init, neutral = subject.init, False
    if init is None and generator is not None:
        from sa0.model.inference import predict_local, spread_sources

        sources = spread_sources(train.num_timesteps, ref, generator.model.cfg.max_sources)
        init = predict_local(generator, train, sources, (ref, 0))
    if init is None:
        init, neutral = neutral_init(head, verts[ref], train, ref), True
    if init.positions.shape[-2] != head.num_gaussians:
        raise ValueError(f"init has {init.positions.shape[-2]} Gaussians, the layout {head.num_gaussians}")
    state = _State(subject, verts, frames_of(train), rng, gen, ref)
    init, state.unseen = guard_unseen(head, verts, train, state.frames, ref, init, neutral, cfg)
    if blob is not None:
        _resume(state, blob)
        return state, LocalGaussians(**blob["params"])
    return state, init


class _Checkpoints:
    def __init__(self, directory, every: int, cfg, n: int):
        self.dir, self.every, self.cfg, self.n = Path(directory) if directory else None, every, cfg, n

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.pt"

    def save(self, state: _State, params: dict, adam: RowAdam, i: int) -> None:
        if self.dir is None or self.every <= 0 or state.step % self.every or state.step >= self.cfg.steps:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        blob = {"fingerprint": _fingerprint(self.cfg, state.subject, self.n), "step": state.step,
                "params": {n: p[i].detach().clone() for n, p in params.items()}, "adam": adam.row_state(i),
                "rng": state.rng.bit_generator.state, "gen": state.gen.get_state(), "history": state.history,
                "metrics": state.metrics, "elapsed": state.elapsed, "reference": state.reference}
        tmp = self.path(state.subject.name).with_suffix(f".tmp{os.getpid()}")
        torch.save(blob, tmp)
        os.replace(tmp, self.path(state.subject.name))

    def load(self, subject: Subject) -> dict | None:
        if self.dir is None or not self.path(subject.name).is_file():
            return None
        blob = torch.load(self.path(subject.name), weights_only=False)
        return blob if blob.get("fingerprint") == _fingerprint(self.cfg, subject, self.n) else None


def _resume(state: _State, blob: dict) -> None:
    state.step, state.history, state.metrics = blob["step"], blob["history"], blob["metrics"]
    state.elapsed, state.reference = blob["elapsed"], blob["reference"]
    state.rng.bit_generator.state = blob["rng"]
    state.gen.set_state(blob["gen"])
    state.last_log = (state.step, 0.0)


def _begin(head: HeadModel, subjects: list[Subject], cfg: RefineConfig, generator, ckpt) -> tuple:
    """-> (states, stacked parameters, RowAdam): each subject from its checkpoint or its start; the
    held-out figures before any step."""
    states, inits, resumed = [], [], []
    for subject in subjects:
        blob = ckpt.load(subject)
        state, init = _start(head, subject, cfg, generator, blob)
        states.append(state)
        inits.append(init)
        resumed.append(blob)
    device = head.faces.device
    params = {n: torch.stack([getattr(i, n).detach().float().to(device) for i in inits]).requires_grad_(True)
              for n in ATTRIBUTES}
    adam = RowAdam(params)
    for i, blob in enumerate(resumed):
        if blob is not None:
            adam.load_row(i, blob["adam"])
    for i, state in enumerate(states):
        if state.step == 0 and state.subject.test is not None:
            state.metrics["initial"] = evaluate(head, _row(params, i), state.subject.test, cfg.render)
    return states, params, adam


def _row(params: dict, i: int) -> LocalGaussians:
    return LocalGaussians(**{n: params[n][i].detach() for n in ATTRIBUTES})


def _log(state: _State, observer: Observer, values: list[float], out) -> bool:
    """A log step's record (observer.log); False when the loss is no longer finite (state.error)."""
    loss, l1_value, ssim_value = values
    if not math.isfinite(loss):
        state.error = f"loss became {loss} by step {state.step}"
        return False
    done, since = state.step - state.last_log[0], state.elapsed - state.last_log[1]
    record = {"step": state.step, "loss": loss, "l1": l1_value, "ssim": ssim_value, "max_ar": max_aspect_ratio(out),
              "steps_per_s": done / since if since > 0 else 0.0}
    state.last_log = (state.step, state.elapsed)
    state.history.append(record)
    observer.log(state.subject.name, record)
    return True


def _report(head: HeadModel, state: _State, params: dict, i: int, cfg: RefineConfig, observer: Observer,
            image_steps: set[int]) -> None:
    """After a step: held-out figures every eval_every steps, the render | truth snapshots, progress."""
    local = None
    if state.subject.test is not None and cfg.eval_every and state.step % cfg.eval_every == 0:
        local = _row(params, i)
        observer.heldout(state.subject.name, state.step,
                         evaluate(head, local, state.subject.test, cfg.render, limit=cfg.eval_frames))
    if state.step - 1 in image_steps:
        observer.image(state.subject.name, state.step, _side_by_side(head, local or _row(params, i), state, cfg))
    observer.progress(state.subject.name, state.step)


def refine_subjects(head: HeadModel, subjects: list[Subject], cfg: RefineConfig, generator=None,
                    observer: Observer | None = None, checkpoint_dir=None,
                    checkpoint_every: int = 1000) -> list[RefineResult | str]:
    """Refine every subject in one loop; -> one RefineResult per subject, or the str reason it failed.
    generator: a sa0.model.inference.TrainedGenerator to start from (else flat discs)."""
    observer = observer or Observer()
    ckpt = _Checkpoints(checkpoint_dir, checkpoint_every, cfg, head.num_gaussians)
    states, params, adam = _begin(head, subjects, cfg, generator, ckpt)
    results: dict[str, object] = {}
    active = list(states)  # a checkpoint is never written at the last step, so every state has steps left
    image_steps = {max(0, round(k * cfg.steps / cfg.images) - 1) for k in range(1, cfg.images + 1)}
    while active:
        t0 = time.perf_counter()
        losses, parts = _losses(head, active, params, cfg)
        for p in params.values():
            p.grad = None
        sum(losses).backward()
        lrs, update = _schedules(active, cfg)
        adam.step(lrs, update)
        _clamp(active, params, cfg)
        dt = time.perf_counter() - t0
        finished = []
        logs = [s.step % cfg.log_every == 0 or s.step == cfg.steps - 1 for s in active]
        # values reach the host (a device sync) only at log steps; a non-finite loss is caught there
        values = torch.stack([torch.stack((loss.detach(), p["l1"], p["ssim"])) for loss, p in zip(losses, parts)]
                             ).tolist() if any(logs) else None
        for i, state in enumerate(active):
            state.elapsed += dt
            if logs[i] and not _log(state, observer, values[i], parts[i]["out"]):
                finished.append(i)
                continue
            state.step += 1
            _report(head, state, params, i, cfg, observer, image_steps)
            ckpt.save(state, params, adam, i)
            if state.step >= cfg.steps:
                finished.append(i)
        if finished:
            for i in finished:
                state = active[i]
                results[state.subject.name] = state.error or _finish(head, state, params, i, cfg)
            rows = [i for i in range(len(active)) if i not in finished]
            active = [active[i] for i in rows]
            params, adam = _keep(params, adam, rows)
    return [results[s.name] for s in subjects]


def _losses(head: HeadModel, active: list[_State], params: dict, cfg):
    """-> per-subject loss tensors and logged parts; one batched render per image size."""
    picks = []
    for state in active:
        t, c = state.frames[int(state.rng.integers(len(state.frames)))]
        background = torch.rand(3, generator=state.gen) if cfg.random_background else torch.zeros(3)
        picks.append((t, c, background.to(state.verts.device)))
    groups: dict[tuple, list[int]] = {}
    for i, state in enumerate(active):
        groups.setdefault(tuple(state.subject.train.image_size), []).append(i)
    losses, parts = [None] * len(active), [None] * len(active)
    for members in groups.values():
        whole = members == list(range(len(active)))
        index = torch.tensor(members, device=head.faces.device)
        local = LocalGaussians(**{n: (p if whole else p[index]) for n, p in params.items()})
        verts = torch.stack([active[i].verts[picks[i][0]] for i in members])
        cams = [camera_of(active[i].subject.train, picks[i][0], picks[i][1]) for i in members]
        cameras = Cameras(torch.cat([c.viewmats for c in cams]), torch.cat([c.Ks for c in cams]), cams[0].width,
                          cams[0].height)
        backgrounds = torch.stack([picks[i][2] for i in members])
        out = render(bind(local, verts, head.faces, head.layout), cameras, backgrounds, cfg.render)
        target = torch.cat([target_of(active[i].subject.train, *picks[i]) for i in members])
        l1s = (out.image - target).abs().mean(dim=(1, 2, 3))
        ssims = ssim_per_image(out.image, target)
        for j, i in enumerate(members):
            loss = cfg.l1_weight * l1s[j] + cfg.ssim_weight * (1 - ssims[j])
            one = _slice(out, j)
            if cfg.use_aspect and active[i].step >= cfg.scale_freeze_steps:
                loss = loss + cfg.aspect_weight * aspect_penalty(one, cfg.aspect_tau)
            row = {n: p[i] for n, p in params.items()}
            loss = loss + active[i].unseen.loss(head, row, active[i].verts, active[i].step, cfg)
            losses[i] = loss
            parts[i] = {"l1": l1s[j].detach(), "ssim": ssims[j].detach(), "out": one}
    return losses, parts


def _schedules(active: list[_State], cfg) -> tuple[dict, dict]:
    factors = torch.tensor([lr_factor(s.step, cfg.steps, cfg.lr_final_fraction) for s in active], dtype=torch.float64)
    lrs = {n: factors * getattr(cfg, f"lr_{n}") for n in ATTRIBUTES}
    frozen = torch.tensor([cfg.use_freeze and s.step < cfg.scale_freeze_steps for s in active])
    update = {n: torch.ones(len(active), dtype=torch.bool) for n in ATTRIBUTES}
    update["log_scales"] = ~frozen
    return lrs, update


def _clamp(active: list[_State], params: dict, cfg) -> None:
    if not cfg.use_clamp:
        return
    rows = [i for i, s in enumerate(active) if s.step >= cfg.scale_freeze_steps]
    if not rows:
        return
    data = params["log_scales"].data
    if len(rows) == len(active):
        clamp_log_scales(data, cfg.log_scale_min, cfg.log_scale_max, cfg.log_scale_spread)
        return
    index = torch.tensor(rows, device=data.device)
    sub = data[index]
    clamp_log_scales(sub, cfg.log_scale_min, cfg.log_scale_max, cfg.log_scale_spread)
    data[index] = sub


def _keep(params: dict, adam: RowAdam, rows: list[int]) -> tuple[dict, RowAdam]:
    index = torch.tensor(rows, dtype=torch.int64)
    kept = {n: p.detach()[index.to(p.device)].clone().requires_grad_(True) for n, p in params.items()}
    adam.params = kept
    adam.keep(index)
    return kept, adam


@torch.no_grad()
def _side_by_side(head: HeadModel, local: LocalGaussians, state: _State, cfg) -> np.ndarray:
    clip = state.subject.test if state.subject.test is not None else state.subject.train
    verts = head.pose_track({k: v[:1] for k, v in clip.flame.as_dict().items()})
    black = torch.zeros(3, device=verts.device)
    out = render(bind(local, verts[0], head.faces, head.layout), camera_of(clip, 0, 0), black, cfg.render)
    truth = target_of(clip, 0, 0, black)
    return (torch.cat((out.image[0].clamp(0, 1), truth[0]), 1) * 255).round().byte().cpu().numpy()


def _finish(head: HeadModel, state: _State, params: dict, i: int, cfg: RefineConfig) -> RefineResult:
    local = LocalGaussians(**{n: params[n][i].detach().clone() for n in ATTRIBUTES})
    metrics = dict(state.metrics)
    if state.subject.test is not None:
        metrics["final"] = evaluate(head, local, state.subject.test, cfg.render)
    metrics["seconds"] = state.elapsed
    metrics["steps"] = cfg.steps
    metrics["max_ar"] = state.history[-1]["max_ar"] if state.history else 1.0
    novel = state.unseen.novel
    if novel is not None and novel.bands is not None:  # how far hair and shoulders reach past the outline
        metrics["outline_bands_mm"] = {"cranium": round(1000 * float(novel.bands[1]), 1),
                                       "neck": round(1000 * float(novel.bands[2]), 1)}
    metrics["max_ar_novel"] = novel_view_max_ar(head, local, state.verts[state.reference], state.subject.train,
                                                state.reference, cfg.render)
    return RefineResult(LocalGaussians(**{n: getattr(local, n).cpu() for n in ATTRIBUTES}), state.reference,
                       state.history, metrics)


class _Callbacks(Observer):
    def __init__(self, progress, on_log):
        self._progress, self._on_log = progress, on_log

    def progress(self, name: str, step: int) -> None:
        if self._progress is not None:
            self._progress(step - 1)

    def log(self, name: str, record: dict) -> None:
        if self._on_log is not None:
            self._on_log(record)


def refine_subject(head: HeadModel, train: Clip, cfg: RefineConfig, test: Clip | None = None,
                   init: LocalGaussians | None = None, progress=None, on_log=None,
                   generator=None) -> RefineResult:
    """Refine one subject on `train`; evaluate on `test` (held-out frames) before and after.

    The start is `init` if given, else the `generator`'s (a sa0.model.inference.TrainedGenerator)
    prediction for the reference frame from up to K frames of `train`, else flat discs (neutral_init).
    progress(step) is called after every step (0-based); on_log(record) with each logged record
    {step, loss, l1, ssim, max_ar, steps_per_s}.
    """
    (result,) = refine_subjects(head, [Subject("subject", train, test, init)], cfg, generator,
                                _Callbacks(progress, on_log))
    if isinstance(result, str):
        raise FloatingPointError(f"refinement diverged: {result}")
    return result

"""refine_subject(): fit one subject's FLAME-bound Gaussians to its video, layout frozen (METHOD §4).

Frozen: FLAME tracking, the texel -> face binding, the Gaussian count. Optimised: local position,
rotation, log-scale, colour and opacity, each with its own Adam learning rate and one cosine decay
over the run. Each step: a random training frame, FLAME posed (precomputed), bind, render over a
random background colour b, loss = l1 L1 + lssim (1 - SSIM 11x11) + [t >= start] w_aspect Laspect
against the ground truth composited over the same b by its matte. Anti-spike: log-scales frozen for
the first `scale_freeze_steps`; from then on, after every update, log-scales are clamped to
[log_scale_min, log_scale_max] with per-Gaussian spread <= log_scale_spread; the aspect penalty
starts at the same step. maxAR is logged every `log_every` steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sa0.config import RenderConfig
from sa0.data.schema import Clip
from sa0.gaussians import bind
from sa0.geometry import look_at
from sa0.head import HeadModel
from sa0.losses import aspect_penalty, clamp_log_scales, l1, max_aspect_ratio, psnr, ssim
from sa0.refine.reference import choose_reference_frame, neutral_init
from sa0.render.api import render
from sa0.types import Cameras, LocalGaussians

ATTRIBUTES = ("positions", "rotations", "log_scales", "colors", "opacity_logits")


@dataclass(frozen=True, kw_only=True)
class RefineConfig:
    """Steps, per-attribute learning rates (decayed by a cosine to lr_final_fraction), loss weights
    and the anti-spike bounds (log-scales are in face-local units; tau and spread are logs)."""

    steps: int = 10_000
    lr_positions: float = 1e-3
    lr_rotations: float = 1e-3
    lr_log_scales: float = 5e-3
    lr_colors: float = 5e-3
    lr_opacity_logits: float = 2e-2
    lr_final_fraction: float = 0.01
    l1_weight: float = 0.8
    ssim_weight: float = 0.2
    aspect_weight: float = 0.5
    aspect_tau: float = math.log(4.0)
    scale_freeze_steps: int = 500
    use_clamp: bool = True
    use_aspect: bool = True
    use_freeze: bool = True
    log_scale_min: float = math.log(1e-3)
    log_scale_max: float = math.log(3.0)
    log_scale_spread: float = math.log(8.0)
    random_background: bool = True
    log_every: int = 100
    seed: int = 0
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"RefineConfig.steps must be >= 1, got {self.steps}")
        if self.log_scale_min >= self.log_scale_max:
            raise ValueError("RefineConfig needs log_scale_min < log_scale_max")
        if self.log_scale_spread <= 0 or self.aspect_tau <= 0:
            raise ValueError("RefineConfig.log_scale_spread and aspect_tau must be > 0")
        for name in ATTRIBUTES:
            if getattr(self, f"lr_{name}") < 0:
                raise ValueError(f"RefineConfig.lr_{name} must be >= 0")


@dataclass
class RefineResult:
    """The refined local attributes (same N and binding as the layout), the reference frame, the
    logged history (step, loss, max_ar) and held-out metrics before and after."""

    local: LocalGaussians
    reference_frame: int
    history: list[dict]
    metrics: dict


def _frames(clip: Clip) -> list[tuple[int, int]]:
    return [(t, c) for t in range(clip.num_timesteps) for c in range(clip.num_cameras)]


def _posed(head: HeadModel, clip: Clip) -> torch.Tensor:
    return head.pose_track(clip.flame.as_dict())


def _camera(clip: Clip, t: int, c: int) -> Cameras:
    h, w = clip.image_size
    return Cameras(torch.as_tensor(clip.viewmats[t, c])[None], torch.as_tensor(clip.Ks[t, c])[None], w, h)


def _target(clip: Clip, t: int, c: int, background: torch.Tensor) -> torch.Tensor:
    image = torch.as_tensor(clip.images[t, c], dtype=torch.float32) / 255.0
    matte = torch.as_tensor(clip.mattes[t, c], dtype=torch.float32)[..., None] / 255.0
    return (image * matte + background * (1 - matte))[None]


@torch.no_grad()
def evaluate(head: HeadModel, local: LocalGaussians, clip: Clip, render_cfg: RenderConfig) -> dict:
    """Held-out PSNR / SSIM over every frame of `clip` on a black background (ground truth matted)."""
    verts = _posed(head, clip)
    black = torch.zeros(3)
    psnrs, ssims = [], []
    for t, c in _frames(clip):
        out = render(bind(local, verts[t], head.faces, head.layout), _camera(clip, t, c), black, render_cfg)
        target = _target(clip, t, c, black)
        psnrs.append(psnr(out.image.clamp(0, 1), target).item())
        ssims.append(ssim(out.image.clamp(0, 1), target).item())
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "lpips": None}


@torch.no_grad()
def novel_view_max_ar(head: HeadModel, local: LocalGaussians, verts: torch.Tensor, clip: Clip, t: int,
                      render_cfg: RenderConfig, yaws=(-90.0, -45.0, 45.0, 90.0), pitches=(-30.0, 30.0)) -> float:
    """maxAR seen from views the training camera never had: camera 0 of frame t orbited about the
    head's centre by each yaw (about +y) and each pitch (about +x). Spikes that point along the
    training view direction are invisible in training renders, and so to the aspect penalty, but
    not here (METHOD §4: spikes show in novel views). verts: frame t's posed vertices (V, 3)."""
    centre = verts.mean(0)
    view = torch.as_tensor(clip.viewmats[t, 0], dtype=torch.float32)
    eye = -view[:3, :3].T @ view[:3, 3]
    offsets = []
    for yaw in yaws:
        a = math.radians(yaw)
        rot = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        offsets.append(rot @ (eye - centre))
    for pitch in pitches:
        a = math.radians(pitch)
        rot = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
        offsets.append(rot @ (eye - centre))
    viewmats = look_at(centre + torch.stack(offsets), centre.expand(len(offsets), 3))
    h, w = clip.image_size
    Ks = torch.as_tensor(clip.Ks[t, 0], dtype=torch.float32).expand(len(offsets), 3, 3)
    out = render(bind(local, verts, head.faces, head.layout), Cameras(viewmats, Ks, w, h), torch.zeros(3), render_cfg)
    return max_aspect_ratio(out)


def _lr_factor(step: int, total: int, final: float) -> float:
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def refine_subject(head: HeadModel, train: Clip, cfg: RefineConfig, test: Clip | None = None,
                   init: LocalGaussians | None = None, progress=None, on_log=None,
                   generator=None) -> RefineResult:
    """Refine one subject on `train`; evaluate on `test` (held-out frames) before and after.

    The start is `init` if given, else the `generator`'s (a sa0.model.inference.TrainedGenerator)
    prediction for the reference frame from up to K frames of `train`, else flat discs (neutral_init).
    progress(step) is called every step; on_log(record) with each logged {step, loss, max_ar}.
    """
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    verts = _posed(head, train)
    ref = choose_reference_frame(train.flame.jaw, rng)
    if init is None and generator is not None:
        from sa0.model.inference import predict_local, spread_sources

        sources = spread_sources(train.num_timesteps, ref, generator.model.cfg.max_sources)
        init = predict_local(generator, train, sources, (ref, 0))
    if init is None:
        init = neutral_init(head, verts[ref], train, ref)
    if init.positions.shape[-2] != head.num_gaussians:
        raise ValueError(f"init has {init.positions.shape[-2]} Gaussians, the layout {head.num_gaussians}")
    params = {name: getattr(init, name).detach().clone().float().requires_grad_(True) for name in ATTRIBUTES}
    optimizer = torch.optim.Adam([{"params": [params[n]], "lr": getattr(cfg, f"lr_{n}"), "name": n} for n in ATTRIBUTES],
                                 foreach=True)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    metrics = {"initial": evaluate(head, LocalGaussians(**params), test, cfg.render)} if test is not None else {}
    frames = _frames(train)
    history, start = [], time.perf_counter()
    for step in range(cfg.steps):
        t, c = frames[int(rng.integers(len(frames)))]
        background = torch.rand(3) if cfg.random_background else torch.zeros(3)
        out = render(bind(LocalGaussians(**params), verts[t], head.faces, head.layout), _camera(train, t, c),
                     background, cfg.render)
        target = _target(train, t, c, background)
        loss = cfg.l1_weight * l1(out.image, target) + cfg.ssim_weight * (1 - ssim(out.image, target))
        regularise = step >= cfg.scale_freeze_steps
        if cfg.use_aspect and regularise:
            loss = loss + cfg.aspect_weight * aspect_penalty(out, cfg.aspect_tau)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.use_freeze and step < cfg.scale_freeze_steps:
            params["log_scales"].grad = None
        factor = _lr_factor(step, cfg.steps, cfg.lr_final_fraction)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        optimizer.step()
        if cfg.use_clamp and regularise:
            clamp_log_scales(params["log_scales"], cfg.log_scale_min, cfg.log_scale_max, cfg.log_scale_spread)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": float(loss.detach()), "max_ar": max_aspect_ratio(out)})
            if on_log is not None:
                on_log(history[-1])
        if progress is not None:
            progress(step)
    local = LocalGaussians(**{n: p.detach() for n, p in params.items()})
    if test is not None:
        metrics["final"] = evaluate(head, local, test, cfg.render)
    metrics["seconds"] = time.perf_counter() - start
    metrics["steps"] = cfg.steps
    metrics["max_ar"] = history[-1]["max_ar"]
    metrics["max_ar_novel"] = novel_view_max_ar(head, local, verts[ref], train, ref, cfg.render)
    return RefineResult(local, ref, history, metrics)

"""Refinement's configuration, result and evaluation: fit a subject's FLAME-bound Gaussians to its
video, layout frozen (METHOD §4).

Frozen: FLAME tracking, the texel -> face binding, the Gaussian count. Optimised: local position,
rotation, log-scale, colour and opacity, each with its own Adam learning rate and one cosine decay
over the run. Each step: a random training frame, FLAME posed (precomputed), bind, render over a
random background colour b, loss = l1 L1 + lssim (1 - SSIM 11x11) + [t >= start] w_aspect Laspect
against the ground truth composited over the same b by its matte. Anti-spike: log-scales frozen for
the first `scale_freeze_steps`; from then on, after every update, log-scales are clamped to
[log_scale_min, log_scale_max] with per-Gaussian spread <= log_scale_spread; the aspect penalty
starts at the same step. maxAR is logged every `log_every` steps.

The loop is sa0.refine.batched (refine_subjects: several subjects at once, each exactly as if
alone; refine_subject: one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sa0.config import RenderConfig
from sa0.data.schema import Clip
from sa0.gaussians import bind
from sa0.geometry import look_at
from sa0.head import HeadModel
from sa0.losses import max_aspect_ratio, psnr, ssim
from sa0.render.api import render
from sa0.types import Cameras, LocalGaussians


@dataclass(frozen=True, kw_only=True)
class RefineConfig:
    """Steps, per-attribute learning rates (decayed by a cosine to lr_final_fraction), loss weights
    and the anti-spike bounds (log-scales are in face-local units; tau and spread are logs).
    Unseen regions (sa0.refine.unseen): Gaussians the training views see at cos(normal, view) below
    unseen_fill_below start with their well-seen neighbours' colour (0: off); below unseen_visibility
    a prior of weight unseen_prior_weight pulls them toward their start (either 0: off); the mesh's
    outline from orbited views is a matte for the Gaussians' alpha with weight unseen_silhouette_weight
    (0: off; masks at most unseen_silhouette_size pixels; unseen_silhouette_face_only: outside the
    mesh only pixels nearer the face than the scalp, neck and back count, so hair and collar may stay;
    unseen_silhouette_band: also beyond the hair and shoulders the training mattes show around the
    cranium and the neck);
    unseen_smooth_weight pulls poorly seen texels' colours toward their UV neighbours'.
    Live reporting: the loss terms and maxAR every log_every steps, held-out PSNR / SSIM on up to
    eval_frames frames every eval_every steps (0: never), `images` render | truth snapshots."""

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
    unseen_visibility: float = 0.5
    unseen_fill_below: float = 0.3
    unseen_prior_weight: float = 0.0
    unseen_silhouette_weight: float = 2.0
    unseen_smooth_weight: float = 1.0
    unseen_silhouette_size: int = 256
    unseen_silhouette_face_only: bool = True
    unseen_silhouette_band: bool = True
    log_every: int = 100
    eval_every: int = 500
    eval_frames: int = 8
    images: int = 4
    seed: int = 0
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"RefineConfig.steps must be >= 1, got {self.steps}")
        if self.log_scale_min >= self.log_scale_max:
            raise ValueError("RefineConfig needs log_scale_min < log_scale_max")
        if min(self.unseen_visibility, self.unseen_fill_below, self.unseen_prior_weight,
               self.unseen_silhouette_weight, self.unseen_smooth_weight) < 0:
            raise ValueError("RefineConfig.unseen_* must be >= 0")
        if self.unseen_silhouette_size < 16:
            raise ValueError(f"RefineConfig.unseen_silhouette_size must be >= 16, got {self.unseen_silhouette_size}")
        if self.log_scale_spread <= 0 or self.aspect_tau <= 0:
            raise ValueError("RefineConfig.log_scale_spread and aspect_tau must be > 0")
        if self.log_every < 1 or self.eval_every < 0 or self.eval_frames < 1 or self.images < 0:
            raise ValueError("RefineConfig needs log_every >= 1, eval_every >= 0, eval_frames >= 1, images >= 0")
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


ATTRIBUTES = ("positions", "rotations", "log_scales", "colors", "opacity_logits")


def frames_of(clip: Clip) -> list[tuple[int, int]]:
    return [(t, c) for t in range(clip.num_timesteps) for c in range(clip.num_cameras)]


def camera_of(clip: Clip, t: int, c: int) -> Cameras:
    h, w = clip.image_size
    return Cameras(torch.as_tensor(clip.viewmats[t, c])[None], torch.as_tensor(clip.Ks[t, c])[None], w, h)


def target_of(clip: Clip, t: int, c: int, background: torch.Tensor) -> torch.Tensor:
    """(1, H, W, 3) on the background's device: the frame composited by its matte over `background`."""
    image = torch.as_tensor(clip.images[t, c]).to(background.device, torch.float32) / 255.0
    matte = torch.as_tensor(clip.mattes[t, c]).to(background.device, torch.float32)[..., None] / 255.0
    return (image * matte + background * (1 - matte))[None]


def _posed(head: HeadModel, clip: Clip) -> torch.Tensor:
    return head.pose_track(clip.flame.as_dict())


@torch.no_grad()
def evaluate(head: HeadModel, local: LocalGaussians, clip: Clip, render_cfg: RenderConfig,
             limit: int | None = None) -> dict:
    """Held-out PSNR / SSIM over every frame of `clip` (or `limit` of them, spread evenly) on a black
    background (ground truth matted)."""
    verts = _posed(head, clip)
    black = torch.zeros(3, device=verts.device)
    psnrs, ssims = [], []
    frames = frames_of(clip)
    if limit is not None and limit < len(frames):
        frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, limit).round()]
    for t, c in frames:
        out = render(bind(local, verts[t], head.faces, head.layout), camera_of(clip, t, c), black, render_cfg)
        target = target_of(clip, t, c, black)
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
    centre = verts.mean(0).cpu()
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
    out = render(bind(local, verts, head.faces, head.layout), Cameras(viewmats, Ks, w, h), None, render_cfg)
    return max_aspect_ratio(out)

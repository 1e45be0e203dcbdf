"""FLAME + camera from 2D landmarks, batched over all frames in torch (CPU or CUDA).

Unknowns: identity shape shared by the clip; per frame expression, jaw, global rotation,
translation and eyes (the eyes from the iris landmarks); one focal length for the clip (in units of
each frame's longer side, principal point at the frame centre). The camera is fixed, looking down
-z of FLAME's world (OpenCV axes: VIEW0), so head motion is in global rotation and translation
until `camera_from_pose` moves it into per-frame view matrices for the clip contract.

Loss: a robust (Cauchy) landmark term on residuals measured in units of the face's size (so a
distant face and a close one weigh the same), Gaussian priors on shape, expression, jaw and eyes,
and for video a temporal term on frame-to-frame changes of the per-frame parameters. Two stages:
rigid (pose, translation, focal) from a guessed depth, then everything.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from smplx.lbs import batch_rodrigues

from sa0.flame.landmarks import LandmarkLayer
from sa0.types import FlameParams

VIEW0 = np.diag([1.0, -1.0, -1.0, 1.0]).astype(np.float32)  # world -> OpenCV camera, looking down world -z
FACE_UNITS = 256.0  # residuals are expressed as pixels of a face this many pixels across


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """num_shape / num_expression: leading components fitted (the rest stay 0); rigid_steps, steps:
    Adam iterations of the two stages; robust: Cauchy scale in face pixels; w_*: prior and
    smoothness weights; focal: fixed focal length (units of the longer side) or None to fit it from
    `focal_init`; video: frames are consecutive (temporal term on)."""

    num_shape: int = 100
    num_expression: int = 50
    rigid_steps: int = 150
    steps: int = 500
    lr: float = 0.02
    robust: float = 4.0
    w_shape: float = 0.3
    w_expression: float = 0.3
    w_jaw: float = 30.0
    w_eyes: float = 3.0
    w_smooth: float = 300.0
    w_focal: float = 1.0
    focal: float | None = None
    focal_init: float = 1.8
    video: bool = True

    def __post_init__(self):
        if self.num_shape < 0 or self.num_expression < 0 or self.rigid_steps < 0 or self.steps < 1:
            raise ValueError("FitConfig: component counts and rigid_steps must be >= 0, steps >= 1")
        if self.focal is not None and self.focal <= 0:
            raise ValueError(f"FitConfig.focal must be > 0, got {self.focal}")


@dataclass
class FitResult:
    """params: FlameParams (T, ...) under VIEW0 (float32, CPU); focal (units of the longer side);
    projected (T, L, 2) fitted landmark pixels; error_px (T,) RMS distance to the observed ones;
    face_px (T,) the observed face size in pixels; loss: final total."""

    params: FlameParams
    focal: float
    projected: np.ndarray
    error_px: np.ndarray
    face_px: np.ndarray
    loss: float


def intrinsics(focal: float, height: int, width: int) -> np.ndarray:
    f = focal * max(height, width)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float32)


def project(points: torch.Tensor, focal_px: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """World points (T, L, 3) through VIEW0 -> pixels (T, L, 2); focal_px (T,), centre (T, 2)."""
    x, y, z = points[..., 0], -points[..., 1], (-points[..., 2]).clamp(min=1e-3)
    return torch.stack((x / z, y / z), -1) * focal_px[:, None, None] + centre[:, None, :]


@torch.no_grad()
def translation_from_spread(rest: torch.Tensor, obs: torch.Tensor, seen: torch.Tensor, focal_px: torch.Tensor,
                            centre: torch.Tensor) -> torch.Tensor:
    """(T, 3) translations putting the untranslated landmarks rest (T, L, 3) under the observed ones
    (T, L, 2; seen (T, L)): depth from the spread of the rest landmarks against the observed spread,
    then x, y from the observed centre (VIEW0; focal_px (T,), centre (T, 2))."""
    spread3 = (rest[..., :2] - rest[..., :2].mean(1, keepdim=True)).norm(dim=-1).mean(1)
    mean2 = (obs * seen[..., None]).sum(1) / seen.sum(1, keepdim=True)
    spread2 = ((obs - mean2[:, None]).norm(dim=-1) * seen).sum(1) / seen.sum(1)
    depth = focal_px * spread3 / spread2
    xy = (mean2 - centre) * depth[:, None] / focal_px[:, None]
    return torch.stack((xy[:, 0], -xy[:, 1], -depth), 1) - rest.mean(1)


def _cauchy(r2: torch.Tensor, scale: float) -> torch.Tensor:
    return scale**2 * torch.log1p(r2 / scale**2)


class _LandmarkProblem:
    """The fit's data (observed landmarks, seen mask, image geometry), its unknowns (shared shape,
    per-frame expression, jaw, eyes, rotation, translation, and the log focal) and its loss."""

    def __init__(self, layer: LandmarkLayer, observed: np.ndarray, sizes: np.ndarray, cfg: FitConfig,
                 device: torch.device):
        self.layer, self.cfg, self.device, dtype = layer.moved(device), cfg, device, torch.float32
        obs = torch.as_tensor(observed, dtype=dtype, device=device)
        self.seen = torch.isfinite(obs).all(-1)
        if not self.seen.any(1).all():
            raise ValueError("fit_landmarks: a frame has no landmark")
        self.obs = torch.where(self.seen[..., None], obs, torch.zeros_like(obs))
        self.t_count = obs.shape[0]
        hw = torch.as_tensor(sizes, dtype=dtype, device=device)
        self.longer, self.centre = hw.max(1).values, torch.stack((hw[:, 1], hw[:, 0]), 1) / 2
        seen = self.seen[..., None]
        big = torch.where(seen, self.obs, torch.full_like(self.obs, -1e9)).amax(1)
        small = torch.where(seen, self.obs, torch.full_like(self.obs, 1e9)).amin(1)
        self.face_px = (big - small).norm(dim=-1)  # (T,) observed landmark box diagonal
        self.units = FACE_UNITS / self.face_px
        t, zeros = self.t_count, self.zeros
        self.shape = zeros(1, min(cfg.num_shape, layer.num_shape)).requires_grad_()
        self.expr = zeros(t, min(cfg.num_expression, layer.num_expression)).requires_grad_()
        self.jaw, self.rot, self.eyes = zeros(t, 3).requires_grad_(), zeros(t, 3), zeros(t, 6).requires_grad_()
        self.log_f0 = float(np.log(cfg.focal or cfg.focal_init))
        self.log_f = torch.tensor(self.log_f0, dtype=dtype, device=device)
        self.trans = self.initial_translation().requires_grad_()
        self.rot.requires_grad_()
        self.log_f.requires_grad_(cfg.focal is None)

    def zeros(self, *shape) -> torch.Tensor:
        return torch.zeros(*shape, dtype=torch.float32, device=self.device)

    def params(self, translation: torch.Tensor) -> FlameParams:
        t, layer = self.t_count, self.layer
        pad = lambda x, n: torch.cat((x, self.zeros(x.shape[0], n - x.shape[1])), 1)  # noqa: E731
        return FlameParams(pad(self.shape.expand(t, -1), layer.num_shape), pad(self.expr, layer.num_expression),
                           self.rot, self.zeros(t, 3), self.jaw, self.eyes, translation)

    @torch.no_grad()
    def initial_translation(self) -> torch.Tensor:
        rest = self.layer(self.params(self.zeros(self.t_count, 3)))
        return translation_from_spread(rest, self.obs, self.seen, torch.exp(self.log_f) * self.longer, self.centre)

    def total(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (the loss: robust landmark term + priors + temporal smoothness, fitted pixels (T, L, 2))."""
        cfg, t = self.cfg, self.t_count
        pix = project(self.layer(self.params(self.trans)), torch.exp(self.log_f) * self.longer, self.centre)
        r2 = ((pix - self.obs) * self.units[:, None, None]).pow(2).sum(-1)
        loss = (_cauchy(r2, cfg.robust) * self.seen).sum(1).mean()
        loss = loss + cfg.w_shape * self.shape.pow(2).sum() + cfg.w_expression * self.expr.pow(2).sum(1).mean()
        loss = loss + cfg.w_jaw * (self.jaw[:, 1:].pow(2).sum(1) + 0.1 * self.jaw[:, 0].pow(2)).mean()
        loss = loss + cfg.w_eyes * self.eyes.pow(2).sum(1).mean()
        loss = loss + cfg.w_focal * (self.log_f - self.log_f0).pow(2)
        if cfg.video and t > 1:
            per_frame = torch.cat((self.expr, self.jaw, self.eyes, self.rot, self.trans * 10), 1)
            loss = loss + cfg.w_smooth * (per_frame[1:] - per_frame[:-1]).pow(2).sum() / (t - 1)
        return loss, pix

    def stages(self) -> list[tuple[int, list[torch.Tensor]]]:
        """Rigid first (rotation, translation, focal), then everything."""
        focal = [self.log_f] if self.cfg.focal is None else []
        return [(self.cfg.rigid_steps, [self.rot, self.trans] + focal),
                (self.cfg.steps, [self.shape, self.expr, self.jaw, self.eyes, self.rot, self.trans] + focal)]


def fit_landmarks(layer: LandmarkLayer, observed: np.ndarray, sizes: np.ndarray, cfg: FitConfig,
                  device: str | torch.device = "cpu", progress=None) -> FitResult:
    """observed: (T, L, 2) pixels in the layer's landmark order (NaN: not seen); sizes: (T, 2) as (H, W);
    progress: called with 1 after each Adam step (a progress bar's update)."""
    problem = _LandmarkProblem(layer, observed, sizes, cfg, torch.device(device))
    for steps, group in problem.stages():
        if steps == 0:
            continue
        opt = torch.optim.Adam([{"params": [p], "lr": cfg.lr * (0.25 if p is problem.trans else 1.0)} for p in group])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=cfg.lr * 0.02)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            problem.total()[0].backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress(1)
    with torch.no_grad():
        loss, pix = problem.total()
        seen = problem.seen
        err = ((pix - problem.obs).pow(2).sum(-1) * seen).sum(1) / seen.sum(1)
        out = problem.params(problem.trans)
    cpu = FlameParams(*(getattr(out, f.name).detach().float().cpu() for f in fields(out)))
    return FitResult(cpu, float(torch.exp(problem.log_f.detach())), pix.cpu().numpy(), err.sqrt().cpu().numpy(),
                     problem.face_px.cpu().numpy(), float(loss))


def camera_from_pose(layer: LandmarkLayer, params: FlameParams) -> tuple[np.ndarray, FlameParams]:
    """Move the rigid head motion (global rotation about the root joint, translation) into per-frame
    view matrices: -> viewmats (T, 4, 4) and the parameters with zero global rotation and translation,
    which pose to the same camera-space mesh."""
    with torch.no_grad():
        zero = torch.zeros_like(params.global_rot)
        still = FlameParams(params.shape, params.expression, zero, params.neck, params.jaw, params.eyes, zero)
        betas = torch.cat((params.shape, params.expression), 1).to(layer.j_template.dtype)
        root = (layer.j_template[0] + torch.einsum("bk,ck->bc", betas, layer.j_dirs[0])).double()
        rot = batch_rodrigues(params.global_rot.double())
        offset = root - (rot @ root[..., None])[..., 0] + params.translation.double()
    rigid = np.tile(np.eye(4), (len(rot), 1, 1))
    rigid[:, :3, :3] = rot.numpy()
    rigid[:, :3, 3] = offset.numpy()
    return (VIEW0.astype(np.float64) @ rigid).astype(np.float32), still

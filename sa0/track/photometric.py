"""The photometric stage: identity shape and per-frame pose, jaw and expression polished against
the pixels and the matte.

Landmarks pin the face to about a pixel but leave the rest of the head loose: the cranium, ears and
neck carry no landmark, so the fitted shape there is the prior's, and a head turned by a fraction of
a degree about the face keeps its landmarks while its outline moves by pixels. Refinement at ~40 dB
sees exactly those outline errors (on sa0's synthetic ground truth ~80% of the held-out error that
landmark tracking adds: benchmarks/results/track_cpu_202612.md). This stage renders a Gaussian head
bound to the fitted FLAME meshes with sa0's own differentiable renderer and fits, jointly: one set
of texel colours shared by all frames, a shared correction of the leading identity components, and
per-frame corrections of global rotation, translation, jaw and expression. The Gaussians keep their
rest places on the mesh (no free offsets), so only the mesh can move to explain an outline. Losses:
L1 against the matted crop on black, as refinement sees it, plus a silhouette term |alpha - matte|;
below the chin the term is one-sided (only alpha outside the matte counts), because a person matte
also holds the shoulders, which the FLAME neck must not stretch to cover. The Gaussians' alpha reaches
a pixel or more past the mesh's outline (more at a coarse UV layout), so fitting it to a camera's
matte would shrink the mesh by that much: the mattes are grown by the reach measured on the clip's
landmark fit (`alpha_reach`, `grown_mattes`), which puts the mesh's own outline on the matte's
(sa0's synthetic videos, drawn by Gaussians, already carry that reach in their mattes: `reach=False`
for them). The landmark loss stays on
as a weak anchor; an optional quadratic prior (w_stay) holds corrections near the landmark fit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from sa0.config import RenderConfig
from sa0.flame.landmarks import LandmarkLayer
from sa0.gaussians import bind, init_local_gaussians
from sa0.head import HeadModel
from sa0.render.api import render
from sa0.track.fit import VIEW0, _cauchy, project
from sa0.types import Cameras, FlameParams, LocalGaussians


@dataclass(frozen=True, kw_only=True)
class PhotoConfig:
    """visits: how often each frame is rendered: the stage runs ceil(visits x frames /
    frames_per_step) Adam steps (`steps_for`), the first `warmup` of them (at most a fifth)
    fitting the appearance only, so each frame's corrections get the same number of updates
    whatever the clip's length (on sa0's benchmark ~40, 80 and 160 visits left 0.7, 0.3 and
    0.1 dB of the refinement gap); frames_per_step: frames rendered per step; size: render side
    (crops are resampled to it); w_landmarks: weight of the landmark anchor (crop pixels,
    Cauchy; None: `landmark_weight(head)`); w_silhouette: weight of |alpha - matte| against the colour L1; w_stay: prior keeping
    corrections near the landmark fit; num_expression, num_shape: leading expression (per frame)
    and identity (shared) components corrected; face_box: None (the losses count over the whole
    crop) or the growth of the landmark box they are limited to; reach: grow the mattes by how far
    the Gaussians' alpha reaches past the mesh's outline (`alpha_reach`), so that the mesh's
    outline, not the Gaussians', lands on the matte's."""

    visits: int = 80
    warmup: int = 20
    frames_per_step: int = 4
    size: int = 256
    lr_rotation: float = 3e-3
    lr_translation: float = 5e-4
    lr_expression: float = 5e-3
    lr_shape: float = 2e-2
    lr_colors: float = 5e-2
    w_landmarks: float | None = None
    w_silhouette: float = 30.0
    w_stay: float = 0.0
    num_expression: int = 20
    num_shape: int = 100
    face_box: float | None = None
    reach: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.visits < 0 or self.warmup < 0 or self.frames_per_step < 1 or self.size < 16:
            raise ValueError("PhotoConfig: visits >= 0, warmup >= 0, frames_per_step >= 1, size >= 16")

    def steps_for(self, frames: int) -> int:
        """Adam steps for a clip of `frames` frames (a step renders at most `frames` of them)."""
        return -(-self.visits * frames // min(self.frames_per_step, max(frames, 1)))


def landmark_weight(head: HeadModel) -> float:
    """The landmark anchor's default weight for a head: 0.002 (sa0's synthetic benchmark: ~0.3 dB of
    refinement gap; 0.02 gave 1.5), 0.01 for the ICT head, the default for real videos, whose mattes
    hold hair a bald head model cannot fit: there 0.002 let the outline pull the face 2.90 px off
    MediaPipe's landmarks on lp_d0 (0.01: 2.47 px) for the same held-out PSNR after refinement
    (26.78 vs 26.81 dB, 1,000 steps)."""
    from sa0.heads import ICT_NAME, head_name

    return 0.01 if head_name(head.model_dir) == ICT_NAME else 0.002


def below_chin(observed: np.ndarray, size: int) -> np.ndarray:
    """(T, L, 2) crop-pixel landmarks (NaN: unseen) -> (T, S) bool: the pixel rows below the lowest
    seen landmark (the chin), where a person matte holds neck and shoulders as well as the head."""
    return np.arange(size)[None, :] + 0.5 > np.nanmax(observed[..., 1], axis=1)[:, None]


def loss_regions(boxes: np.ndarray, size: int, grow: float | None) -> np.ndarray:
    """(T, 4) landmark boxes in crop pixels -> (T, S, S) float: where the image loss counts (all of
    the crop, or with `grow` (a fraction of the box's side) only the grown landmark box)."""
    if grow is None:
        return np.ones((len(boxes), size, size), np.float32)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros((len(boxes), size, size), np.float32)
    for t, (x0, y0, x1, y1) in enumerate(boxes):
        g = grow * max(x1 - x0, y1 - y0)
        out[t] = (xs >= x0 - g) & (xs <= x1 + g) & (ys >= y0 - g) & (ys <= y1 + g)
    return out


def outline_length(mask: np.ndarray) -> float:
    """Length (px) of a binary mask's outline: its pixel-edge count x pi/4 (a staircase's edges
    overcount a straight edge's length by 4/pi averaged over directions)."""
    m = np.pad(mask.astype(np.int8), 1)
    return float(np.abs(np.diff(m, axis=0)).sum() + np.abs(np.diff(m, axis=1)).sum()) * np.pi / 4


def grown_mattes(mattes: np.ndarray, by: float) -> np.ndarray:
    """(T, S, S) uint8 mattes -> float32 in [0, 1], each grown outward by `by` px (a 1-px soft edge
    from the signed distance to its 0.5 contour; never below the matte itself)."""
    from scipy.ndimage import distance_transform_edt

    soft = np.asarray(mattes, np.float32) / 255.0
    if by <= 0:
        return soft
    out = np.empty_like(soft)
    for t, m in enumerate(soft):
        inside = m >= 0.5
        if inside.all() or not inside.any():  # nothing to grow (no outline): as it is
            out[t] = m
            continue
        sdf = np.where(inside, distance_transform_edt(inside) - 0.5, 0.5 - distance_transform_edt(~inside))
        out[t] = np.maximum(m, np.clip(sdf + by + 0.5, 0.0, 1.0))
    return out


@dataclass(frozen=True)
class PhotoTargets:
    """What the stage fits to, per used frame, at the stage's size S: Ks (T, 3, 3) crop intrinsics;
    images (T, S, S, 3) uint8; mattes (T, S, S) uint8; regions (T, S, S) where the loss counts
    (loss_regions); observed (T, L, 2) crop-pixel landmarks (NaN: unseen); has_matte (T,) bool:
    frames whose matte is real (the others get no silhouette term)."""

    Ks: np.ndarray
    images: np.ndarray
    mattes: np.ndarray
    regions: np.ndarray
    observed: np.ndarray
    has_matte: np.ndarray


class _Problem:
    """The stage's unknowns (texel colours, a shared shape correction, per-frame pose / jaw /
    expression corrections) and its losses, on `device`."""

    def __init__(self, head: HeadModel, layer: LandmarkLayer, params: FlameParams, targets: PhotoTargets,
                 cfg: PhotoConfig, device: torch.device):
        self.head = head if head.faces.device == device else head.to(device)
        self.layer, self.device = layer.moved(device), device
        self.t_count, self.size = targets.images.shape[0], targets.images.shape[1]
        as_t = lambda a, **kw: torch.as_tensor(a, device=device, **kw)  # noqa: E731
        self.start = FlameParams(*(getattr(params, f.name).to(device) for f in fields(params)))
        self.num_e = min(cfg.num_expression, self.start.expression.shape[1])
        self.num_s = min(cfg.num_shape, self.start.shape.shape[1])
        self.delta = {name: torch.zeros(self.t_count, width, device=device, requires_grad=True) for name, width in
                      (("global_rot", 3), ("translation", 3), ("jaw", 3), ("expression", self.num_e))}
        self.shape_delta = torch.zeros(1, self.num_s, device=device, requires_grad=True)
        self.local0 = init_local_gaussians(self.head.flame.v_template, self.head.faces, self.head.layout)
        self.matte = as_t(targets.mattes)[..., None].float() / 255.0
        self.target = as_t(targets.images).float() / 255.0 * self.matte  # on black, as refinement sees it
        self.weight = as_t(targets.regions)[..., None]
        observed = np.asarray(targets.observed, np.float32)
        self.one_sided = as_t(below_chin(observed, self.size))[..., None, None]
        self.w_sil = cfg.w_silhouette * as_t(targets.has_matte, dtype=torch.float32)
        colors = (self.target.sum((0, 1, 2)) / self.matte.sum((0, 1, 2)).clamp(min=1)).expand(len(self.local0.colors), 3)
        self.colors = torch.logit(colors.clamp(0.02, 0.98)).clone().requires_grad_()
        self.view, self.Ks = as_t(VIEW0), as_t(targets.Ks, dtype=torch.float32)
        obs = as_t(observed, dtype=torch.float32)
        self.seen = torch.isfinite(obs).all(-1)
        self.obs = torch.where(self.seen[..., None], obs, torch.zeros_like(obs))

    def posed(self, idx) -> FlameParams:
        p = {f.name: getattr(self.start, f.name)[idx] for f in fields(self.start)}
        for name in ("global_rot", "translation", "jaw"):
            p[name] = p[name] + self.delta[name][idx]
        p["expression"] = torch.cat((p["expression"][:, :self.num_e] + self.delta["expression"][idx],
                                     p["expression"][:, self.num_e:]), 1)
        p["shape"] = torch.cat((p["shape"][:, :self.num_s] + self.shape_delta, p["shape"][:, self.num_s:]), 1)
        return FlameParams(**p)

    def render(self, verts: torch.Tensor, t: int):
        l0 = self.local0
        local = LocalGaussians(l0.positions, l0.rotations, l0.log_scales, torch.sigmoid(self.colors), l0.opacity_logits)
        cams = Cameras(self.view[None], self.Ks[t][None], self.size, self.size)
        return render(bind(local, verts, self.head.faces, self.head.layout), cams, torch.zeros(3, device=self.device),
                      RenderConfig())

    def alpha_reach(self, frames: int = 4) -> float:
        """How far (crop px) the Gaussians' alpha (> 0.5) reaches past the mesh's outline at the
        start: (alpha's area - the mesh's area) / the outline's length, over up to `frames` frames."""
        from sa0.render.mesh import rasterize

        idx = torch.as_tensor(np.unique(np.linspace(0, self.t_count - 1, frames).round().astype(np.int64)))
        extra = length = 0.0
        with torch.no_grad():
            verts = self.head.flame(self.posed(idx.to(self.device)))
            for j, t in enumerate(idx.tolist()):
                alpha = self.render(verts[j], t).alpha[0, ..., 0].cpu().numpy() > 0.5
                mesh = rasterize(verts[j].double().cpu().numpy(), self.head.faces.cpu().numpy(), VIEW0.astype(np.float64),
                                 self.Ks[t].double().cpu().numpy(), self.size, self.size).mask
                extra += float(alpha.sum()) - float(mesh.sum())
                length += outline_length(mesh)
        return max(extra / max(length, 1.0), 0.0)

    def frame_loss(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (image loss per frame: colour L1 + weighted silhouette, landmark anchor per frame)."""
        p, head = self.posed(idx), self.head
        verts = head.flame(p)
        l1 = []
        for j, t in enumerate(idx.tolist()):
            out = self.render(verts[j], t)
            diff = (out.image[0] - self.target[t]).abs().sum(-1, keepdim=True) / 3
            gap = out.alpha[0] - self.matte[t]
            sil = torch.where(self.one_sided[t], gap.clamp(min=0), gap.abs())
            l1.append(((diff + self.w_sil[t] * sil) * self.weight[t]).sum() / self.weight[t].sum().clamp(min=1))
        pix = project(self.layer(p), self.Ks[idx, 0, 0], self.Ks[idx, :2, 2])  # square crops: fx = fy
        r2 = (pix - self.obs[idx]).pow(2).sum(-1)
        return torch.stack(l1), (_cauchy(r2, 2.0) * self.seen[idx]).sum(1)

    def image_loss_all(self) -> float:
        with torch.no_grad():
            return float(torch.cat([self.frame_loss(torch.arange(i, min(i + 8, self.t_count), device=self.device))[0]
                                    for i in range(0, self.t_count, 8)]).mean())

    def optimizer(self, cfg: PhotoConfig) -> torch.optim.Adam:
        lrs = {"global_rot": cfg.lr_rotation, "jaw": cfg.lr_rotation, "translation": cfg.lr_translation,
               "expression": cfg.lr_expression}
        return torch.optim.Adam([{"params": [self.colors], "lr": cfg.lr_colors},
                                 {"params": [self.shape_delta], "lr": cfg.lr_shape}]
                                + [{"params": [d], "lr": lrs[name]} for name, d in self.delta.items()])


def photometric_refine(head: HeadModel, layer: LandmarkLayer, params: FlameParams, targets: PhotoTargets,
                       cfg: PhotoConfig, device: str | torch.device = "cpu", progress=None) -> tuple[FlameParams, dict]:
    """params: landmark-fit FlameParams (T, ...) under VIEW0; targets: the frames at the stage's size.
    -> polished params (CPU) and {"l1_before", "l1_after"} (the stage's image loss, colour L1 plus
    weighted silhouette term, over all frames), "steps" and "reach_px" (the mattes' growth, `alpha_reach`).
    progress: called with 1 per step."""
    problem = _Problem(head, layer, params, targets, cfg, torch.device(device))
    reach = problem.alpha_reach() if cfg.reach else 0.0
    if reach > 0:
        problem.matte = torch.as_tensor(grown_mattes(targets.mattes, reach), device=problem.device)[..., None]
    before = problem.image_loss_all()
    w_landmarks = cfg.w_landmarks if cfg.w_landmarks is not None else landmark_weight(head)
    opt = problem.optimizer(cfg)
    t_count, steps = problem.t_count, cfg.steps_for(problem.t_count)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    order, cursor = torch.randperm(t_count, generator=gen), 0
    corrections = (problem.shape_delta, *problem.delta.values())
    for step in range(steps):
        if cursor + cfg.frames_per_step > t_count:
            order, cursor = torch.randperm(t_count, generator=gen), 0
        idx = order[cursor:cursor + cfg.frames_per_step].to(problem.device)
        cursor += cfg.frames_per_step
        for d in corrections:  # appearance only for the warm-up
            d.requires_grad_(step >= min(cfg.warmup, steps // 5))
        opt.zero_grad(set_to_none=True)
        l1, anchor = problem.frame_loss(idx)
        stay = sum(d[idx].pow(2).sum(1) for d in problem.delta.values()) + problem.shape_delta.pow(2).sum()
        (l1 + w_landmarks * anchor + cfg.w_stay * stay).mean().backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(1)
    after = problem.image_loss_all()
    with torch.no_grad():
        out = problem.posed(torch.arange(t_count, device=problem.device))
    return FlameParams(*(getattr(out, f.name).detach().float().cpu() for f in fields(out))), \
        {"l1_before": before, "l1_after": after, "steps": steps, "reach_px": reach}

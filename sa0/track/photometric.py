"""The photometric stage: per-frame pose, jaw and expression polished against the pixels.

Landmarks pin the head to about a pixel; refinement at ~40 dB needs better. This stage renders a
Gaussian head bound to the fitted FLAME meshes with sa0's own differentiable renderer and fits one
appearance shared by all frames (texel colours, small position offsets) jointly with per-frame
corrections of global rotation, translation, jaw and expression. Because the appearance is shared,
a frame can only lower its photometric error by moving its mesh into place. The landmark loss stays
on as an anchor, and corrections are held near the landmark fit by a quadratic prior. The image loss
is L1 against the matted crop on black, as refinement sees it (optionally only inside the landmark
box): the silhouette pins yaw and pitch, which landmarks leave loose (an asymmetric expression can
mimic a degree of yaw at a tenth of a pixel of landmark error).
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
    """steps: Adam steps (the first `warmup` fit the appearance only); frames_per_step: frames
    rendered per step; size: render side (crops are resampled to it); w_landmarks: weight of the
    landmark anchor (crop pixels, Cauchy); w_stay: prior keeping corrections near the landmark fit;
    num_expression: leading expression components corrected; face_box: None (the image loss counts
    over the whole crop) or the growth of the landmark box it is limited to."""

    steps: int = 300
    warmup: int = 60
    frames_per_step: int = 4
    size: int = 256
    lr_rotation: float = 5e-4
    lr_translation: float = 1e-4
    lr_expression: float = 5e-3
    lr_colors: float = 5e-2
    lr_positions: float = 2e-4
    w_landmarks: float = 0.02
    w_stay: float = 10.0
    num_expression: int = 20
    face_box: float | None = None
    seed: int = 0

    def __post_init__(self):
        if self.steps < 0 or self.frames_per_step < 1 or self.size < 16 or not 0 <= self.warmup <= self.steps:
            raise ValueError("PhotoConfig: steps >= warmup >= 0, frames_per_step >= 1, size >= 16")


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


def photometric_refine(head: HeadModel, layer: LandmarkLayer, params: FlameParams, Ks: np.ndarray,
                       images: np.ndarray, mattes: np.ndarray, regions: np.ndarray, observed: np.ndarray,
                       cfg: PhotoConfig, device: str | torch.device = "cpu",
                       progress=None) -> tuple[FlameParams, dict]:
    """params: landmark-fit FlameParams (T, ...) under VIEW0; Ks (T, 3, 3) crop intrinsics at
    images' size (T, S, S, 3) uint8; mattes (T, S, S) uint8; regions (T, S, S) (loss_regions);
    observed (T, L, 2) crop-pixel landmarks (NaN: unseen). -> polished params (CPU) and
    {"l1_before", "l1_after"} (masked L1 over all frames)."""
    device = torch.device(device)
    head = head if head.faces.device == device else head.to(device)
    layer = layer.moved(device)
    t_count, size = images.shape[0], images.shape[1]
    start = FlameParams(*(getattr(params, f.name).to(device) for f in fields(params)))
    num_e = min(cfg.num_expression, start.expression.shape[1])
    delta = {name: torch.zeros(t_count, width, device=device, requires_grad=True)
             for name, width in (("global_rot", 3), ("translation", 3), ("jaw", 3), ("expression", num_e))}
    local0 = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
    matte = torch.as_tensor(mattes, device=device)[..., None].float() / 255.0
    target = torch.as_tensor(images, device=device).float() / 255.0 * matte  # on black, as refinement sees it
    weight = torch.as_tensor(regions, device=device)[..., None]
    colors = (target.sum((0, 1, 2)) / matte.sum((0, 1, 2)).clamp(min=1)).expand(len(local0.colors), 3)
    colors = torch.logit(colors.clamp(0.02, 0.98)).clone().requires_grad_()
    offsets = torch.zeros_like(local0.positions, requires_grad=True)
    view = torch.as_tensor(VIEW0, device=device)
    Ks_t = torch.as_tensor(Ks, dtype=torch.float32, device=device)
    obs = torch.as_tensor(observed, dtype=torch.float32, device=device)
    seen = torch.isfinite(obs).all(-1)
    obs = torch.where(seen[..., None], obs, torch.zeros_like(obs))
    black = torch.zeros(3, device=device)
    render_cfg = RenderConfig()

    def posed(idx):
        p = {f.name: getattr(start, f.name)[idx] for f in fields(start)}
        for name in ("global_rot", "translation", "jaw"):
            p[name] = p[name] + delta[name][idx]
        p["expression"] = torch.cat((p["expression"][:, :num_e] + delta["expression"][idx],
                                     p["expression"][:, num_e:]), 1)
        return FlameParams(**p)

    def frame_loss(idx):
        p = posed(idx)
        verts = head.flame(p)
        local = LocalGaussians(local0.positions + offsets, local0.rotations, local0.log_scales,
                               torch.sigmoid(colors), local0.opacity_logits)
        l1 = []
        for j, t in enumerate(idx.tolist()):
            cams = Cameras(view[None], Ks_t[t][None], size, size)
            out = render(bind(local, verts[j], head.faces, head.layout), cams, black, render_cfg)
            diff = (out.image[0] - target[t]).abs() * weight[t]
            l1.append(diff.sum() / weight[t].sum().clamp(min=1) / 3)
        l1 = torch.stack(l1)
        pix = project(layer(p), Ks_t[idx, 0, 0], Ks_t[idx, :2, 2])  # square crops: fx = fy
        r2 = (pix - obs[idx]).pow(2).sum(-1)
        anchor = (_cauchy(r2, 2.0) * seen[idx]).sum(1)
        return l1, anchor

    def masked_l1_all() -> float:
        with torch.no_grad():
            return float(torch.cat([frame_loss(torch.arange(i, min(i + 8, t_count), device=device))[0]
                                    for i in range(0, t_count, 8)]).mean())

    before = masked_l1_all()
    lrs = {"global_rot": cfg.lr_rotation, "jaw": cfg.lr_rotation, "translation": cfg.lr_translation,
           "expression": cfg.lr_expression}
    opt = torch.optim.Adam([{"params": [colors], "lr": cfg.lr_colors}, {"params": [offsets], "lr": cfg.lr_positions}]
                           + [{"params": [d], "lr": lrs[name]} for name, d in delta.items()])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.steps, 1), eta_min=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(t_count, generator=gen)
    cursor = 0
    for step in range(cfg.steps):
        if cursor + cfg.frames_per_step > t_count:
            order, cursor = torch.randperm(t_count, generator=gen), 0
        idx = order[cursor:cursor + cfg.frames_per_step].to(device)
        cursor += cfg.frames_per_step
        for d in delta.values():
            d.requires_grad_(step >= cfg.warmup)
        opt.zero_grad(set_to_none=True)
        l1, anchor = frame_loss(idx)
        stay = sum(d[idx].pow(2).sum(1) for d in delta.values())
        loss = (l1 + cfg.w_landmarks * anchor + cfg.w_stay * stay).mean()
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(1)
    after = masked_l1_all()
    with torch.no_grad():
        out = posed(torch.arange(t_count, device=device))
    return FlameParams(*(getattr(out, f.name).detach().float().cpu() for f in fields(out))), \
        {"l1_before": before, "l1_after": after}

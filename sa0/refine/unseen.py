"""What the training views never saw, kept plausible (novel views of a monocular capture).

A phone video sees the face from the front; the cheeks' sides, the ears and the back of the head
are seen at grazing angles or not at all. Refinement alone lets those Gaussians take any colour,
opacity and shape that suits the training views (colours smeared from the silhouette, shapes that
are thin along the view direction), which a novel view shows as speckle and confetti. Three
switchable parts (RefineConfig.unseen_*), each measured by benchmarks/bm_novel_view.py:

* visibility: each Gaussian's best view over the training frames, max_t [its surface point is not
  behind the surface the mesh shows at its pixel of frame t] x cos(surface normal, direction to the
  camera), from the mesh rasteriser's depth (sa0.render.mesh: occlusion-aware, independent of the
  Gaussians);
* fill: at the start, Gaussians seen at less than `unseen_fill_below` take the inverse-distance mean
  colour of their 8 nearest well-seen Gaussians on the reference mesh, instead of whatever the
  reference image shows along their (grazing or blocked) line of sight;
* prior: a loss pulling each Gaussian's shape, place and opacity to that start, weighted by
  (1 - vis / v0)^2 (zero for Gaussians seen at v0 or better), and its colour where it was filled,
  weighted by (1 - vis / fill)^2: the views that show a region decide it, the others leave it where
  the mesh and the fill put it;
* smoothing: neighbouring texels' colours pulled together, weighted by (1 - vis / v0)^2 of the less
  seen of the two: a cheek seen at a grazing angle blends many Gaussians into each pixel, and the
  views let their colours scatter into blotches a side view shows (on lp_d0 at weight 1: the confetti
  behind the ears gone in the browser at +-30 and +-60 degrees, held-out frontal PSNR 29.79 -> 29.61);
* silhouette: the mesh's outline from views the capture never had as a matte for the Gaussians'
  alpha, outside the face counting only near the face (hair and collar may lie outside a bald
  head's outline): sa0.refine.silhouette.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.gaussians import face_frames, texel_points
from sa0.head import HeadModel
from sa0.refine.silhouette import NovelMasks, frame_camera, novel_masks, silhouette_loss, spread
from sa0.render.mesh import rasterize
from sa0.types import LocalGaussians

log = logging.getLogger(__name__)


def gaussian_visibility(head: HeadModel, verts: torch.Tensor, clip: Clip, frames: list[tuple[int, int]],
                        max_frames: int = 24, size: int = 256, tolerance: float = 0.004) -> torch.Tensor:
    """(N,) in [0, 1]: each Gaussian's best cos(normal, to camera) over up to `max_frames` training
    frames (spread evenly) in which its surface point is not hidden: it projects inside the frame and
    lies within `tolerance` metres of the nearest surface the mesh shows at that pixel. verts (T, V, 3)
    posed per timestep; frames are rasterised with their longer side at most `size` pixels."""
    faces = head.faces.cpu()
    best = torch.zeros(head.num_gaussians, dtype=torch.float64)
    for t, c in spread(frames, max_frames):
        v = verts[t].detach().cpu().double()
        view, K, rh, rw = frame_camera(clip, t, c, size)
        depth = torch.as_tensor(rasterize(v.numpy(), faces.numpy(), view, K, rh, rw).depth)
        view, K = torch.as_tensor(view), torch.as_tensor(K)
        rotations, _, _ = face_frames(v, faces)
        normals = rotations[head.layout.face_idx.cpu()][..., 1]
        points = texel_points(v, faces, head.layout)
        cam = points @ view[:3, :3].T + view[:3, 3]
        z = cam[:, 2].clamp(min=1e-6)
        px = (cam[:, 0] / z * K[0, 0] + K[0, 2]).floor().long()
        py = (cam[:, 1] / z * K[1, 1] + K[1, 2]).floor().long()
        inside = (px >= 0) & (px < rw) & (py >= 0) & (py < rh) & (cam[:, 2] > 0)
        front = torch.zeros_like(inside)
        front[inside] = cam[inside, 2] <= depth[py[inside], px[inside]] + tolerance
        centre = -view[:3, :3].T @ view[:3, 3]
        cos = (normals * torch.nn.functional.normalize(centre - points, dim=-1)).sum(-1).clamp(min=0)
        best = torch.maximum(best, cos * front)
    return best.float()


def fill_unseen_colors(colors: torch.Tensor, points: torch.Tensor, visibility: torch.Tensor,
                       below: float, neighbours: int = 8) -> torch.Tensor:
    """Colours (N, 3) with those of Gaussians seen less than `below` replaced by the inverse-distance
    mean of their `neighbours` nearest well-seen Gaussians (points (N, 3) on the reference mesh)."""
    from scipy.spatial import cKDTree

    known = (visibility >= below).cpu().numpy()
    if known.all() or not known.any():
        return colors
    pts = points.detach().cpu().double().numpy()
    tree = cKDTree(pts[known])
    dist, idx = tree.query(pts[~known], k=min(neighbours, int(known.sum())))
    dist, idx = dist.reshape(len(dist), -1), idx.reshape(len(idx), -1)
    weight = 1.0 / np.maximum(dist, 1e-6)
    source = colors.detach().cpu().double().numpy()[known]
    filled = colors.detach().clone()
    value = (source[idx] * weight[..., None]).sum(1) / weight.sum(1, keepdims=True)
    filled[torch.as_tensor(~known)] = torch.as_tensor(value, dtype=colors.dtype).to(colors.device)
    return filled


def prior_weights(visibility: torch.Tensor, v0: float) -> torch.Tensor:
    """(N,) (1 - vis / v0)^2 clipped to [0, 1]: 1 for unseen Gaussians, 0 from v0 up."""
    return (1 - visibility / v0).clamp(0, 1).pow(2)


def prior_loss(params: dict, init: LocalGaussians, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared distance of the attributes (one subject's row of each (N, k) tensor) from
    their start: positions and log-scales in face-local units, rotations, opacity logits with weights
    (2, N)[0], colours with weights[1] (colours are held only where the views do not show them, so the
    prior never fights what the views do show)."""
    total = 0.0
    for name, value in params.items():
        diff = (value - getattr(init, name).to(value.device)).reshape(value.shape[0], -1)
        w = weights[1 if name == "colors" else 0].to(value.device)
        total = total + (w * diff.pow(2).sum(-1)).mean()
    return total


@dataclass
class UnseenGuard:
    """What a subject's refinement holds for its unseen-region terms (each None when its part is off):
    the start the prior pulls toward and its per-Gaussian weights (2, N); UV neighbour pairs and
    their smoothing weights; the novel-view silhouettes."""

    anchor: LocalGaussians | None = None
    prior_weights: torch.Tensor | None = None
    smooth: tuple | None = None
    novel: NovelMasks | None = None

    def loss(self, head: HeadModel, row: dict, verts: torch.Tensor, step: int, cfg) -> torch.Tensor | float:
        """The weighted sum of the terms that are on, for one subject's attributes (row: name -> (N, k))."""
        total = 0.0
        if self.prior_weights is not None:
            total = total + cfg.unseen_prior_weight * prior_loss(row, self.anchor, self.prior_weights)
        if self.smooth is not None:
            total = total + cfg.unseen_smooth_weight * smooth_loss(row["colors"], *self.smooth)
        if self.novel is not None:
            total = total + cfg.unseen_silhouette_weight * silhouette_loss(head, row, verts, self.novel, step,
                                                                           cfg.render)
        return total


def guard_unseen(head: HeadModel, verts: torch.Tensor, train: Clip, frames: list[tuple[int, int]], ref: int,
                 init: LocalGaussians, neutral: bool, cfg) -> tuple[LocalGaussians, UnseenGuard]:
    """A refinement's start with the RefineConfig's unseen-region parts applied -> (start, the guard
    holding what the terms need). The colour fill applies to the generator-free start only (a
    generator predicts unseen regions itself)."""
    guard = UnseenGuard()
    if cfg.unseen_silhouette_weight > 0:
        guard.novel = novel_masks(head, verts, train, frames, size=cfg.unseen_silhouette_size,
                                  face_only=cfg.unseen_silhouette_face_only, band=cfg.unseen_silhouette_band)
        if guard.novel is not None and guard.novel.bands is not None:
            log.info("silhouette: in the training mattes hair reaches %.0f mm beyond the head's outline, collar "
                     "and shoulders %.0f mm beyond the neck's; novel views keep alpha within those bands",
                     *(1000 * guard.novel.bands[1:]))
    fill = neutral and cfg.unseen_fill_below > 0
    prior = cfg.unseen_visibility > 0 and cfg.unseen_prior_weight > 0
    smooth = cfg.unseen_visibility > 0 and cfg.unseen_smooth_weight > 0
    if not (fill or prior or smooth):
        return init, guard
    visibility = gaussian_visibility(head, verts, train, frames)
    if smooth:
        pairs = uv_neighbour_pairs(head.layout).to(init.colors.device)
        guard.smooth = (pairs, smooth_weights(visibility, pairs, cfg.unseen_visibility).to(init.colors.device))
    if fill:
        points = texel_points(verts[ref], head.faces, head.layout)
        colors = fill_unseen_colors(init.colors, points, visibility, cfg.unseen_fill_below)
        init = LocalGaussians(init.positions, init.rotations, init.log_scales, colors, init.opacity_logits)
    if prior:
        guard.anchor = LocalGaussians(*(getattr(init, f).detach().float() for f in LocalGaussians.__dataclass_fields__))
        colour_v0 = cfg.unseen_fill_below if cfg.unseen_fill_below > 0 else cfg.unseen_visibility
        guard.prior_weights = torch.stack((prior_weights(visibility, cfg.unseen_visibility),
                                           prior_weights(visibility, colour_v0))).to(init.positions.device)
    return init, guard


def uv_neighbour_pairs(layout) -> torch.Tensor:
    """(P, 2) Gaussian indices of horizontally and vertically adjacent valid texels."""
    index = layout.index_map
    pairs = []
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])):
        both = (a >= 0) & (b >= 0)
        pairs.append(torch.stack((a[both], b[both]), -1))
    return torch.cat(pairs)


def smooth_weights(visibility: torch.Tensor, pairs: torch.Tensor, v0: float) -> torch.Tensor:
    """(P,) per neighbour pair: the larger (1 - vis / v0)^2 of its two Gaussians."""
    w = prior_weights(visibility, v0)
    return torch.maximum(w[pairs[:, 0]], w[pairs[:, 1]])


def smooth_loss(colors: torch.Tensor, pairs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared colour difference of UV neighbours (one subject's colours (N, 3))."""
    diff = colors[pairs[:, 0]] - colors[pairs[:, 1]]
    return (weights * diff.pow(2).sum(-1)).mean()

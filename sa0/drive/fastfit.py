"""The live fit: one frame's landmarks -> expression, jaw, eyes, head rotation and translation.

The offline tracker (sa0.track.fit) fits a whole clip with Adam, identity included. Live, the
identity is the avatar's (its track's shape) and the focal length its camera's, so each frame is a
small least-squares problem (~70 unknowns, a few hundred residuals): the tracker's own loss (Cauchy
landmark term in face units, the same priors), plus a temporal term pulling toward the previous
frame's solution, minimised by a few Levenberg-Marquardt steps warm-started from that solution
(iteratively reweighted for the Cauchy term; the expression columns of the Jacobian from the layer's
skinned expression directions, the pose columns by forward differences in one batched pass). The first frame
starts from the rest pose at the depth its landmarks' spread gives and takes more steps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from sa0.flame.landmarks import LandmarkLayer
from sa0.track.fit import FACE_UNITS, project, translation_from_spread
from sa0.types import FlameParams


@dataclass(frozen=True, kw_only=True)
class LiveFitConfig:
    """iterations: LM steps per frame (first_iterations on the first); num_expression: leading
    expression components fitted (64: all of ICT's 53, whose order is alphabetical, so a cut would
    drop one side of a pair and pull the head round; FLAME's leading PCA components); w_*: the tracker's priors; w_temporal: pull toward
    the previous frame (0: none); robust: Cauchy scale in face pixels; damping: LM's lambda."""

    iterations: int = 3
    first_iterations: int = 30
    num_expression: int = 64
    robust: float = 4.0
    w_expression: float = 0.3
    w_jaw: float = 30.0
    w_eyes: float = 3.0
    w_temporal: float = 2.0
    damping: float = 1e-3

    def __post_init__(self):
        if self.iterations < 1 or self.first_iterations < 1 or self.num_expression < 0:
            raise ValueError("LiveFitConfig: iterations and first_iterations must be >= 1, num_expression >= 0")


class LiveFitter:
    """Fits frame after frame; `fit(landmarks)` -> (FlameParams (1, ...) with the avatar's shape,
    RMS landmark error in pixels). landmarks: (L, 2) pixels in the layer's order, NaN where unseen."""

    def __init__(self, layer: LandmarkLayer, shape: np.ndarray, focal: float, size: tuple[int, int],
                 cfg: LiveFitConfig | None = None):
        self.layer, self.cfg = layer, cfg or LiveFitConfig()
        dtype = torch.float32
        width = min(len(shape), layer.num_shape)
        self.shape = torch.zeros(1, layer.num_shape, dtype=dtype)
        self.shape[0, :width] = torch.as_tensor(np.asarray(shape, np.float32)[:width])
        self._posing = layer.with_identity(self.shape[0])  # the identity is fixed: baked in once
        h, w = size
        self.focal_px = torch.tensor([focal * max(h, w)], dtype=dtype)
        self.centre = torch.tensor([[w / 2, h / 2]], dtype=dtype)
        self.num_expr = min(self.cfg.num_expression, layer.num_expression)
        self.x: torch.Tensor | None = None  # expression, jaw (3), eyes (6), rotation (3), translation (3)
        n = self.num_expr + 15
        prior = torch.zeros(n)
        prior[:self.num_expr] = self.cfg.w_expression
        prior[self.num_expr:self.num_expr + 3] = self.cfg.w_jaw * torch.tensor([0.1, 1.0, 1.0])
        prior[self.num_expr + 3:self.num_expr + 9] = self.cfg.w_eyes
        self.prior = prior
        temporal = torch.full((n,), self.cfg.w_temporal)
        temporal[-3:] *= 100.0  # the tracker's translation x 10, squared
        self.temporal = temporal
        self.eps = 1e-3

    def params(self, x: torch.Tensor, baked: bool = False) -> FlameParams:
        """(n,) or (B, n) unknowns -> FlameParams with B rows (baked: a (B, 0) shape, for the layer
        with the identity baked in)."""
        x = x.reshape(-1, x.shape[-1])
        e, b = self.num_expr, x.shape[0]
        expr = torch.cat((x[:, :e], x.new_zeros(b, self.layer.num_expression - e)), 1)
        shape = x.new_zeros(b, 0) if baked else self.shape.expand(b, -1)
        return FlameParams(shape, expr, x[:, e + 9:e + 12], x.new_zeros(b, 3), x[:, e:e + 3],
                           x[:, e + 3:e + 9], x[:, e + 12:])

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, L, 2)."""
        b = x.shape[0]
        return project(self._posing(self.params(x, baked=True)), self.focal_px.expand(b), self.centre.expand(b, -1))

    @torch.no_grad()
    def _start(self, obs: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """Rest pose at the depth the observed spread gives, centred on the observed landmarks."""
        x = torch.zeros(self.num_expr + 15)
        rest = self._posing(self.params(x, baked=True))
        x[-3:] = translation_from_spread(rest, obs[None], seen[None], self.focal_px, self.centre)[0]
        return x

    def fit(self, landmarks: np.ndarray) -> tuple[FlameParams, float]:
        obs = torch.as_tensor(np.asarray(landmarks, np.float32))
        seen = torch.isfinite(obs).all(-1)
        if int(seen.sum()) < 10:
            raise ValueError(f"live fit: {int(seen.sum())} landmarks seen, need >= 10")
        obs = torch.where(seen[:, None], obs, torch.zeros_like(obs))
        first = self.x is None
        x = self._start(obs, seen) if first else self.x.clone()
        previous = x.clone()
        face_px = float((obs[seen].amax(0) - obs[seen].amin(0)).norm())
        unit = FACE_UNITS / face_px
        temporal = torch.zeros_like(self.temporal) if first else self.temporal
        for _ in range(self.cfg.first_iterations if first else self.cfg.iterations):
            x = self._step(x, previous, obs, seen, unit, temporal)
        self.x = x
        with torch.no_grad():
            err = (self._pixels(x[None])[0] - obs)[seen].pow(2).sum(-1).mean().sqrt()
        out = self.params(x)
        return FlameParams(*(getattr(out, f.name).detach() for f in fields(out))), float(err)

    def _projection_jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """d pixel / d world point through VIEW0 (sa0.track.fit.project), (L, 2, 3)."""
        x, y = points[:, 0], points[:, 1]
        z = (-points[:, 2]).clamp(min=1e-3)
        f, zero = self.focal_px[0], torch.zeros_like(x)
        return torch.stack((torch.stack((f / z, zero, f * x / z**2), -1),
                            torch.stack((zero, -f / z, -f * y / z**2), -1)), 1)

    def jacobian(self, x: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> residuals (L, 2) in pixels and their Jacobian (L, 2, n): expression columns from the
        layer's skinned expression directions, the 15 pose columns by forward differences in one
        batched pass."""
        e, n = self.num_expr, x.shape[0]
        steps = torch.cat((x.new_zeros(1, n), self.eps * torch.eye(n)[e:]))
        batch = x[None] + steps  # (1 + 15, n)
        points, expr = self._posing.forward_and_expression_jacobian(self.params(batch, baked=True))  # (16, L, 3)
        pix = project(points, self.focal_px.expand(len(batch)), self.centre.expand(len(batch), -1))
        pose = (pix[1:] - pix[0]).permute(1, 2, 0) / self.eps  # (L, 2, 15)
        expr = expr[0, :, :, :e]  # (L, 3, e)
        return pix[0] - obs, torch.cat((self._projection_jacobian(points[0]) @ expr, pose), -1)

    @torch.no_grad()
    def _step(self, x, previous, obs, seen, unit, temporal) -> torch.Tensor:
        """One Levenberg-Marquardt step on robust landmarks + priors + temporal term."""
        res, jac = self.jacobian(x, obs)
        r, jac = (res * unit)[seen].reshape(-1), (jac * unit)[seen].reshape(-1, x.shape[0])
        c2 = self.cfg.robust ** 2
        weight = (1.0 / (1.0 + r.reshape(-1, 2).pow(2).sum(-1) / c2)).repeat_interleave(2)  # Cauchy IRLS
        jw = jac * weight[:, None]
        hess = jw.T @ jac + torch.diag(self.prior + temporal)
        grad = jw.T @ r + self.prior * x + temporal * (x - previous)
        hess = hess + self.cfg.damping * torch.diag(hess.diagonal().clamp_min(1e-6))
        return x - torch.linalg.solve(hess, grad)

"""Which frames make an example: K sources + 1 target (METHOD §2 "Source sampler", §3).

Pure functions of clip metadata and a numpy Generator, so they are testable without Ray and
deterministic per seed. Frames are (timestep, camera) pairs.

Phase 1 (monocular-temporal): the target is a uniform frame; source[0] is drawn by a softmax over
w_dir * (1 - cos) of the head-relative view directions plus w_expr * the expression distance
(normalised by its mean over the candidates), divided by a temperature annealed linearly from
2.0 to 0.5 over the first quarter of training. The method leaves the sign open; sa0 uses the
dissimilarity itself as the logit, so annealing moves from near-uniform toward harder (more
different) source-target pairs. The other K - 1 sources are uniform over the remaining frames.
Phase 2 (multi-view-spatial): with probability `cross_camera_prob` (0.75) K + 1 different cameras
at one timestep, else K + 1 different timesteps (each with a random camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    """max_sources: K is uniform in 1..max_sources; temperatures and annealing fraction of training;
    dir_weight / expr_weight: the dissimilarity mix; cross_camera_prob: phase-2 cross-camera share."""

    max_sources: int = 4
    temperature_start: float = 2.0
    temperature_end: float = 0.5
    anneal_fraction: float = 0.25
    dir_weight: float = 1.0
    expr_weight: float = 1.0
    cross_camera_prob: float = 0.75

    def __post_init__(self):
        if not 1 <= self.max_sources <= 16:
            raise ValueError(f"SamplerConfig.max_sources must be in [1, 16], got {self.max_sources}")
        if self.temperature_start <= 0 or self.temperature_end <= 0:
            raise ValueError("SamplerConfig temperatures must be > 0")
        if not 0 <= self.anneal_fraction <= 1 or not 0 <= self.cross_camera_prob <= 1:
            raise ValueError("SamplerConfig.anneal_fraction and cross_camera_prob must be in [0, 1]")


def temperature_at(step, total_steps: int, cfg: SamplerConfig):
    """Linear anneal from temperature_start to temperature_end over the first anneal_fraction
    (step may be a number or an array of steps)."""
    span = max(1.0, cfg.anneal_fraction * total_steps)
    frac = np.clip(np.asarray(step, np.float64) / span, 0.0, 1.0)
    out = cfg.temperature_start + frac * (cfg.temperature_end - cfg.temperature_start)
    return float(out) if out.ndim == 0 else out


def view_directions(viewmats: np.ndarray, global_rot: np.ndarray) -> np.ndarray:
    """Head-relative view direction per frame: third column of R_cam R_head, (T, C, 3).

    viewmats (T, C, 4, 4) world-to-camera; global_rot (T, 3) FLAME axis-angle head rotation.
    """
    head = Rotation.from_rotvec(global_rot.astype(np.float64)).as_matrix()  # (T, 3, 3)
    combined = viewmats[..., :3, :3].astype(np.float64) @ head[:, None]
    return combined[..., :, 2]


def _draw_k(rng: np.random.Generator, cfg: SamplerConfig, available: int) -> int:
    return int(min(rng.integers(1, cfg.max_sources + 1), available))


def sample_phase1(rng, directions: np.ndarray, expressions: np.ndarray, temperature: float, cfg: SamplerConfig):
    """Monocular clip of T frames (camera 0): -> (sources [(t, 0)...], target (t, 0)). Needs T >= 2."""
    num = directions.shape[0]
    if num < 2:
        raise ValueError(f"phase-1 sampling needs at least 2 frames, got {num}")
    target = int(rng.integers(num))
    candidates = np.array([t for t in range(num) if t != target])
    d = directions[:, 0] / np.linalg.norm(directions[:, 0], axis=-1, keepdims=True)
    dir_dissim = 1.0 - d[candidates] @ d[target]
    expr = np.linalg.norm(expressions[candidates] - expressions[target], axis=-1)
    expr = expr / max(expr.mean(), 1e-8)
    logits = (cfg.dir_weight * dir_dissim + cfg.expr_weight * expr) / temperature
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    first = int(rng.choice(candidates, p=probs))
    k = _draw_k(rng, cfg, len(candidates))
    rest = [t for t in candidates if t != first]
    others = rng.choice(rest, size=k - 1, replace=False).tolist() if k > 1 else []
    return [(first, 0)] + [(int(t), 0) for t in others], (target, 0)


def sample_phase2(rng, num_timesteps: int, num_cameras: int, cfg: SamplerConfig):
    """Multi-view clip: -> (sources, target) as (t, c) pairs, cross-camera or cross-time."""
    cross_camera = num_cameras >= 2 and (num_timesteps < 2 or rng.random() < cfg.cross_camera_prob)
    if cross_camera:
        t = int(rng.integers(num_timesteps))
        k = _draw_k(rng, cfg, num_cameras - 1)
        cams = rng.choice(num_cameras, size=k + 1, replace=False)
        frames = [(t, int(c)) for c in cams]
    else:
        if num_timesteps < 2:
            raise ValueError("phase-2 sampling needs 2 cameras or 2 timesteps")
        k = _draw_k(rng, cfg, num_timesteps - 1)
        times = rng.choice(num_timesteps, size=k + 1, replace=False)
        frames = [(int(t), int(rng.integers(num_cameras))) for t in times]
    return frames[1:], frames[0]

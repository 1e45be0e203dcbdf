"""Synthetic clips: ground-truth avatars rendered by sa0 itself (for tests, demos, and domain studies).

Each subject gets a random identity (FLAME shape) and appearance (skin tone, hair colour and
hairline, eyebrows, lips, iris colour), painted per Gaussian from its texel's position on the rest
mesh relative to the eye joints, so it works on real FLAME as well as on the synthetic head. Each
clip animates expression, jaw, eyes and head pose along smooth random trajectories, seen by one
slowly moving camera (mono) or by C fixed cameras around the head (multiview). Images are rendered
with sa0's renderer over a plain background, mattes are the rendered alpha, face boxes enclose the
projected face region. A `Domain` sets lighting and texture style, so distinct domains can be
generated for cross-domain evaluation. Everything is deterministic per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sa0.config import RenderConfig
from sa0.data.schema import FLAME_FIELDS, Clip, ClipMeta, ClipSource, FlameTrack, Timestep, materialise
from sa0.gaussians import bind, face_frames, init_local_gaussians, texel_points
from sa0.geometry import look_at
from sa0.head import HeadModel
from sa0.heads import head_name
from sa0.render.api import render
from sa0.types import Cameras, FlameParams, LocalGaussians

SKIN_LIGHT, SKIN_DARK = np.array([0.96, 0.80, 0.69]), np.array([0.34, 0.22, 0.15])
HAIR_COLORS = np.array([[0.05, 0.04, 0.04], [0.25, 0.15, 0.08], [0.78, 0.62, 0.35], [0.55, 0.22, 0.08], [0.6, 0.6, 0.6]])
IRIS_COLORS = np.array([[0.25, 0.42, 0.6], [0.3, 0.45, 0.25], [0.35, 0.2, 0.1]])


@dataclass(frozen=True, kw_only=True)
class Domain:
    """Rendering style of a synthetic dataset: name, light direction (camera-independent, world),
    ambient term, light tint, texture saturation and per-Gaussian colour noise, background grey."""

    name: str = "studio"
    light_dir: tuple[float, float, float] = (0.3, 0.5, 1.0)
    ambient: float = 0.35
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    noise: float = 0.02
    background: float = 0.0

    def __post_init__(self):
        if not 0 <= self.ambient <= 1:
            raise ValueError(f"Domain.ambient must be in [0, 1], got {self.ambient}")
        if self.saturation < 0 or self.noise < 0:
            raise ValueError(f"Domain.saturation and noise must be >= 0, got {self.saturation}, {self.noise}")


DOMAINS = {
    "studio": Domain(),
    "outdoor": Domain(name="outdoor", light_dir=(-0.6, 0.9, 0.4), ambient=0.5, tint=(1.0, 0.95, 0.85),
                      saturation=1.3, noise=0.05, background=0.6),
    "lowkey": Domain(name="lowkey", light_dir=(1.0, 0.1, 0.3), ambient=0.15, tint=(0.9, 0.95, 1.1),
                     saturation=0.7, noise=0.01, background=0.1),
}


@dataclass(frozen=True)
class Subject:
    name: str
    shape: np.ndarray  # (S,)
    albedo: torch.Tensor  # (N, 3)
    face_mask: torch.Tensor  # (N,) bool, for face boxes


def _regions(head: HeadModel):
    """Texel rest positions relative to the eyes: (p (N, 3), eye centre (3,), eye texels (N,) bool)."""
    rest = head.flame.v_template
    with torch.no_grad():
        _, joints = head.flame.forward_with_joints(FlameParams.zeros(1, head.flame.num_shape, head.flame.num_expression))
    eyes = joints[0, 3:5]
    points = texel_points(rest, head.faces, head.layout)
    weights = head.flame.lbs_weights[head.faces[head.layout.face_idx]].mean(1)
    on_eyeball = weights[:, 3:].sum(-1) > 0.5
    return points - eyes.mean(0), eyes, on_eyeball


def make_subject(head: HeadModel, rng: np.random.Generator, name: str, domain: Domain) -> Subject:
    p, eyes, on_eyeball = _regions(head)
    x, y, z = p[:, 0].numpy(), p[:, 1].numpy(), p[:, 2].numpy()
    n = len(x)
    half_eye_gap = float(abs(eyes[0, 0] - eyes[1, 0])) / 2
    skin = SKIN_LIGHT + rng.uniform() * (SKIN_DARK - SKIN_LIGHT)
    colors = np.tile(skin, (n, 1))
    front = z > -0.01
    face = front & (y < 0.035) & (y > -0.12) & (np.abs(x) < 0.075)
    hairline = rng.uniform(0.03, 0.06)
    hair = (y > hairline - 0.9 * np.clip(-z, 0, None)) & ~(face & (y < hairline))
    colors[hair] = HAIR_COLORS[rng.integers(len(HAIR_COLORS))]
    brow_y = rng.uniform(0.018, 0.028)
    brows = front & (np.abs(y - brow_y) < 0.005) & (np.abs(np.abs(x) - half_eye_gap) < 0.02)
    colors[brows] = 0.5 * colors[brows] * HAIR_COLORS[rng.integers(len(HAIR_COLORS))] + 0.1
    lips = front & (np.abs(y + rng.uniform(0.062, 0.07)) < 0.008) & (np.abs(x) < 0.022)
    colors[lips] = skin * np.array([0.85, 0.55, 0.55])
    eyeball = on_eyeball.numpy()
    front_of_eye = eyeball & (z > np.percentile(z[eyeball], 60) if eyeball.any() else eyeball)
    colors[eyeball] = [0.95, 0.95, 0.93]
    colors[front_of_eye] = IRIS_COLORS[rng.integers(len(IRIS_COLORS))]
    if eyeball.any():
        colors[eyeball & (z > np.percentile(z[eyeball], 92))] = 0.03
    grey = colors.mean(1, keepdims=True)
    colors = grey + domain.saturation * (colors - grey) + rng.normal(0, domain.noise, size=colors.shape)
    shape = np.zeros(head.flame.num_shape, dtype=np.float32)
    shape[: min(20, len(shape))] = rng.normal(0, 0.8, size=min(20, len(shape)))
    return Subject(name, shape, torch.as_tensor(np.clip(colors, 0, 1), dtype=torch.float32),
                   torch.as_tensor(face & ~hair))


def _trajectory(rng, timesteps: int, dims: int, scale, speed: float = 1.0) -> np.ndarray:
    """Smooth random paths: sums of three sinusoids per dimension, (T, dims)."""
    t = np.arange(timesteps)[:, None] / max(timesteps - 1, 1)
    out = np.zeros((timesteps, dims))
    for _ in range(3):
        freq = rng.uniform(0.5, 2.0, size=dims) * speed
        phase = rng.uniform(0, 2 * np.pi, size=dims)
        out += np.sin(2 * np.pi * freq * t + phase) / 3
    return (out * np.asarray(scale)).astype(np.float32)


def make_motion(head: HeadModel, subject: Subject, rng, timesteps: int) -> FlameTrack:
    num_expr = head.flame.num_expression
    expression = np.zeros((timesteps, num_expr), dtype=np.float32)
    k = min(10, num_expr)
    expression[:, :k] = _trajectory(rng, timesteps, k, 1.2)
    jaw = np.zeros((timesteps, 3), dtype=np.float32)
    jaw[:, 0] = np.clip(_trajectory(rng, timesteps, 1, 0.3)[:, 0] + 0.05, 0, 0.35)
    eyes = np.repeat(_trajectory(rng, timesteps, 3, [0.15, 0.25, 0.0]), 2, axis=0).reshape(timesteps, 6)
    return FlameTrack(
        shape=np.tile(subject.shape, (timesteps, 1)),
        expression=expression,
        global_rot=_trajectory(rng, timesteps, 3, [0.15, 0.35, 0.08], speed=0.5),
        neck=_trajectory(rng, timesteps, 3, [0.05, 0.1, 0.03], speed=0.5),
        jaw=jaw,
        eyes=eyes,
        translation=np.zeros((timesteps, 3), dtype=np.float32),
    )


def make_cameras(kind: str, rng, timesteps: int, views: int, resolution: int, centre: np.ndarray):
    """-> viewmats (T, C, 4, 4), Ks (T, C, 3, 3): mono = one slowly moving camera, multiview = C fixed."""
    if kind == "mono":
        azimuth = _trajectory(rng, timesteps, 1, 0.25, speed=0.3)[:, 0][:, None]
        elevation = _trajectory(rng, timesteps, 1, 0.1, speed=0.3)[:, 0][:, None]
        distance = np.full((timesteps, 1), rng.uniform(0.7, 0.8))
    elif kind == "multiview":
        azimuth = np.tile(np.linspace(-1.1, 1.1, views)[None], (timesteps, 1)) if views > 1 else np.zeros((timesteps, 1))
        elevation = np.tile(rng.uniform(-0.2, 0.3, size=views)[None], (timesteps, 1))
        distance = np.tile(rng.uniform(0.7, 0.85, size=views)[None], (timesteps, 1))
    else:
        raise ValueError(f"kind must be 'mono' or 'multiview', got {kind!r}")
    eye = np.stack((np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)), -1)
    eye = centre + distance[..., None] * eye
    viewmats = look_at(torch.as_tensor(eye, dtype=torch.float32),
                       torch.as_tensor(np.broadcast_to(centre, eye.shape).copy(), dtype=torch.float32)).numpy()
    focal = 0.5 * resolution / math.tan(math.radians(13.0))
    K = np.array([[focal, 0, resolution / 2], [0, focal, resolution / 2], [0, 0, 1]], dtype=np.float32)
    return viewmats.astype(np.float32), np.broadcast_to(K, viewmats.shape[:2] + (3, 3)).copy()


def _shade(head, subject, verts, domain: Domain) -> torch.Tensor:
    rotations, _, _ = face_frames(verts, head.faces)
    normals = rotations[head.layout.face_idx][..., 1]
    light = torch.nn.functional.normalize(torch.tensor(domain.light_dir), dim=0)
    lambert = domain.ambient + (1 - domain.ambient) * (normals @ light).clamp(min=0)
    return (subject.albedo * lambert[:, None] * torch.tensor(domain.tint)).clamp(0, 1)


def render_clip(head: HeadModel, subject: Subject, kind: str, timesteps: int, views: int, resolution: int,
                domain: Domain, rng, clip_id: str, dataset: str, split: str = "train") -> Clip:
    """Render one clip of `subject` (see the module docstring)."""
    return materialise(render_source(head, subject, kind, timesteps, views, resolution, domain, rng, clip_id, dataset,
                                     split))


def render_source(head: HeadModel, subject: Subject, kind: str, timesteps: int, views: int, resolution: int,
                  domain: Domain, rng, clip_id: str, dataset: str, split: str = "train") -> ClipSource:
    """The same clip as a stream: each timestep is rendered when the consumer asks for it."""
    flame = make_motion(head, subject, rng, timesteps)
    params = FlameParams(*(torch.as_tensor(a) for a in flame.as_dict().values()))
    with torch.no_grad():
        verts = head.flame(params)
        centre = (verts[0].amax(0) + verts[0].amin(0)).numpy() / 2 + np.array([0, 0.02, 0])
    views = 1 if kind == "mono" else views
    viewmats, Ks = make_cameras(kind, rng, timesteps, views, resolution, centre)
    local = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
    bg = torch.full((3,), domain.background)
    meta = ClipMeta(subject=subject.name, clip_id=clip_id, dataset=dataset, domain=domain.name, split=split)

    def frames():
        for t in range(timesteps):
            with torch.no_grad():
                colors = _shade(head, subject, verts[t], domain)
                g = bind(LocalGaussians(local.positions, local.rotations, local.log_scales, colors, local.opacity_logits),
                         verts[t], head.faces, head.layout)
                cams = Cameras(torch.as_tensor(viewmats[t]), torch.as_tensor(Ks[t]), resolution, resolution)
                out = render(g, cams, bg, RenderConfig())
            boxes = np.zeros((views, 4), dtype=np.float32)
            for c in range(views):
                visible = subject.face_mask & (out.radii[c] > 0).all(-1)  # culled Gaussians have no 2D position
                face = out.means2d[c, visible] if visible.any() else out.means2d.new_zeros(1, 2)
                lo, hi = face.amin(0).numpy(), face.amax(0).numpy()
                boxes[c] = np.concatenate((np.clip(lo, 0, resolution - 1), np.clip(hi, lo + 1, resolution)))
            yield Timestep((out.image.clamp(0, 1) * 255).round().to(torch.uint8).numpy(),
                           (out.alpha[..., 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy(),
                           viewmats[t], Ks[t], boxes, {name: getattr(flame, name)[t] for name in FLAME_FIELDS},
                           f"synthetic {meta.key} frame {t}")

    return ClipSource(meta, frames, f"synthetic clip '{meta.key}'", {"head": head_name(head.model_dir)})


def synthetic_clips(head: HeadModel, kind: str, subjects: int, clips_per_subject: int, timesteps: int, views: int,
                    resolution: int, domain: Domain, seed: int = 0, test_subjects: int = 0, dataset: str | None = None,
                    stream: bool = False):
    """Yield clips for `subjects` random subjects; the last `test_subjects` subjects get split 'test'.
    stream=True yields ClipSources (rendered as they are written: one timestep in memory)."""
    dataset = dataset or f"synthetic-{kind}-{domain.name}"
    make = render_source if stream else render_clip
    for s in range(subjects):
        rng = np.random.default_rng([seed, s])
        subject = make_subject(head, rng, f"subj{s:04d}", domain)
        split = "test" if s >= subjects - test_subjects else "train"
        for c in range(clips_per_subject):
            yield make(head, subject, kind, timesteps, views, resolution, domain,
                       np.random.default_rng([seed, s, c + 1]), f"clip{c:03d}", dataset, split)

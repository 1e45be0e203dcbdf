"""Evaluation protocols (METHOD §6): which frames are sources, which are targets, what is compared.

Every protocol renders over black and compares with the ground truth composited over black by its
matte; it evaluates camera 0 unless it says otherwise, at most `max_targets` target frames per clip
(evenly spaced), and reports per-frame rows that are averaged per clip and over all clips.

  ff_self          generator: the first K timesteps are the sources, every later timestep a target
                   (from `targets_from` on, if that is later: the same targets for every K).
                   sources="spread": K timesteps evenly spread over the whole clip (first and last
                   for K = 2), and every timestep that no K = 1..4 spreads to a target (the same
                   targets for every K): sources that see the head turned and moved, as a video's
                   frames picked at random would.
  ff_cross         generator: clip i's first K timesteps drive-free sources, clip i+1 (cyclic) the
                   driver (its expression, pose, eyes and camera; clip i's shape). No ground truth:
                   CSIM (source vs render) and AED / APD (render vs driver frame) only.
  subject_mono     refined avatars (OUT/<subject>/avatar.npz) or the generator: the last
                   `test_frames` timesteps are the test frames (None: the last 20 %, the split
                   refine_batch trains with); the generator takes its K sources from the first frames.
  multiview_novel  multi-view clips: camera `held_out_camera` is never a source; the generator's K
                   sources are other cameras at timestep 0; every timestep of the held-out camera
                   is a target (avatars are rendered at those frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.eval.face_models import FaceMetrics, FaceModelConfig
from sa0.eval.metrics import LPIPS, Unavailable, mse, ms_ssim, psnr, ssim
from sa0.gaussians import bind
from sa0.head import HeadModel
from sa0.losses.antispike import max_aspect_ratio
from sa0.render.api import render
from sa0.types import Cameras, LocalGaussians

PROTOCOLS = ("ff_self", "ff_cross", "subject_mono", "multiview_novel")
HOLDOUT_FRACTION = 0.2  # refine_batch's split (sa0.refine.subjects.train_test)


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    protocol: str = "ff_self"
    num_sources: int = 1
    test_frames: int | None = None
    held_out_camera: int = -1
    max_targets: int = 32
    targets_from: int = 0
    sources: str = "first"
    lpips: bool = True
    faces: FaceModelConfig = field(default_factory=FaceModelConfig)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"EvalConfig.protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not 1 <= self.num_sources <= 4:
            raise ValueError(f"EvalConfig.num_sources (K) must be in 1..4, got {self.num_sources}")
        if self.test_frames is not None and self.test_frames < 1:
            raise ValueError(f"EvalConfig.test_frames must be >= 1, got {self.test_frames}")
        if self.targets_from < 0:
            raise ValueError(f"EvalConfig.targets_from must be >= 0, got {self.targets_from}")
        if self.max_targets < 1:
            raise ValueError(f"EvalConfig.max_targets must be >= 1, got {self.max_targets}")
        if self.sources not in ("first", "spread"):
            raise ValueError(f"EvalConfig.sources must be 'first' or 'spread', got {self.sources!r}")


class EvalError(ValueError):
    """This clip cannot be evaluated under this protocol (too short, one camera, no avatar, ...)."""


def _spaced(items: list, limit: int) -> list:
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def plan(clip: Clip, cfg: EvalConfig) -> tuple[list, list]:
    """-> (source frames, target frames) as (timestep, camera) lists for one clip."""
    t, k = clip.num_timesteps, cfg.num_sources
    if cfg.protocol in ("ff_self", "ff_cross") and cfg.sources == "spread":
        return _spread_plan(clip, cfg)
    if cfg.protocol in ("ff_self", "ff_cross"):
        first = max(k, cfg.targets_from)
        if t <= first:
            raise EvalError(f"{clip.meta.key}: {t} timesteps, need more than {first} (K = {k})")
        return [(i, 0) for i in range(k)], _spaced([(i, 0) for i in range(first, t)], cfg.max_targets)
    if cfg.protocol == "subject_mono":
        test = cfg.test_frames if cfg.test_frames is not None else max(1, int(round(HOLDOUT_FRACTION * t)))
        if test >= t:
            raise EvalError(f"{clip.meta.key}: {t} timesteps, test_frames={test} leaves none to train on")
        sources = [(i, 0) for i in np.linspace(0, t - test - 1, min(k, t - test)).round().astype(int)]
        return sources, _spaced([(i, 0) for i in range(t - test, t)], cfg.max_targets)
    cams = clip.num_cameras
    if cams < 2:
        raise EvalError(f"{clip.meta.key}: one camera; multiview_novel needs a held-out camera")
    held = cfg.held_out_camera % cams
    others = [c for c in range(cams) if c != held]
    return [(0, c) for c in others[:k]], _spaced([(i, held) for i in range(t)], cfg.max_targets)


def _spread(t: int, k: int) -> list[int]:
    return sorted(set(np.linspace(0, t - 1, k).round().astype(int).tolist()))


def _spread_plan(clip: Clip, cfg: EvalConfig) -> tuple[list, list]:
    """ff_* with sources spread over the clip; targets: the timesteps no K = 1..4 takes as a source."""
    t = clip.num_timesteps
    taken = {i for k in range(1, 5) for i in _spread(t, k)}
    rest = [i for i in range(t) if i not in taken and i >= cfg.targets_from]
    if t < 4 or not rest:
        raise EvalError(f"{clip.meta.key}: {t} timesteps leave no target once K = 1..4 spread sources are taken")
    return [(i, 0) for i in _spread(t, cfg.num_sources)], _spaced([(i, 0) for i in rest], cfg.max_targets)


def ground_truth(clip: Clip, frames: list) -> tuple[torch.Tensor, torch.Tensor]:
    """-> images over black (B, H, W, 3) in [0, 1], mattes (B, H, W) bool (matte > 0.5)."""
    images = torch.stack([torch.as_tensor(clip.images[t, c]).float() / 255 for t, c in frames])
    mattes = torch.stack([torch.as_tensor(clip.mattes[t, c]).float() / 255 for t, c in frames])
    return images * mattes[..., None], mattes > 0.5


class Predictor:
    """What is evaluated: local Gaussians per target frame (generator) or per subject (avatar)."""

    def locals(self, clip: Clip, sources: list, targets: list, driver: Clip | None) -> list[LocalGaussians]:
        raise NotImplementedError


class GeneratorPredictor(Predictor):
    def __init__(self, path: str, head: HeadModel):
        from sa0.model.inference import load_trained_generator

        self.trained = load_trained_generator(path, head)

    def locals(self, clip, sources, targets, driver):
        from sa0.model.inference import predict_locals

        return predict_locals(self.trained, clip, sources, targets, driver=driver)


class AvatarPredictor(Predictor):
    """Refined avatars: <avatars>/<subject>/avatar.npz (jobs/refine_batch.py output), or one
    avatar.npz file that stands for every subject (a baseline such as the mean avatar)."""

    def __init__(self, avatars: str, head: HeadModel):
        self.root, self.head, self.cache = Path(avatars), head, {}

    def locals(self, clip, sources, targets, driver):
        from sa0.export.package import load_package
        from sa0.export.reenact import check_layout

        subject = clip.meta.subject
        if subject not in self.cache:
            path = self.root if self.root.is_file() else self.root / subject / "avatar.npz"
            if not path.is_file():
                raise EvalError(f"{clip.meta.key}: no refined avatar at {path}")
            package = load_package(path)
            check_layout(package, self.head)
            self.cache[subject] = package.local
        return [self.cache[subject]] * len(targets)


class Scorer:
    """Per-frame metrics; LPIPS and face models are loaded once."""

    def __init__(self, cfg: EvalConfig):
        self.lpips = {net: LPIPS(net) for net in ("alex", "vgg")} if cfg.lpips else {}
        self.faces = FaceMetrics(cfg.faces)

    def score(self, preds, gts, masks, sources, with_gt: bool) -> list[dict]:
        rows = [{} for _ in range(len(preds))]
        def put(name, values):  # noqa: E306
            for row, value in zip(rows, values if not isinstance(values, Unavailable) else [values] * len(rows)):
                row[name] = value if isinstance(value, Unavailable) else float(value)
        put("csim", self.faces.csim(sources, preds))
        aed, apd = self.faces.aed_apd(preds, gts)
        put("aed", aed)
        put("apd", apd)
        if with_gt:
            put("mse", mse(preds, gts))
            put("psnr", psnr(preds, gts))
            put("psnr_masked", psnr(preds, gts, masks))
            put("ssim", ssim(preds, gts))
            put("ms_ssim", ms_ssim(preds, gts) if min(preds.shape[1:3]) >= 49 else Unavailable("images under 49 px"))
            for net, fn in self.lpips.items():
                put(f"lpips_{net}", fn(preds, gts))
            put("akd", self.faces.akd(preds, gts))
        return rows


def evaluate_clip(clip: Clip, driver: Clip | None, head: HeadModel, predictor: Predictor, scorer: Scorer,
                  cfg: EvalConfig) -> tuple[list[dict], dict]:
    """-> (per-frame rows, {"best": (pred, gt), "worst": (pred, gt)} uint8 images)."""
    sources, targets = plan(clip, cfg)
    frame_clip = driver if cfg.protocol == "ff_cross" else clip
    if cfg.protocol == "ff_cross":
        targets = _spaced([(i, 0) for i in range(driver.num_timesteps)], cfg.max_targets)
    verts = head.pose_track(frame_clip.flame.as_dict(), [t for t, _ in targets],
                            shape=clip.flame.shape[0] if cfg.protocol == "ff_cross" else None)
    h, w = frame_clip.image_size
    preds, ars = [], []
    locals_ = predictor.locals(clip, sources, targets, driver if cfg.protocol == "ff_cross" else None)
    with torch.no_grad():
        for i, ((t, c), local) in enumerate(zip(targets, locals_)):
            cam = Cameras(torch.as_tensor(frame_clip.viewmats[t, c]).float()[None],
                          torch.as_tensor(frame_clip.Ks[t, c]).float()[None], w, h)
            out = render(bind(local, verts[i], head.faces, head.layout), cam, torch.zeros(3))
            preds.append(out.image[0].clamp(0, 1))
            ars.append(max_aspect_ratio(out))
    preds = torch.stack(preds)
    gts, masks = ground_truth(frame_clip, targets)
    src_images, _ = ground_truth(clip, [sources[0]] * len(targets))
    rows = scorer.score(preds, gts, masks, src_images, with_gt=cfg.protocol != "ff_cross")
    for row, (t, c), ar in zip(rows, targets, ars):
        row.update(clip=clip.meta.key, subject=clip.meta.subject, timestep=t, camera=c, max_ar=ar,
                   num_gaussians=head.num_gaussians)
    key = "psnr" if cfg.protocol != "ff_cross" else "max_ar"
    order = sorted(range(len(rows)), key=lambda i: rows[i][key])
    best, worst = (order[-1], order[0]) if key == "psnr" else (order[0], order[-1])
    as_u8 = lambda x: (x.numpy() * 255).round().astype(np.uint8)  # noqa: E731
    images = {name: (as_u8(preds[i]), as_u8(gts[i])) for name, i in (("best", best), ("worst", worst))}
    return rows, images

"""Novel views with ground truth: a human-shaped head filmed by one frontal camera, seen from the side.

A subject is an ICT-FaceKit identity sa0 has not used elsewhere (random identity coefficients from
`seed`), coloured by a procedural texture (sa0.heads.texture), moving as a phone video's subject does
(head yaw within +-15 degrees, pitch +-5, smiles, brows, blinks, jaw), and rendered by the mesh
rasteriser (sa0.render.mesh), which knows nothing of Gaussians, 3 x 3 samples per pixel (a camera's
pixels integrate: edges and mattes are soft, as in a video). Any head and refinement can then be
scored where a phone never looked: the held-out timesteps from the training camera orbited about
the head (yaw 30 and 60 degrees, both sides). Orbits turn the camera about its own image's vertical
through a pivot, the centroid of facial landmarks, so the head stays where it was in the image; a
tracked head orbits about its own landmarks' centroid and the truth about the true one (tracking
errors therefore show). The axis is the camera's, not the world's: a tracked clip's world is the
head's own (its pose is in the camera), and orbiting about the head's up axis turned the tracked
views away from the truth's by the head's pitch and roll (1.3 degrees of image rotation at 30).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame.landmarks import landmarks_from_vertices, load_mediapipe_embedding
from sa0.geometry.camera import camera_up, intrinsics_from_fov, look_at, orbit
from sa0.head import HeadModel, load_head_model
from sa0.heads.ict import IctFacts, ict_dir
from sa0.render.mesh import rasterize, textured
from sa0.types import FlameParams

EXPRESSIONS = ("mouthSmile_L", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "eyeBlink_R",
               "mouthFunnel", "browDown_L", "browDown_R", "cheekSquint_L", "cheekSquint_R")


@dataclass(frozen=True)
class TruthSubject:
    """head: the ICT head; verts (T, V, 3) posed; view (4, 4) / K (3, 3) the frontal camera; images
    (T, S, S, 3) uint8 and mattes (T, S, S) uint8 over black; landmarks (T, L, 2) of `ids` (MediaPipe);
    texture and face_uv for more renders."""

    head: HeadModel
    verts: np.ndarray
    view: np.ndarray
    K: np.ndarray
    images: np.ndarray
    mattes: np.ndarray
    landmarks: np.ndarray
    ids: np.ndarray
    texture: np.ndarray
    face_uv: np.ndarray
    params: FlameParams


def _smooth(rng, frames: int, low: float, high: float) -> np.ndarray:
    t = np.linspace(0, 1, frames)
    wave = sum(rng.normal() * np.sin(2 * np.pi * (k + 1) * t + rng.uniform(0, 6.3)) / (k + 1) for k in range(3))
    wave = (wave - wave.min()) / max(np.ptp(wave), 1e-9)
    return low + (high - low) * wave


def subject_motion(head: HeadModel, facts: IctFacts, seed: int, frames: int) -> FlameParams:
    """A phone-video-like motion of a new identity: yaw within +-15 deg, pitch +-5, expressions, jaw."""
    rng = np.random.default_rng([seed, 11])
    p = FlameParams.zeros(frames, head.flame.num_shape, head.flame.num_expression, dtype=torch.float64)
    p.shape[:] = torch.as_tensor(rng.normal(0, 0.8, head.flame.num_shape))
    p.global_rot[:, 1] = torch.as_tensor(np.radians(_smooth(rng, frames, -15, 15)))
    p.global_rot[:, 0] = torch.as_tensor(np.radians(_smooth(rng, frames, -5, 5)))
    for name in EXPRESSIONS:
        p.expression[:, facts.expression_names.index(name)] = torch.as_tensor(_smooth(rng, frames, 0, rng.uniform(0.2, 0.7)))
    jaw = _smooth(rng, frames, 0, 0.45) * (rng.uniform(size=frames) > 0.2)
    p.jaw[:] = torch.as_tensor(jaw[:, None] * facts.jaw_axis[None] * facts.jaw_open_angle)
    p.expression[:, facts.expression_names.index("jawOpen")] = torch.as_tensor(jaw)
    return p


def truth_subject(seed: int, frames: int = 40, size: int = 256, texture_size: int = 1024) -> TruthSubject:
    from sa0.flame.io import find_uv_file, load_uv
    from sa0.heads.texture import procedural_texture

    model_dir = ict_dir()
    head = load_head_model(FlameConfig(model_dir=str(model_dir)), LayoutConfig(uv_resolution=8))
    head.flame.double()
    facts = IctFacts.read(model_dir)
    faces = head.faces.numpy()
    vt, ft = load_uv(find_uv_file(model_dir), len(faces))
    params = subject_motion(head, facts, seed, frames)
    with torch.no_grad():
        verts = head.flame(params)
        neutral = FlameParams.zeros(1, head.flame.num_shape, head.flame.num_expression, dtype=torch.float64)
        rest = head.flame(replace(neutral, shape=params.shape[:1]))[0].numpy()  # the identity at rest
    joints = (head.flame.J_regressor @ torch.as_tensor(rest)).numpy()
    texture = procedural_texture(rest, faces, vt[ft], facts, joints, seed=seed, size=texture_size, detail=True)
    centre = rest[facts.landmarks68].mean(0)
    view = look_at(torch.tensor(centre + [0, 0, 0.6], dtype=torch.float32)[None],
                   torch.tensor(centre, dtype=torch.float32)[None])[0].double().numpy()
    K = intrinsics_from_fov(28.0, size, size).double().numpy()
    embedding = load_mediapipe_embedding(model_dir, len(faces))
    images, mattes = [], []
    for t in range(frames):
        image, matte = render_truth(verts[t].numpy(), faces, vt[ft], texture, view, K, size)
        images.append(image)
        mattes.append(matte)
    cam = verts @ torch.as_tensor(view[:3, :3]).T + torch.as_tensor(view[:3, 3])
    lmk = landmarks_from_vertices(cam, head.faces, embedding).numpy()
    pix = lmk[..., :2] / lmk[..., 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    return TruthSubject(head, verts.numpy(), view, K, np.stack(images), np.stack(mattes), pix.astype(np.float32),
                        embedding.ids, texture, vt[ft], params)


def render_truth(verts, faces, face_uv, texture, view, K, size, supersample: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image over black, uint8 matte) of the textured mesh, each pixel the mean of
    supersample^2 samples (as a camera's pixel integrates light over its area: soft edges)."""
    k = supersample
    scaled = np.asarray(K, np.float64).copy()
    scaled[:2] *= k
    frags = rasterize(verts, faces, view, scaled, size * k, size * k)
    image = textured(frags, face_uv, texture).reshape(size, k, size, k, -1).mean((1, 3))
    matte = frags.mask.reshape(size, k, size, k).mean((1, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), (matte * 255).round().astype(np.uint8)


@dataclass(frozen=True)
class Capture:
    """A head's clip of a truth subject, split, with what novel views need for the held-out timesteps:
    the true views / crop intrinsics / posed true vertices and both pivots (true, the head's own)."""

    head: HeadModel
    train: object
    test: object
    true_views: np.ndarray
    true_Ks: np.ndarray
    true_verts: np.ndarray
    true_pivots: np.ndarray
    pivots: np.ndarray


def _pivots(head: HeadModel, verts: torch.Tensor, embedding, ids: np.ndarray) -> np.ndarray:
    """Centroid of the landmarks `ids` (a subset of the embedding's) on posed vertices (T, V, 3)."""
    keep = np.isin(embedding.ids, ids)
    sub = type(embedding)(embedding.face_idx[keep], embedding.bary[keep], embedding.ids[keep], embedding.source)
    return landmarks_from_vertices(verts.double(), head.faces, sub).mean(1).numpy()


def _clip(truth: TruthSubject, frames: np.ndarray):
    from sa0.data.schema import Clip, ClipMeta, FlameTrack

    count = len(frames)
    boxes = np.concatenate((np.nanmin(truth.landmarks[frames], 1), np.nanmax(truth.landmarks[frames], 1)), 1)
    flame = FlameTrack(**{f: getattr(truth.params, f)[frames].float().numpy() for f in FlameTrack.__dataclass_fields__})
    return Clip(ClipMeta("truth", "truth", "novel-view", "truth", "train"), truth.images[frames, None],
                truth.mattes[frames, None], np.broadcast_to(truth.view, (count, 1, 4, 4)).astype(np.float32),
                np.broadcast_to(truth.K, (count, 1, 3, 3)).astype(np.float32), boxes[:, None].astype(np.float32), flame)


def exact_capture(truth: TruthSubject, uv_resolution: int, holdout: float = 0.2) -> Capture:
    """The ICT head with the true parameters and camera (exact geometry: only the refinement differs)."""
    head = load_head_model(FlameConfig(model_dir=str(ict_dir())), LayoutConfig(uv_resolution=uv_resolution))
    count = len(truth.images)
    cut = count - max(1, round(holdout * count))
    test = np.arange(cut, count)
    embedding = load_mediapipe_embedding(ict_dir(), len(head.faces))
    pivots = _pivots(head, torch.as_tensor(truth.verts[test]), embedding, embedding.ids)
    return Capture(head, _clip(truth, np.arange(cut)), _clip(truth, test), np.broadcast_to(truth.view, (len(test), 4, 4)),
                   np.broadcast_to(truth.K, (len(test), 3, 3)), truth.verts[test], pivots, pivots)


def tracked_capture(truth: TruthSubject, head_dir: str, out, uv_resolution: int, size: int = 256,
                    photometric: bool = True, photo=None) -> Capture:
    """Track the truth video with the head in `head_dir` as track.py does (landmarks from the true
    pixels of the ICT embedding's MediaPipe ids instead of MediaPipe's; the photometric stage unless
    `photometric` is False, with `photo` (a PhotoConfig; None: its defaults)), split as refine_batch
    does (last fifth held out)."""
    from sa0.flame.landmarks import with_irises
    from sa0.refine.subjects import load_subject_clips, train_test
    from sa0.track.detect import Detection, ProjectedDetector, full_landmarks
    from sa0.track.fit import intrinsics
    from sa0.track.frames import array_source
    from sa0.track.run import TrackConfig, track

    head = load_head_model(FlameConfig(model_dir=head_dir), LayoutConfig(uv_resolution=uv_resolution))
    embedding = with_irises(load_mediapipe_embedding(head_dir, len(head.faces)), head.flame)
    detector = ProjectedDetector(lambda i: Detection([full_landmarks(truth.ids, truth.landmarks[i])], truth.mattes[i]))
    stage = {"photo": None} if not photometric else {"photo": photo} if photo is not None else {}
    report = track(array_source(truth.images, "truth"), detector, head, embedding, out,
                   TrackConfig(size=size, overlay=False, **stage))
    train, test = train_test(load_subject_clips("truth", [out]))
    used = np.array([r["frame"] for r in report["per_frame"] if r["status"] == "used"])[train.num_timesteps:]
    h, w = truth.images.shape[1:3]
    to_crop = test.Ks[:, 0].astype(np.float64) @ np.linalg.inv(intrinsics(report["focal"], h, w))
    ict_embedding = load_mediapipe_embedding(ict_dir(), len(truth.head.faces))
    common = np.intersect1d(embedding.ids, ict_embedding.ids)
    pivots = _pivots(head, head.pose_track(test.flame.as_dict()), embedding, common)
    true_pivots = _pivots(truth.head, torch.as_tensor(truth.verts[used]), ict_embedding, common)
    return Capture(head, train, test, np.broadcast_to(truth.view, (len(used), 4, 4)), to_crop @ truth.K,
                   truth.verts[used], true_pivots, pivots)


def score_views(capture: Capture, truth: TruthSubject, local, yaws=(0, 30, -30, 60, -60), render_cfg=None) -> dict:
    """PSNR / SSIM (over black) and maxAR of the refined `local` against the truth on the held-out
    timesteps, seen from the training camera orbited by each yaw -> {yaw: {psnr, ssim, max_ar,
    psnr_registered, ssim_registered, shift_px, rotation_deg}}: the registered scores after each
    render's 2D similarity registration to its truth (sa0.eval.registration: a tracked head's frame
    is the truth's only up to the tracker's error), with the warp's mean size."""
    from sa0.config import RenderConfig
    from sa0.eval.registration import register
    from sa0.gaussians import bind
    from sa0.losses import max_aspect_ratio, psnr, ssim
    from sa0.render.api import render
    from sa0.types import Cameras

    render_cfg = render_cfg or RenderConfig()
    head = capture.head
    verts = head.pose_track(capture.test.flame.as_dict())
    h, w = capture.test.image_size
    out = {}
    for yaw in yaws:
        scores = []
        for i in range(capture.test.num_timesteps):
            train_view = capture.test.viewmats[i, 0]
            view = orbit(train_view, capture.pivots[i], yaw, axis=camera_up(train_view))
            true_view = orbit(capture.true_views[i], capture.true_pivots[i], yaw, axis=camera_up(capture.true_views[i]))
            image, _ = render_truth(capture.true_verts[i], truth.head.faces.numpy(), truth.face_uv, truth.texture,
                                    true_view, capture.true_Ks[i], h)
            cams = Cameras(torch.as_tensor(view, dtype=torch.float32)[None],
                           torch.as_tensor(capture.test.Ks[i, 0], dtype=torch.float32)[None], w, h)
            with torch.no_grad():
                rendered = render(bind(local, verts[i], head.faces, head.layout), cams, torch.zeros(3), render_cfg)
            target = torch.as_tensor(image, dtype=torch.float32)[None] / 255.0
            pred = rendered.image.clamp(0, 1)
            warped, reg = register(pred, target)
            scores.append((psnr(pred, target).item(), ssim(pred, target).item(), max_aspect_ratio(rendered),
                           psnr(warped, target).item(), ssim(warped, target).item(), float(np.hypot(*reg.shift_px)),
                           abs(reg.rotation_deg)))
        keys = ("psnr", "ssim", "max_ar", "psnr_registered", "ssim_registered", "shift_px", "rotation_deg")
        out[yaw] = {k: float(np.mean([s[j] for s in scores])) if k != "max_ar" else float(max(s[2] for s in scores))
                    for j, k in enumerate(keys)}
    return out


def high_frequency_energy(image: np.ndarray, background=(1.0, 1.0, 1.0), threshold: float = 0.06) -> float:
    """Mean squared difference between an image (H, W, 3) in [0, 1] and its 5 x 5 box blur, over the
    pixels (eroded by 3) that differ from the background colour: speckle and confetti raise it,
    smooth skin does not. Compare a novel view's value with the frontal view's (`speckle_ratio`)."""
    import torch.nn.functional as F

    img = torch.as_tensor(np.asarray(image, np.float64)).permute(2, 0, 1)[None]
    blur = F.avg_pool2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), 5, 1)
    fg = (img - torch.as_tensor(background, dtype=img.dtype)[None, :, None, None]).abs().amax(1, keepdim=True) > threshold
    fg = -F.max_pool2d(-fg.double(), 7, 1, 3) > 0.5  # erode: the outline itself is not speckle
    energy = ((img - blur) ** 2).sum(1, keepdim=True)
    return float(energy[fg].mean()) if fg.any() else 0.0


def speckle_ratio(novel: np.ndarray, frontal: np.ndarray, background=(1.0, 1.0, 1.0)) -> float:
    """high_frequency_energy(novel) / high_frequency_energy(frontal): ~1 for a head whose side is as
    smooth as its front, larger with confetti."""
    return high_frequency_energy(novel, background) / max(high_frequency_energy(frontal, background), 1e-12)

"""Ground truth for the tracker: a "phone video" rendered by sa0 from known FLAME parameters and
cameras, and a detector that reports its projected landmarks (plus noise), for tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from smplx.lbs import batch_rodrigues

from sa0.data.schema import Clip
from sa0.data.synthetic import DOMAINS, make_subject, render_clip
from sa0.flame.landmarks import LandmarkEmbedding, landmarks_from_vertices
from sa0.head import HeadModel
from sa0.track.detect import Detection, ProjectedDetector, full_landmarks
from sa0.track.fit import camera_from_pose, intrinsics
from sa0.types import FlameParams


@dataclass(frozen=True)
class SyntheticVideo:
    """clip: the rendered clip (one camera, ground-truth FLAME and cameras); landmarks (T, L, 2):
    exact projections of the embedding's points; verts_cam (T, V, 3): posed mesh in camera space."""

    clip: Clip
    landmarks: np.ndarray
    ids: np.ndarray
    verts_cam: np.ndarray

    @property
    def frames(self) -> np.ndarray:
        return self.clip.images[:, 0]


def camera_space(verts: torch.Tensor, viewmats: np.ndarray) -> torch.Tensor:
    view = torch.as_tensor(viewmats, dtype=verts.dtype)
    return verts @ view[:, :3, :3].transpose(1, 2) + view[:, None, :3, 3]


def pixels(points_cam: torch.Tensor, K: np.ndarray) -> np.ndarray:
    K = torch.as_tensor(K, dtype=points_cam.dtype)
    uv = points_cam[..., :2] / points_cam[..., 2:3]
    return (uv * torch.stack((K[:, 0, 0], K[:, 1, 1]), -1)[:, None] + K[:, None, :2, 2]).numpy()


def synthetic_video(head: HeadModel, embedding: LandmarkEmbedding, frames: int = 24, resolution: int = 512,
                    seed: int = 0) -> SyntheticVideo:
    """A monocular clip of a random synthetic subject (sa0.data.synthetic: moving camera, smooth
    expression, jaw, eye and head motion), with its landmarks' true pixel positions."""
    rng = np.random.default_rng([seed, 7])
    subject = make_subject(head, rng, f"synth{seed}", DOMAINS["studio"])
    clip = render_clip(head, subject, "mono", frames, 1, resolution, DOMAINS["studio"], np.random.default_rng([seed, 8]),
                       "video", "synthetic-video")
    params = FlameParams(*(torch.as_tensor(a) for a in clip.flame.as_dict().values()))
    with torch.no_grad():
        verts = camera_space(head.flame(params), clip.viewmats[:, 0])
        lmk = landmarks_from_vertices(verts, head.flame.faces, embedding)
    return SyntheticVideo(clip, pixels(lmk, clip.Ks[:, 0]), embedding.ids.copy(), verts.numpy())


def truth_detector(video: SyntheticVideo, noise_px: float = 1.0, seed: int = 0, no_face: tuple = (),
                   two_faces: tuple = ()) -> ProjectedDetector:
    """Reports the true landmarks plus Gaussian noise of `noise_px` per coordinate and the true matte;
    frames in `no_face` report nothing, those in `two_faces` a second, shifted face."""
    rng = np.random.default_rng(seed)
    noisy = video.landmarks + rng.normal(0, noise_px, size=video.landmarks.shape)

    def detections(i: int) -> Detection:
        if i in no_face:
            return Detection([], video.clip.mattes[i, 0])
        face = full_landmarks(video.ids, noisy[i].astype(np.float32))
        faces = [face, face + np.float32(60)] if i in two_faces else [face]
        return Detection(faces, video.clip.mattes[i, 0])

    return ProjectedDetector(detections)


def truth_twin(tracked: Clip, video: SyntheticVideo, report: dict) -> Clip:
    """The tracked clip with its FLAME parameters and cameras replaced by the ground truth of the
    same frames (same crops: K_true_crop = A K_true, with A = K_crop K_track^-1), so refining from
    tracked and from true parameters can be compared on the same images."""
    import dataclasses

    from sa0.data.schema import FlameTrack

    used = np.array([r["frame"] for r in report["per_frame"] if r["status"] == "used"])
    h, w = video.frames.shape[1:3]
    to_crop = tracked.Ks[:, 0].astype(np.float64) @ np.linalg.inv(intrinsics(report["focal"], h, w))
    Ks = (to_crop @ video.clip.Ks[used, 0]).astype(np.float32)[:, None]
    flame = FlameTrack(**{k: v[used] for k, v in video.clip.flame.as_dict().items()})
    return dataclasses.replace(tracked, viewmats=video.clip.viewmats[used], Ks=Ks, flame=flame)


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    rel = a.transpose(1, 2) @ b
    return torch.rad2deg(torch.arccos(((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))).numpy()


def _rot(x) -> torch.Tensor:
    return batch_rodrigues(torch.as_tensor(np.asarray(x), dtype=torch.float64))


def fit_accuracy(head: HeadModel, layer, video: SyntheticVideo, params: FlameParams, projected: np.ndarray) -> dict:
    """A fit of all of `video`'s frames (params under VIEW0, projected (T, L, 2) frame pixels) against the
    truth: clean_rmse_px (fitted landmarks vs the noiseless true ones), vertex_mm (median over frames and
    front-of-head vertices, brow to chin, after centring each frame: monocular landmarks fix depth only up
    to the focal length), head_deg / jaw_deg (largest rotation error over frames)."""
    clean = float(np.sqrt(((projected - video.landmarks) ** 2).sum(-1).mean()))
    views, still = camera_from_pose(layer, params)
    with torch.no_grad():
        fitted = camera_space(head.flame(still), views)
    rest = head.flame.v_template
    face = (rest[:, 2] > 0.03) & (rest[:, 1] > -0.08) & (rest[:, 1] < 0.07)
    err = fitted[:, face].double() - torch.as_tensor(video.verts_cam)[:, face]
    err = err - err.mean(1, keepdim=True)
    true_head = (torch.as_tensor(video.clip.viewmats[:, 0, :3, :3], dtype=torch.float64)
                 @ _rot(video.clip.flame.global_rot) @ _rot(video.clip.flame.neck))
    head_err = _angle_deg(true_head, torch.as_tensor(views[:, :3, :3], dtype=torch.float64))
    jaw_err = _angle_deg(_rot(video.clip.flame.jaw), _rot(params.jaw))
    return {"clean_rmse_px": clean, "vertex_mm": float(err.norm(dim=-1).median()) * 1000,
            "head_deg": float(head_err.max()), "jaw_deg": float(jaw_err.max())}

"""The tracking job: frames -> detection -> FLAME + camera fit -> stable crops -> a clip in sa0's
contract (shards + manifest), `tracking_report.json` and `overlay.mp4`, written atomically.

Frames are read twice (detect, then crop and write), so a long video is never held in memory; only
landmarks and a small copy of each matte are kept between the passes. Frames with no face, several
faces, blur (sharpness below `blur_ratio` x the clip's median) or landmarks the fit cannot explain
(RMS error above `max_fit_error` x face size) are skipped and counted; no usable frame is a
TrackError naming the input.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from sa0.data.schema import FLAME_FIELDS, ClipMeta, ClipSource, Timestep
from sa0.data.shards import write_shards
from sa0.flame.landmarks import LandmarkEmbedding, LandmarkLayer
from sa0.fsutil import write_json_atomic
from sa0.head import HeadModel
from sa0.heads import head_name
from sa0.track.crop import crop_image, crop_intrinsics, face_boxes, stable_crops
from sa0.track.detect import LandmarkDetector
from sa0.track.fit import FitConfig, FitResult, camera_from_pose, fit_landmarks, intrinsics, project
from sa0.track.frames import Frame, FrameSource, TrackError
from sa0.track.overlay import VideoWriter, draw_fit, draw_skipped, mesh_edges
from sa0.track.photometric import PhotoConfig, PhotoTargets, loss_regions, photometric_refine
from sa0.types import FlameParams

REPORT, OVERLAY = "tracking_report.json", "overlay.mp4"


@dataclass(frozen=True, kw_only=True)
class TrackConfig:
    """size: crop side in pixels; crop_scale: crop side / face size; smooth: crop centre smoothing
    (frames); blur_ratio, max_fit_error: skip rules (module docstring); subject: name in the clip
    key (default: the input's name); overlay: write overlay.mp4; device: where the fit runs;
    photo: the photometric stage (None: landmarks only; on by default, it is what brings refinement
    from tracked parameters within ~0.7 dB of refinement from the truth: benchmarks/bm_track.py)."""

    size: int = 512
    crop_scale: float = 2.0
    smooth: float = 3.0
    blur_ratio: float = 0.35
    max_fit_error: float = 0.05
    subject: str | None = None
    overlay: bool = True
    device: str = "cpu"
    fit: FitConfig = field(default_factory=FitConfig)
    photo: PhotoConfig | None = field(default_factory=PhotoConfig)


def sharpness(image: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face box, resampled to 128 x 128 grey."""
    x0, y0, x1, y1 = box
    grey = Image.fromarray(image).convert("L").crop((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))))
    g = np.asarray(grey.resize((128, 128), Image.BILINEAR), dtype=np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def _small(matte: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    h, w = matte.shape
    scale = min(1.0, longest / max(h, w))
    if scale == 1.0:
        return matte, 1.0
    return np.asarray(Image.fromarray(matte).resize((round(w * scale), round(h * scale)), Image.BILINEAR)), scale


def _silhouette(mesh_px: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Fallback matte where the detector gives none: the fitted mesh's filled projection."""
    from PIL import ImageDraw

    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for tri in mesh_px[faces]:
        draw.polygon([tuple(p) for p in tri], fill=255)
    return np.asarray(img)


@dataclass
class Kept:
    """A frame the detector kept: its report row (JSON, updated as later stages judge it), landmarks
    (L, 2) in frame pixels, frame size (H, W), and its matte at reduced size with the scale (None:
    the detector gave none)."""

    row: dict
    landmarks: np.ndarray
    hw: tuple[int, int]
    matte: tuple[np.ndarray, float] | None


@dataclass
class Fitted:
    """The frames the landmark fit explains: `used` (Kept), their frame ids, stable crops (T, 3) as
    (x0, y0, side), FLAME parameters (T, ...) under the fit's camera, observed landmarks (T, L, 2)
    in the embedding's order, frame sizes, and the fit (focal, losses)."""

    used: list[Kept]
    frame_ids: np.ndarray
    crops: np.ndarray
    params: FlameParams
    observed: np.ndarray
    sizes: np.ndarray
    fit: FitResult


def _detect(frames: FrameSource, detector: LandmarkDetector, cfg: TrackConfig, rows: list) -> list[Kept]:
    kept = []
    for item in tqdm(frames.frames(), total=frames.count, desc="detect", unit="frame", dynamic_ncols=True):
        if not isinstance(item, Frame):
            rows.append({"frame": item[0], "status": "skipped", "reason": item[2]})
            continue
        det = detector.detect(item.image)
        row = {"frame": item.index, "status": "skipped"}
        rows.append(row)
        if len(det.faces) != 1:
            row["reason"] = "no face" if not det.faces else f"{len(det.faces)} faces"
            continue
        lmk = np.asarray(det.faces[0], np.float32)
        box = face_boxes(lmk[None])[0]
        matte = _small(det.matte, 2 * cfg.size) if det.matte is not None else None
        row.update(status="used", sharpness=sharpness(item.image, box))
        kept.append(Kept(row, lmk, item.image.shape[:2], matte))
    sharp = np.array([k.row["sharpness"] for k in kept])
    if len(kept) > 2:
        limit = cfg.blur_ratio * float(np.median(sharp))
        for k, s in zip(kept, sharp):
            if s < limit:
                k.row.update(status="skipped", reason=f"blurred (sharpness {s:.0f} < {limit:.0f}, "
                                                      f"{cfg.blur_ratio} x the clip median)")
    return [k for k in kept if k.row["status"] == "used"]


def _counts(rows) -> dict:
    out: dict[str, int] = {}
    for r in rows:
        if r["status"] == "skipped":
            key = r["reason"].split(" (")[0]
            out[key] = out.get(key, 0) + 1
    return out


def _fit(frames: FrameSource, kept: list[Kept], layer: LandmarkLayer, embedding: LandmarkEmbedding,
         cfg: TrackConfig, rows: list) -> Fitted:
    """The landmark fit over the kept frames; frames it cannot explain are skipped; stable crops."""
    observed = np.stack([k.landmarks[embedding.ids] for k in kept])
    sizes = np.array([k.hw for k in kept])
    fit_cfg = replace(cfg.fit, video=cfg.fit.video and frames.video)
    with tqdm(total=fit_cfg.rigid_steps + fit_cfg.steps, desc="fit FLAME", unit="step", dynamic_ncols=True) as bar:
        result = fit_landmarks(layer, observed, sizes, fit_cfg, cfg.device, progress=bar.update)
    good = result.error_px <= cfg.max_fit_error * result.face_px
    for k, err, face, ok in zip(kept, result.error_px, result.face_px, good):
        k.row["error_frame_px"] = round(float(err), 3)
        if not ok:
            k.row.update(status="skipped", reason=f"fit: landmarks disagree ({err:.1f} px RMS on a {face:.0f} px face)")
    if not good.any():
        raise TrackError(f"{frames.source}: no frame's landmarks could be fitted ({_counts(rows)})")
    sel = np.nonzero(good)[0]
    used = [kept[i] for i in sel]
    frame_ids = np.array([k.row["frame"] for k in used])
    crops = stable_crops(face_boxes(np.stack([k.landmarks for k in used])), frame_ids, frames.video,
                         cfg.crop_scale, cfg.smooth)
    params = type(result.params)(*(getattr(result.params, f)[sel] for f in FLAME_FIELDS))
    return Fitted(used, frame_ids, crops, params, observed[sel], sizes[sel], result)


def _photo_targets(frames: FrameSource, fitted: Fitted, photo: PhotoConfig) -> PhotoTargets:
    """The used frames cropped at the stage's size (a pass over the frames)."""
    size, used, crops = photo.size, fitted.used, fitted.crops
    by_frame = {int(f): i for i, f in enumerate(fitted.frame_ids)}
    images = np.zeros((len(used), size, size, 3), np.uint8)
    mattes = np.full((len(used), size, size), 255, np.uint8)
    Ks = np.zeros((len(used), 3, 3), np.float32)
    for item in frames.frames():
        i = by_frame.get(getattr(item, "index", None)) if isinstance(item, Frame) else None
        if i is None:
            continue
        images[i] = crop_image(item.image, crops[i], size)
        if used[i].matte is not None:
            mattes[i] = crop_image(used[i].matte[0], crops[i], size, source_scale=used[i].matte[1])
        Ks[i] = crop_intrinsics(intrinsics(fitted.fit.focal, *used[i].hw), crops[i], size)
    to_crop = (fitted.observed - crops[:, None, :2]) * (size / crops[:, None, 2:3])
    boxes = face_boxes(np.stack([(k.landmarks - c[:2]) * (size / c[2]) for k, c in zip(used, crops)]))
    regions = loss_regions(boxes, size, photo.face_box)
    for i, k in enumerate(used):  # no matte: the background would count as face, so the face box only
        if k.matte is None and photo.face_box is None:
            regions[i] = loss_regions(boxes[i:i + 1], size, 0.08)[0]
    return PhotoTargets(Ks, images, mattes, regions, to_crop, np.array([k.matte is not None for k in used]))


def _photometric(frames: FrameSource, head: HeadModel, layer: LandmarkLayer, fitted: Fitted,
                 cfg: TrackConfig) -> tuple[FlameParams, dict]:
    targets = _photo_targets(frames, fitted, cfg.photo)
    with tqdm(total=cfg.photo.steps_for(len(fitted.used)), desc="photometric", unit="step", dynamic_ncols=True) as bar:
        return photometric_refine(head, layer, fitted.params, targets, cfg.photo, cfg.device, progress=bar.update)


class _ClipWriter:
    """Per used frame: the crop, its matte (the detector's, else the fitted mesh's silhouette), camera,
    box and FLAME parameters as a Timestep, and the overlay frame; skipped frames get an overlay card."""

    def __init__(self, head: HeadModel, layer: LandmarkLayer, fitted: Fitted, params: FlameParams, rows: list,
                 cfg: TrackConfig, overlay: VideoWriter | None):
        self.fitted, self.cfg, self.overlay = fitted, cfg, overlay
        with torch.no_grad():
            hw = torch.as_tensor(fitted.sizes, dtype=torch.float32)
            focal = fitted.fit.focal * hw.max(1).values
            self.projected = project(layer(params), focal, torch.stack((hw[:, 1], hw[:, 0]), 1) / 2).numpy()
            self.viewmats, self.still = camera_from_pose(layer, params)
            self.verts = head.flame(self.still).numpy()
        faces = head.flame.faces.numpy()
        self.faces, self.edges = faces, mesh_edges(faces, every=max(1, len(faces) // 6000))
        self.by_frame = {int(f): i for i, f in enumerate(fitted.frame_ids)}
        self.row_of = {r["frame"]: r for r in rows}

    def skipped(self, item: Frame) -> None:
        if self.overlay is not None:
            reason = self.row_of.get(item.index, {}).get("reason", "")
            self.overlay.add(draw_skipped(item.image, self.cfg.size, f"frame {item.index} skipped: {reason}"))

    def timestep(self, item: Frame, i: int) -> Timestep:
        size, crop, k = self.cfg.size, self.fitted.crops[i], self.fitted.used[i]
        K = crop_intrinsics(intrinsics(self.fitted.fit.focal, *k.hw), crop, size)
        view = self.viewmats[i]
        cam = self.verts[i] @ view[:3, :3].T + view[:3, 3]
        mesh_px = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
        image = crop_image(item.image, crop, size)
        matte = (crop_image(k.matte[0], crop, size, source_scale=k.matte[1]) if k.matte is not None
                 else _silhouette(mesh_px, self.faces, size))
        to_crop = lambda p: (p - crop[:2]) * (size / crop[2])  # noqa: E731
        obs_c, fit_c = to_crop(self.fitted.observed[i]), to_crop(self.projected[i])
        err = float(np.sqrt(np.nanmean(((fit_c - obs_c) ** 2).sum(-1))))
        k.row["error_px"] = round(err, 3)
        box = face_boxes(to_crop(k.landmarks)[None])[0].clip(0, size)
        box[2:] = np.maximum(box[2:], box[:2] + 1)
        if self.overlay is not None:
            self.overlay.add(draw_fit(image, mesh_px, self.edges, obs_c, fit_c, f"frame {item.index}  {err:.2f} px"))
        return Timestep(image[None], matte[None], view[None], K[None], box.astype(np.float32)[None],
                        {f: getattr(self.still, f)[i].numpy() for f in FLAME_FIELDS}, item.source)

    def timesteps(self, frames: FrameSource):
        with tqdm(total=frames.count, desc="crop + write", unit="frame", dynamic_ncols=True) as bar:
            for item in frames.frames():
                bar.update(1)
                if not isinstance(item, Frame):
                    continue
                i = self.by_frame.get(item.index)
                if i is None:
                    self.skipped(item)
                else:
                    yield self.timestep(item, i)


def _timed(times: dict, key: str, fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        times[key] = time.perf_counter() - start


def track(frames: FrameSource, detector: LandmarkDetector, head: HeadModel, embedding: LandmarkEmbedding, out,
          cfg: TrackConfig = TrackConfig()) -> dict:
    """Track `frames` into OUT (replaced only when everything is written); -> the report. Stages:
    detect (pass 1), landmark fit and crops, the photometric stage (pass 2, optional), write (pass 3)."""
    out, times, rows = Path(out), {}, []
    kept = _timed(times, "detect_s", _detect, frames, detector, cfg, rows)
    if not kept:
        raise TrackError(f"{frames.source}: no usable frame ({len(rows)} read; skipped: {_counts(rows) or 'none'})")
    layer = LandmarkLayer(head.flame, embedding)
    fitted = _timed(times, "fit_s", _fit, frames, kept, layer, embedding, cfg, rows)
    params, photo = fitted.params, None
    if cfg.photo is not None and cfg.photo.visits > 0:
        params, photo = _timed(times, "photometric_s", _photometric, frames, head, layer, fitted, cfg)
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    meta = ClipMeta(subject=cfg.subject or frames.name, clip_id="track", dataset="tracked", domain="tracked",
                    split="train")
    overlay = VideoWriter(staging / OVERLAY, frames.fps) if cfg.overlay else None
    clip = _ClipWriter(head, layer, fitted, params, rows, cfg, overlay)
    extras = {"tracker": "sa0.track", "focal": fitted.fit.focal, "source": frames.source,
              "head": head_name(head.model_dir)}
    try:
        manifest = _timed(times, "write_s", write_shards,
                          [ClipSource(meta, lambda: clip.timesteps(frames), frames.source, extras)], staging)
    finally:
        if overlay is not None:
            overlay.close()
    report = _report(frames, rows, fitted.fit, cfg, times, manifest, meta)
    report["photometric"] = photo
    write_json_atomic(staging / REPORT, report)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return report


def _report(frames, rows, result, cfg, times, manifest, meta) -> dict:
    used = [r for r in rows if r["status"] == "used"]
    err = np.array([r["error_px"] for r in used])
    return {
        "source": frames.source, "subject": meta.subject, "clip_key": meta.key, "frames_read": len(rows),
        "frames_used": len(used), "skipped": _counts(rows), "image_size": cfg.size,
        "reprojection_px": {"median": float(np.median(err)), "p95": float(np.percentile(err, 95)),
                            "max": float(err.max()), "measured_in": f"{cfg.size}^2 crop pixels"},
        "focal": result.focal, "fit_loss": result.loss,
        "seconds": {k: round(v, 3) for k, v in times.items()},
        "frames_per_second": {"detect": len(rows) / max(times["detect_s"], 1e-9),
                              "fit": len(used) / max(times["fit_s"], 1e-9)}
        | ({"photometric": len(used) / max(times["photometric_s"], 1e-9)} if "photometric_s" in times else {}),
        "config": asdict(cfg),
        "shards": len(manifest["shards"]), "per_frame": rows,
    }


def report_summary(report: dict) -> str:
    skipped = ", ".join(f"{v} {k}" for k, v in report["skipped"].items()) or "none"
    r = report["reprojection_px"]
    return (f"tracked {report['frames_used']} of {report['frames_read']} frames of {report['source']} "
            f"(skipped: {skipped}); landmark error median {r['median']:.2f} px, max {r['max']:.2f} px at "
            f"{report['image_size']}^2; subject '{report['subject']}'")


__all__ = ["REPORT", "OVERLAY", "TrackConfig", "report_summary", "track"]

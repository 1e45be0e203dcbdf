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
from sa0.track.fit import FitConfig, camera_from_pose, fit_landmarks, intrinsics, project
from sa0.track.frames import Frame, FrameSource, TrackError
from sa0.track.overlay import VideoWriter, draw_fit, draw_skipped, mesh_edges
from sa0.track.photometric import PhotoConfig, loss_regions, photometric_refine

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


def _detect(frames: FrameSource, detector: LandmarkDetector, cfg: TrackConfig, rows: list) -> list[dict]:
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
        kept.append({"row": row, "landmarks": lmk, "hw": item.image.shape[:2], "matte": matte})
    sharp = np.array([k["row"]["sharpness"] for k in kept])
    if len(kept) > 2:
        limit = cfg.blur_ratio * float(np.median(sharp))
        for k, s in zip(kept, sharp):
            if s < limit:
                k["row"].update(status="skipped", reason=f"blurred (sharpness {s:.0f} < {limit:.0f}, "
                                                         f"{cfg.blur_ratio} x the clip median)")
    return [k for k in kept if k["row"]["status"] == "used"]


def _counts(rows) -> dict:
    out: dict[str, int] = {}
    for r in rows:
        if r["status"] == "skipped":
            key = r["reason"].split(" (")[0]
            out[key] = out.get(key, 0) + 1
    return out


def _photometric(frames, head, layer, used, crops, params, observed, focal, cfg: TrackConfig, times) -> tuple:
    """Crops of the used frames at the stage's size (a pass over the frames), then the stage."""
    size = cfg.photo.size
    by_frame = {k["row"]["frame"]: i for i, k in enumerate(used)}
    images = np.zeros((len(used), size, size, 3), np.uint8)
    mattes = np.full((len(used), size, size), 255, np.uint8)
    Ks = np.zeros((len(used), 3, 3), np.float32)
    for item in frames.frames():
        i = by_frame.get(getattr(item, "index", None)) if isinstance(item, Frame) else None
        if i is None:
            continue
        images[i] = crop_image(item.image, crops[i], size)
        if used[i]["matte"] is not None:
            mattes[i] = crop_image(used[i]["matte"][0], crops[i], size, source_scale=used[i]["matte"][1])
        Ks[i] = crop_intrinsics(intrinsics(focal, *used[i]["hw"]), crops[i], size)
    to_crop = (observed - crops[:, None, :2]) * (size / crops[:, None, 2:3])
    boxes = face_boxes(np.stack([(k["landmarks"] - c[:2]) * (size / c[2]) for k, c in zip(used, crops)]))
    regions = loss_regions(boxes, size, cfg.photo.face_box)
    for i, k in enumerate(used):  # no matte: the background would count as face, so the face box only
        if k["matte"] is None and cfg.photo.face_box is None:
            regions[i] = loss_regions(boxes[i:i + 1], size, 0.08)[0]
    start = time.perf_counter()
    with tqdm(total=cfg.photo.steps_for(len(used)), desc="photometric", unit="step", dynamic_ncols=True) as bar:
        params, stats = photometric_refine(head, layer, params, Ks, images, mattes, regions, to_crop, cfg.photo,
                                           cfg.device, progress=bar.update,
                                           has_matte=np.array([k["matte"] is not None for k in used]))
    times["photometric_s"] = time.perf_counter() - start
    return params, stats


def track(frames: FrameSource, detector: LandmarkDetector, head: HeadModel, embedding: LandmarkEmbedding, out,
          cfg: TrackConfig = TrackConfig()) -> dict:
    """Track `frames` into OUT (replaced only when everything is written); -> the report."""
    out = Path(out)
    flame = head.flame
    times: dict[str, float] = {}
    rows: list[dict] = []
    start = time.perf_counter()
    kept = _detect(frames, detector, cfg, rows)
    times["detect_s"] = time.perf_counter() - start
    if not kept:
        raise TrackError(f"{frames.source}: no usable frame ({len(rows)} read; skipped: {_counts(rows) or 'none'})")
    layer = LandmarkLayer(flame, embedding)
    observed = np.stack([k["landmarks"][embedding.ids] for k in kept])
    sizes = np.array([k["hw"] for k in kept])
    fit_cfg = replace(cfg.fit, video=cfg.fit.video and frames.video)
    start = time.perf_counter()
    with tqdm(total=fit_cfg.rigid_steps + fit_cfg.steps, desc="fit FLAME", unit="step", dynamic_ncols=True) as bar:
        result = fit_landmarks(layer, observed, sizes, fit_cfg, cfg.device, progress=bar.update)
    times["fit_s"] = time.perf_counter() - start
    good = result.error_px <= cfg.max_fit_error * result.face_px
    for k, err, face, ok in zip(kept, result.error_px, result.face_px, good):
        k["row"]["error_frame_px"] = round(float(err), 3)
        if not ok:
            k["row"].update(status="skipped", reason=f"fit: landmarks disagree ({err:.1f} px RMS on a "
                                                     f"{face:.0f} px face)")
    if not good.any():
        raise TrackError(f"{frames.source}: no frame's landmarks could be fitted ({_counts(rows)})")
    sel = np.nonzero(good)[0]
    used = [kept[i] for i in sel]
    frame_ids = np.array([k["row"]["frame"] for k in used])
    crops = stable_crops(face_boxes(np.stack([k["landmarks"] for k in used])), frame_ids, frames.video,
                         cfg.crop_scale, cfg.smooth)
    params = type(result.params)(*(getattr(result.params, f)[sel] for f in FLAME_FIELDS))
    observed = observed[sel]
    photo = None
    if cfg.photo is not None and cfg.photo.visits > 0:
        params, photo = _photometric(frames, head, layer, used, crops, params, observed, result.focal, cfg, times)
    with torch.no_grad():
        hw = torch.as_tensor(sizes[sel], dtype=torch.float32)
        projected = project(layer(params), result.focal * hw.max(1).values, torch.stack((hw[:, 1], hw[:, 0]), 1) / 2)
        projected = projected.numpy()
    viewmats, still = camera_from_pose(layer, params)
    with torch.no_grad():
        verts = flame(still).numpy()
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    name = cfg.subject or frames.name
    meta = ClipMeta(subject=name, clip_id="track", dataset="tracked", domain="tracked", split="train")
    writer = VideoWriter(staging / OVERLAY, frames.fps) if cfg.overlay else None
    edges = mesh_edges(flame.faces.numpy(), every=max(1, len(flame.faces) // 6000))
    faces_np = flame.faces.numpy()
    by_frame = {int(f): i for i, f in enumerate(frame_ids)}
    row_of = {r["frame"]: r for r in rows}

    def timesteps():
        bar = tqdm(total=frames.count, desc="crop + write", unit="frame", dynamic_ncols=True)
        for item in frames.frames():
            bar.update(1)
            if not isinstance(item, Frame):
                continue
            i = by_frame.get(item.index)
            if i is None:
                if writer is not None:
                    writer.add(draw_skipped(item.image, cfg.size, f"frame {item.index} skipped: "
                                            f"{row_of.get(item.index, {}).get('reason', '')}"))
                continue
            k = used[i]
            h, w = k["hw"]
            K = crop_intrinsics(intrinsics(result.focal, h, w), crops[i], cfg.size)
            cam = verts[i] @ viewmats[i, :3, :3].T + viewmats[i, :3, 3]
            mesh_px = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
            image = crop_image(item.image, crops[i], cfg.size)
            if k["matte"] is not None:
                matte = crop_image(k["matte"][0], crops[i], cfg.size, source_scale=k["matte"][1])
            else:
                matte = _silhouette(mesh_px, faces_np, cfg.size)
            to_crop = lambda p: (p - crops[i][:2]) * (cfg.size / crops[i][2])  # noqa: E731
            obs_c, fit_c = to_crop(observed[i]), to_crop(projected[i])
            err = float(np.sqrt(np.nanmean(((fit_c - obs_c) ** 2).sum(-1))))
            k["row"]["error_px"] = round(err, 3)
            box = face_boxes(to_crop(k["landmarks"])[None])[0].clip(0, cfg.size)
            box[2:] = np.maximum(box[2:], box[:2] + 1)
            if writer is not None:
                writer.add(draw_fit(image, mesh_px, edges, obs_c, fit_c, f"frame {item.index}  {err:.2f} px"))
            yield Timestep(image[None], matte[None], viewmats[i][None], K[None], box.astype(np.float32)[None],
                           {f: getattr(still, f)[i].numpy() for f in FLAME_FIELDS}, item.source)
        bar.close()

    start = time.perf_counter()
    try:
        extras = {"tracker": "sa0.track", "focal": result.focal, "source": frames.source,
                  "head": head_name(head.model_dir)}
        manifest = write_shards([ClipSource(meta, timesteps, frames.source, extras)], staging)
    finally:
        if writer is not None:
            writer.close()
    times["write_s"] = time.perf_counter() - start
    report = _report(frames, rows, result, cfg, times, manifest, meta)
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

"""The tracker on ground truth: frames/s per stage, accuracy, and refinement from tracked vs true parameters.

    python benchmarks/bm_track.py [--json] [--quick] [--refine-steps N]

A synthetic "phone video" (sa0.track.synthetic: moving camera, head motion, smooth expression, jaw
and eyes) rendered at 512^2 from known FLAME parameters; the detector is replaced by the projected
true landmarks plus 1 px Gaussian noise per coordinate (the issue's protocol).
  detect        MediaPipe Face Mesh + selfie segmentation (sa0's MediaPipe environment) on the same
                frames, if installed: frames/s and how many frames it found a face in
  fit           the FLAME + camera fit (650 Adam steps over all frames at once): frames/s at two clip
                lengths (its cost is per step x frames), and its accuracy against the truth: landmark
                RMSE vs the noiseless landmarks (512^2 px), median front-of-head vertex error after
                centring each frame (mm), largest head and jaw rotation errors (degrees)
  photometric   the stage after the fit (PhotoConfig defaults, on in TrackConfig's, less `reach`: this truth
                is drawn by Gaussians, whose matte already reaches past the mesh as the stage's do): frames/s,
                its image loss (colour L1 + weighted silhouette term) before/after
  refinement    held-out PSNR (last fifth of the frames) after refining on 256^2 crops from the tracked
                parameters and from the true ones on the same crops and frames (truth_twin); gap = truth
                - tracked, landmarks only and with the photometric stage
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame.landmarks import LandmarkLayer, load_mediapipe_embedding, with_irises
from sa0.flame.synthetic import write_synthetic_flame
from sa0.head import load_head_model
from sa0.refine import RefineConfig, refine_subject
from sa0.refine.subjects import load_subject_clips, train_test
from sa0.track.fit import FitConfig, fit_landmarks
from sa0.track.frames import array_source
from sa0.track.photometric import PhotoConfig
from sa0.track.run import TrackConfig, track
from sa0.track.synthetic import fit_accuracy, synthetic_video, truth_detector, truth_twin


def detect_case(video) -> dict:
    from sa0.track.mediapipe_env import MediaPipeMissing
    from sa0.track.mp_detector import MediaPipeDetector

    try:
        with MediaPipeDetector(static=False) as det:
            det.detect(video.frames[0])  # start-up (model load) outside the timing
            t0 = time.perf_counter()
            found = sum(len(det.detect(f).faces) == 1 for f in video.frames)
            seconds = time.perf_counter() - t0
    except MediaPipeMissing as exc:
        return {"skipped": str(exc)}
    return {"frames_per_s": round(len(video.frames) / seconds, 1), "faces_found": f"{found}/{len(video.frames)}"}


def fit_case(head, embedding, video) -> dict:
    layer = LandmarkLayer(head.flame, embedding)
    det = truth_detector(video, noise_px=1.0, seed=0)
    frames = len(video.frames)
    observed = np.stack([det.detect(None).faces[0][embedding.ids] for _ in range(frames)])
    t0 = time.perf_counter()
    result = fit_landmarks(layer, observed, np.tile([512, 512], (frames, 1)), FitConfig())
    seconds = time.perf_counter() - t0
    acc = fit_accuracy(head, layer, video, result.params, result.projected)
    return {"frames": frames, "seconds": round(seconds, 2), "frames_per_s": round(frames / seconds, 2),
            "focal_fitted": round(result.focal, 3), "focal_true": round(float(video.clip.Ks[0, 0, 0, 0] / 512), 3)} \
        | {k: round(v, 3) for k, v in acc.items()}


def refine_case(root: Path, head, embedding, video, photo: PhotoConfig | None, steps: int) -> dict:
    det = truth_detector(video, noise_px=1.0, seed=0)
    out = root / ("photo" if photo else "plain")
    report = track(array_source(video.frames, name="bench"), det, head, embedding, out,
                   TrackConfig(size=256, overlay=False, photo=photo))
    clip = load_subject_clips("bench", [str(out)])[0]
    cfg = RefineConfig(steps=steps, scale_freeze_steps=min(500, steps // 4), log_every=10**9, eval_every=0, images=0,
                       seed=0)
    psnr = {}
    for name, c in (("tracked", clip), ("truth", truth_twin(clip, video, report))):
        train, test = train_test([c])
        psnr[name] = refine_subject(head, train, cfg, test=test).metrics["final"]["psnr"]
    row = {"photometric": photo is not None, "refine_steps": steps, "psnr_tracked": round(psnr["tracked"], 2),
           "psnr_truth": round(psnr["truth"], 2), "gap_db": round(psnr["truth"] - psnr["tracked"], 2),
           "reprojection_median_px_256": report["reprojection_px"]["median"]}
    if photo is not None:
        row |= {"photometric_frames_per_s": round(report["frames_per_second"]["photometric"], 2),
                "photometric_s": report["seconds"]["photometric_s"],
                "photometric_steps": report["photometric"]["steps"],
                "l1_before": round(report["photometric"]["l1_before"], 4),
                "l1_after": round(report["photometric"]["l1_after"], 4)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="shorter clips and refinement")
    parser.add_argument("--refine-steps", type=int, default=None, help="refinement steps (default 1000, quick 200)")
    args = parser.parse_args()
    steps = args.refine_steps or (200 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        flame_dir = str(write_synthetic_flame(root / "flame", seed=0))
        head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=64))
        embedding = with_irises(load_mediapipe_embedding(flame_dir, len(head.faces)), head.flame)
        video = synthetic_video(head, embedding, frames=24, resolution=512, seed=3)
        longer = synthetic_video(head, embedding, frames=48 if args.quick else 96, resolution=512, seed=3)
        report = {"detect": detect_case(video), "fit": [fit_case(head, embedding, v) for v in (video, longer)],
                  "refinement": [refine_case(root, head, embedding, video, p, steps)
                                 for p in (None, PhotoConfig(reach=False))]}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    d = report["detect"]
    print("detect (MediaPipe, 512^2): " + (f"skipped: {d['skipped']}" if "skipped" in d else
                                           f"{d['frames_per_s']} frames/s, faces found {d['faces_found']}"))
    for f in report["fit"]:
        print(f"fit {f['frames']:>3} frames: {f['frames_per_s']:6.2f} frames/s ({f['seconds']} s); clean landmark "
              f"RMSE {f['clean_rmse_px']} px @512, front-of-head vertices {f['vertex_mm']} mm (centred), head "
              f"{f['head_deg']} deg, jaw {f['jaw_deg']} deg max; focal {f['focal_fitted']} (true {f['focal_true']})")
    for r in report["refinement"]:
        extra = (f"; photometric {r['photometric_frames_per_s']} frames/s, image loss {r['l1_before']} -> "
                 f"{r['l1_after']}"
                 if r["photometric"] else "")
        print(f"refinement {r['refine_steps']} steps, {'with' if r['photometric'] else 'without'} photometric: "
              f"tracked {r['psnr_tracked']} dB vs truth {r['psnr_truth']} dB, gap {r['gap_db']} dB{extra}")


if __name__ == "__main__":
    main()

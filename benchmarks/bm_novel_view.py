"""Novel views with ground truth: how a frontal capture's avatar holds up at 30 and 60 degrees of yaw.

    python benchmarks/bm_novel_view.py [--json] [--quick] [--steps N] [--subjects N] [--frames T] [--size S]
        [--uv-resolution R] [--rows all|exact|tracked|none] [--landmarks-only] [--real DIR ...]

Subjects (sa0.eval.novel_view): ICT-FaceKit identities not used elsewhere (seeds 9001...), procedural
textures, a 40-frame frontal "phone video" at 256^2 (yaw within +-15 degrees, expressions, jaw), rendered
by the mesh rasteriser (not by Gaussians). Refinement (UV 128, `--steps` each, the last fifth held out);
scores on the held-out timesteps from the training camera (frontal) and orbited by +-30 and +-60 degrees
(mean of both sides): PSNR, SSIM over black, and maxAR; and registered PSNR / SSIM (`*_registered` keys),
after warping each render by the 2D similarity that best matches its truth (sa0.eval.registration: a tracked
head's frame is the truth's only up to the tracker's error, ~1 px and a degree or two at 30 degrees, which
costs dB on a finely textured head without making the avatar look any worse), with the warp's mean size.

Rows:
  synthetic head, tracked, unseen parts off   what sa0 did before (`*_before` keys; with --rows exact
                                              the true-parameter row with the unseen parts off)
  ICT head, tracked, unseen parts off / on    the open human head; on: sa0.refine.unseen's defaults
                                              (the `frontal_psnr` / `novel30_psnr` / `novel60_psnr` keys)
  ICT head, true parameters                   exact geometry: each unseen part on and off (ablation)
Tracking is track.py's (landmarks, then the photometric stage), the landmarks being the true pixels of the
ICT embedding's MediaPipe ids (both heads get the same 2D landmarks); `--landmarks-only` skips the
photometric stage (the tracked rows before 2026-12-07).

Real videos (`--real DIR ...`, folders track.py wrote; sa0.eval.yaw_split): the fifth of the frames with the
largest tracked yaw held out ("side"), as many near-frontal frames spread over the clip held out as a
control ("frontal"), refinement on the rest with the defaults and with the unseen parts off.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace

import numpy as np

from sa0.eval.novel_view import exact_capture, score_views, tracked_capture, truth_subject
from sa0.eval.yaw_split import real_case
from sa0.heads import ICT_NAME, SYNTHETIC_NAME, chosen_head
from sa0.refine import RefineConfig, refine_subject

NO_UNSEEN = {"unseen_fill_below": 0.0, "unseen_prior_weight": 0.0, "unseen_silhouette_weight": 0.0,
             "unseen_smooth_weight": 0.0}


def run_case(capture, truth, cfg: RefineConfig) -> dict:
    start = time.perf_counter()
    result = refine_subject(capture.head, capture.train, cfg)
    views = score_views(capture, truth, result.local)
    row = {"seconds": round(time.perf_counter() - start, 1), "num_gaussians": capture.head.num_gaussians}
    for name, yaws in (("frontal", (0,)), ("novel30", (30, -30)), ("novel60", (60, -60))):
        for metric in ("psnr", "ssim", "psnr_registered", "ssim_registered", "shift_px", "rotation_deg"):
            row[f"{name}_{metric}"] = round(float(np.mean([views[y][metric] for y in yaws])), 3)
        row[f"{name}_max_ar"] = round(max(views[y]["max_ar"] for y in yaws), 2)
    return row


def cases(rows: str) -> list[tuple[str, str, dict]]:
    """(row name, capture kind, RefineConfig changes)."""
    tracked = [
        ("synthetic head, tracked, unseen off", SYNTHETIC_NAME, NO_UNSEEN),
        ("ICT head, tracked, unseen off", ICT_NAME, NO_UNSEEN),
        ("ICT head, tracked, unseen on (default)", ICT_NAME, {}),
    ]
    exact = [
        ("ICT head, true params, unseen off", "exact", NO_UNSEEN),
        ("ICT head, true params, default", "exact", {}),
        ("ICT head, true params, default, silhouette off", "exact", {"unseen_silhouette_weight": 0.0}),
        ("ICT head, true params, default, smoothing off", "exact", {"unseen_smooth_weight": 0.0}),
        ("ICT head, true params, default, band off", "exact", {"unseen_silhouette_band": False}),
        ("ICT head, true params, default, whole-head silhouette", "exact", {"unseen_silhouette_face_only": False}),
        ("ICT head, true params, default + prior 1", "exact", {"unseen_prior_weight": 1.0}),
    ]
    return {"exact": exact, "tracked": tracked}.get(rows, tracked + exact)


def truth_rows(args, base: RefineConfig) -> dict[str, dict]:
    """The rows of `cases` averaged over the truth subjects."""
    rows: dict[str, list[dict]] = {}
    for k in range(args.subjects):
        truth = truth_subject(9001 + k, frames=args.frames, size=args.size)
        with tempfile.TemporaryDirectory() as tmp:
            captures = {"exact": exact_capture(truth, args.uv_resolution)}
            for name in (SYNTHETIC_NAME, ICT_NAME) if args.rows in ("all", "tracked") else ():
                with chosen_head(name) as (directory, _):
                    captures[name] = tracked_capture(truth, directory, f"{tmp}/{name}", args.uv_resolution,
                                                     args.size, photometric=not args.landmarks_only)
            for row, kind, change in cases(args.rows):
                rows.setdefault(row, []).append(run_case(captures[kind], truth, replace(base, **change)))
                if not args.json:
                    print(f"subject {k}: {row}: {rows[row][-1]}", flush=True)
    return {row: {key: round(float(np.mean([r[key] for r in runs])), 3) for key in runs[0]} for row, runs in rows.items()}


def real_rows(args, base: RefineConfig) -> dict[str, dict]:
    """Per tracked real video and refinement (defaults, unseen parts off): the yaw split's scores."""
    out = {}
    for directory in args.real:
        for label, change in (("default", {}), ("unseen off", NO_UNSEEN)):
            row = real_case(directory, replace(base, **change), uv_resolution=args.uv_resolution)
            out[f"{row['subject']}, {label}"] = row
            if not args.json:
                print(f"real {row['subject']}, {label}: {row}", flush=True)
    return out


def print_tables(report: dict) -> None:
    rows = report["rows"]
    if rows:
        print(f"\n{'row (PSNR dB; registered: after 2D registration)':<52} {'frontal':>8} {'30 deg':>8} {'60 deg':>8} "
              f"{'reg 30':>8} {'reg 60':>8} {'rot 30':>7} {'maxAR60':>8} {'s':>6}")
    for row, r in rows.items():
        print(f"{row:<52} {r['frontal_psnr']:8.2f} {r['novel30_psnr']:8.2f} {r['novel60_psnr']:8.2f} "
              f"{r['novel30_psnr_registered']:8.2f} {r['novel60_psnr_registered']:8.2f} {r['novel30_rotation_deg']:7.2f} "
              f"{r['novel60_max_ar']:8.1f} {r['seconds']:6.1f}")
    if report["real"]:
        print(f"\n{'real video, refinement':<40} {'frontal':>8} {'side':>8} {'gap':>6} {'|yaw| train/side':>18} {'s':>6}")
    for name, r in report["real"].items():
        print(f"{name:<40} {r['frontal_psnr']:8.2f} {r['side_psnr']:8.2f} {r['gap_db']:6.2f} "
              f"{r['train_yaw_mean']:8.1f} / {r['side_yaw_mean']:<7.1f} {r['seconds']:6.1f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="one subject, 500 steps")
    parser.add_argument("--steps", type=int, default=None, help="refinement steps (default 2000; quick 500)")
    parser.add_argument("--subjects", type=int, default=None, help="truth subjects (default 2; quick 1)")
    parser.add_argument("--frames", type=int, default=40, help="frames per subject (default 40)")
    parser.add_argument("--size", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--uv-resolution", type=int, default=128)
    parser.add_argument("--rows", choices=("all", "exact", "tracked", "none"), default="all",
                        help="exact / tracked: the true-parameter / tracked rows only; none: no truth subjects (with --real)")
    parser.add_argument("--landmarks-only", action="store_true", help="track without the photometric stage")
    parser.add_argument("--real", nargs="+", default=[], metavar="DIR",
                        help="tracked real videos (track.py output folders): train on the frames nearest frontal, "
                             "score the fifth with the largest tracked yaw")
    args = parser.parse_args(argv)
    steps = args.steps or (500 if args.quick else 2000)
    args.subjects = 0 if args.rows == "none" else args.subjects or (1 if args.quick else 2)
    base = RefineConfig(steps=steps, eval_every=0, images=0, log_every=max(1, steps // 5))
    table = truth_rows(args, base) if args.subjects else {}
    report = {"steps": steps, "subjects": args.subjects, "frames": args.frames, "resolution": args.size,
              "tracking": "landmarks" if args.landmarks_only else "landmarks + photometric",
              "uv_resolution": args.uv_resolution, "rows_run": args.rows}
    if table:
        default = table.get("ICT head, tracked, unseen on (default)") or table["ICT head, true params, default"]
        before = table.get("synthetic head, tracked, unseen off") or table["ICT head, true params, unseen off"]
        report.update({f"{v}_psnr": default[f"{v}_psnr"] for v in ("frontal", "novel30", "novel60")})
        report.update({f"{v}_psnr_registered": default[f"{v}_psnr_registered"] for v in ("frontal", "novel30", "novel60")})
        report.update({f"{v}_psnr_before": before[f"{v}_psnr"] for v in ("frontal", "novel30", "novel60")})
    report.update(rows=table, real=real_rows(args, base))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_tables(report)

if __name__ == "__main__":
    main()

"""Run a protocol over every clip of some shards as Ray tasks; write results.json, results.md, grids.

    run_evaluation(cfg, shard_dirs, out_dir, flame, layout, checkpoint=... | avatars=...) -> summary

One task per clip (ARCHITECTURE: Ray at the edges; `evaluate_clip` itself is plain torch). Clips
that cannot be evaluated under the protocol are listed with the reason, never silently dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sa0.config import FlameConfig, LayoutConfig
from sa0.eval.metrics import Unavailable, mean_or_unavailable, to_json
from sa0.eval.protocols import EvalConfig, EvalError

COLUMNS = {  # the paper's table layouts (METHOD §6), metric key -> header
    "ff_self": [("psnr", "PSNR↑"), ("ssim", "SSIM↑"), ("lpips_alex", "LPIPS↓"), ("csim", "CSIM↑"), ("aed", "AED↓"),
                ("apd", "APD↓"), ("akd", "AKD↓")],
    "ff_cross": [("csim", "CSIM↑"), ("aed", "AED↓"), ("apd", "APD↓")],
    "subject_mono": [("mse", "MSE↓"), ("psnr", "PSNR↑"), ("ssim", "SSIM↑"), ("lpips_alex", "LPIPS↓"),
                     ("max_ar", "maxAR"), ("num_gaussians", "#Gaussians")],
    "multiview_novel": [("psnr", "PSNR↑"), ("ssim", "SSIM↑"), ("lpips_alex", "LPIPS↓"), ("max_ar", "maxAR")],
}
EXTRA = ("psnr_masked", "ms_ssim", "lpips_vgg")


def _clip_task(shard_dir, key, driver_ref, cfg: EvalConfig, flame: FlameConfig, layout: LayoutConfig,
               checkpoint: str | None, avatars: str | None):
    from sa0.data.reader import load_clip
    from sa0.eval.protocols import AvatarPredictor, GeneratorPredictor, Scorer, evaluate_clip
    from sa0.head import load_head_model

    head = load_head_model(flame, layout)
    clip = load_clip(shard_dir, key)
    driver = load_clip(*driver_ref) if driver_ref else None
    predictor = GeneratorPredictor(checkpoint, head) if checkpoint else AvatarPredictor(avatars, head)
    try:
        rows, images = evaluate_clip(clip, driver, head, predictor, Scorer(cfg), cfg)
    except EvalError as exc:
        return {"clip": key, "error": str(exc)}
    return {"clip": key, "rows": [{k: to_json(v) for k, v in r.items()} for r in rows], "images": images}


def _value(row: dict, key: str):
    value = row.get(key)
    return Unavailable(value["unavailable"]) if isinstance(value, dict) else value


def summarise(rows: list[dict], keys) -> dict:
    return {k: to_json(mean_or_unavailable([_value(r, k) for r in rows])) for k in keys if any(k in r for r in rows)}


def markdown(cfg: EvalConfig, overall: dict, label: str) -> str:
    cols = COLUMNS[cfg.protocol]
    notes, cells = [], []
    for key, _ in cols:
        value = overall.get(key)
        if isinstance(value, dict):
            notes.append(f"{key}: unavailable ({value['unavailable']})")
            cells.append("n/a")
        elif value is None:
            cells.append("-")
        else:
            cells.append(f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}")
    lines = [f"Protocol `{cfg.protocol}`, K = {cfg.num_sources}, renders and ground truth over black.", "",
             "| method | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---|" * len(cols),
             f"| {label} | " + " | ".join(cells) + " |"]
    return "\n".join(lines + ([""] + [f"* {n}" for n in dict.fromkeys(notes)] if notes else [])) + "\n"


def _grid(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows of prediction | ground truth, resized to the first pair's height."""
    from PIL import Image

    h = pairs[0][0].shape[0]
    rows = []
    for pred, gt in pairs:
        fit = lambda x: np.asarray(Image.fromarray(x).resize((int(x.shape[1] * h / x.shape[0]), h)))  # noqa: E731
        rows.append(np.concatenate([fit(pred), fit(gt)], axis=1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)


def run_evaluation(cfg: EvalConfig, shard_dirs, out_dir, flame: FlameConfig, layout: LayoutConfig,
                   checkpoint: str | None = None, avatars: str | None = None, tracker=None,
                   max_in_flight: int | None = None) -> dict:
    import ray
    from PIL import Image
    from tqdm import tqdm

    from sa0.data.reader import list_clip_keys

    if (checkpoint is None) == (avatars is None):
        raise ValueError("give exactly one of checkpoint (an exported generator) or avatars (refine_batch output)")
    if avatars is not None and cfg.protocol in ("ff_self", "ff_cross") and not Path(avatars).is_file():
        raise ValueError(f"protocol {cfg.protocol} evaluates the feed-forward generator: pass a checkpoint "
                         "(or one avatar.npz file as a baseline for every clip)")
    clips = list_clip_keys(shard_dirs)
    if not clips:
        raise ValueError(f"no clips in {list(shard_dirs)}")
    task = ray.remote(num_cpus=1)(_clip_task)
    refs, results = [], []
    for i, (shard_dir, key) in enumerate(clips):
        driver = clips[(i + 1) % len(clips)] if cfg.protocol == "ff_cross" else None
        refs.append(task.remote(shard_dir, key, driver, cfg, flame, layout, checkpoint, avatars))
        if max_in_flight and len(refs) - len(results) >= max_in_flight:
            results.append(ray.get(refs[len(results)]))
    for ref in tqdm(refs[len(results):], desc="clips", unit="clip"):
        results.append(ray.get(ref))
    rows = [r for res in results for r in res.get("rows", [])]
    skipped = {res["clip"]: res["error"] for res in results if "error" in res}
    keys = [k for k, _ in COLUMNS[cfg.protocol]] + list(EXTRA)
    per_clip = {res["clip"]: summarise(res["rows"], keys) for res in results if "rows" in res}
    overall = summarise(rows, keys) if rows else {}
    label = f"sa0 ({'generator' if checkpoint else 'refined avatars'})"
    summary = {"protocol": cfg.protocol, "config": json.loads(json.dumps(asdict(cfg), default=str)),
               "evaluated": checkpoint or avatars, "background": "black", "frames": len(rows),
               "overall": overall, "per_clip": per_clip, "skipped_clips": skipped, "rows": rows}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out / "results.json")
    (out / "results.md").write_text(markdown(cfg, overall, label))
    scored = sorted((res for res in results if "images" in res), key=lambda r: per_clip[r["clip"]].get("psnr", 0)
                    if isinstance(per_clip[r["clip"]].get("psnr", 0), float) else 0)
    for name in ("best", "worst"):
        pairs = [res["images"][name] for res in (scored[::-1] if name == "best" else scored)[:4]]
        if pairs:
            Image.fromarray(_grid(pairs)).save(out / f"{name}.png")
    if tracker is not None:
        tracker.start(f"eval-{cfg.protocol}", {**{f"eval.{k}": v for k, v in summary["config"].items()},
                                               "evaluated": summary["evaluated"]})
        tracker.metrics({k: v for k, v in overall.items() if isinstance(v, (int, float))}, step=0)
        tracker.artifacts([str(out / n) for n in ("results.json", "results.md", "best.png", "worst.png")
                           if (out / n).is_file()])
        tracker.end()
    return summary

"""Synthetic fidelity benchmark: zero-shot generator quality across domains, K = 1..4, and the
refinement ablations of the paper's Table 9, all on data sa0 renders itself.

    python benchmarks/bm_fidelity.py --quick [--json]   # ~8 minutes on 2 CPU cores
    python benchmarks/bm_fidelity.py [--json]           # the full run; sized for one GPU

1. Render monocular shards in three synthetic domains (studio, outdoor: training; lowkey: held out).
2. Train the generator (phase 1, `demo` model; RANDOMLY INITIALISED ViT unless --encoder-weights)
   with jobs/train_generator.py's library call on a local Ray.
3. Evaluate it zero-shot on the held-out domain with the ff_self protocol for K = 1..4.
4. Refine each held-out subject from the generator (refine_subject, the last 20 % of frames held out)
   with the full regulariser and with each part removed: held-out PSNR / SSIM, maxAR in training
   views and in novel orbit views, Gaussian count, steps, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SIZES = {  # quick: 2 CPU cores in minutes; full: one GPU
    True: dict(train_subjects=4, test_subjects=2, frames=10, res=96, uv=64, steps=200, refine_steps=400, max_targets=8),
    False: dict(train_subjects=40, test_subjects=8, frames=60, res=256, uv=128, steps=20_000, refine_steps=10_000,
                max_targets=32),
}
ABLATIONS = {"full": {}, "no scale freeze": {"use_freeze": False}, "no clamp": {"use_clamp": False},
             "no aspect penalty": {"use_aspect": False}}


def _data(root: Path, flame_dir: str, size: dict) -> dict[str, Path]:
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.data.shards import write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model

    head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=size["uv"]))
    out = {}
    for i, domain in enumerate(("studio", "outdoor", "lowkey")):
        n = size["test_subjects"] if domain == "lowkey" else size["train_subjects"]
        out[domain] = root / domain
        write_shards(synthetic_clips(head, "mono", n, 1, size["frames"], 1, size["res"], DOMAINS[domain], seed=10 + i),
                     out[domain])
    return out


def _train(root: Path, flame_dir: str, data: dict, size: dict, weights: str | None) -> Path:
    from sa0.config import apply_overrides
    from sa0.train.job import train_generator
    from sa0.train.recipes import recipe

    job = apply_overrides(recipe("demo"), [
        "phase2=none", "train.run_name=fidelity", f"train.storage_path={root / 'runs'}", "train.mlflow_uri=off",
        f"flame.model_dir={flame_dir}", f"layout.uv_resolution={size['uv']}", f"phase1.steps={size['steps']}",
        f"phase1.data.shard_dirs={data['studio']},{data['outdoor']}", f"phase1.data.example.image_size={size['res']}",
        f"train.checkpoint_every={size['steps']}", *([f"model.encoder_weights={weights}"] if weights else [])])
    return train_generator(job).generator


def _zero_shot(root: Path, flame_dir: str, data: dict, size: dict, generator: Path) -> list[dict]:
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.eval.protocols import EvalConfig
    from sa0.eval.run import run_evaluation

    rows = []
    for k in (1, 2, 3, 4):
        cfg = EvalConfig(protocol="ff_self", num_sources=k, max_targets=size["max_targets"], targets_from=4,
                         lpips=False)  # the same targets (timesteps 4..) for every K
        s = run_evaluation(cfg, [data["lowkey"]], root / f"eval_k{k}", FlameConfig(model_dir=flame_dir),
                           LayoutConfig(uv_resolution=size["uv"]), checkpoint=str(generator))
        rows.append({"K": k, "psnr": s["overall"]["psnr"], "ssim": s["overall"]["ssim"],
                     "psnr_masked": s["overall"]["psnr_masked"], "frames": s["frames"]})
    return rows


def _ablations(flame_dir: str, data: dict, size: dict, generator: Path) -> list[dict]:
    import numpy as np

    from sa0.config import FlameConfig, LayoutConfig
    from sa0.data.reader import list_clip_keys, load_clip
    from sa0.head import load_head_model
    from sa0.model.inference import load_trained_generator
    from sa0.refine import RefineConfig, refine_subject
    from sa0.refine.subjects import train_test

    head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=size["uv"]))
    trained = load_trained_generator(generator, head)
    clips = [load_clip(d, k) for d, k in list_clip_keys([data["lowkey"]])]
    rows = []
    for name, change in ABLATIONS.items():
        runs = []
        for clip in clips:
            train, test = train_test([clip])
            start = time.perf_counter()
            result = refine_subject(head, train, RefineConfig(steps=size["refine_steps"], **change), test=test,
                                    generator=trained)
            runs.append((result.metrics, time.perf_counter() - start))
        mean = lambda f: float(np.mean([f(m) for m, _ in runs]))  # noqa: E731
        rows.append({"variant": name, "psnr_init": mean(lambda m: m["initial"]["psnr"]),
                     "psnr": mean(lambda m: m["final"]["psnr"]), "ssim": mean(lambda m: m["final"]["ssim"]),
                     "max_ar": mean(lambda m: m["max_ar"]), "max_ar_novel": mean(lambda m: m["max_ar_novel"]),
                     "gaussians": head.num_gaussians, "steps": size["refine_steps"],
                     "seconds": float(np.mean([s for _, s in runs]))})
    return rows


def run(quick: bool, weights: str | None) -> dict:
    import ray

    from sa0.flame.synthetic import write_synthetic_flame

    size = SIZES[quick]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="bmfid") as tmp:
        root = Path(tmp)
        flame_dir = str(write_synthetic_flame(root / "flame", seed=0))
        data = _data(root, flame_dir, size)
        ray.init(include_dashboard=False, log_to_driver=False, _temp_dir=str(root / "ray"))
        try:
            generator = _train(root, flame_dir, data, size, weights)
            zero_shot = _zero_shot(root, flame_dir, data, size, generator)
        finally:
            ray.shutdown()
        ablations = _ablations(flame_dir, data, size, generator)
    return {"quick": quick, "sizes": size, "encoder": weights or "random init", "zero_shot_lowkey": zero_shot,
            "refinement_ablations": ablations, "seconds": time.perf_counter() - start}


def table(out: dict) -> str:
    s = out["sizes"]
    lines = [f"Generator: phase 1 on studio + outdoor ({s['train_subjects']} subjects each, {s['frames']} frames, "
             f"{s['res']} px), {s['steps']} steps, UV {s['uv']}^2, encoder {out['encoder']}. Zero-shot on lowkey "
             "(ff_self, over black; targets: timesteps 4.. for every K):", "", "| K | PSNR↑ | SSIM↑ | PSNR (face mask) | frames |", "|---|---|---|---|---|"]
    lines += [f"| {r['K']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['psnr_masked']:.2f} | {r['frames']} |"
              for r in out["zero_shot_lowkey"]]
    lines += ["", f"Refinement of the {s['test_subjects']} lowkey subjects from the generator, {s['refine_steps']} steps "
              "(held-out last 20 % of frames; maxAR in training views / in novel orbit views):", "",
              "| variant | PSNR init | PSNR↑ | SSIM↑ | maxAR | maxAR novel | #Gaussians | steps | seconds |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['psnr_init']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['max_ar']:.2f} | "
              f"{r['max_ar_novel']:.2f} | {r['gaussians']} | {r['steps']} | {r['seconds']:.1f} |"
              for r in out["refinement_ablations"]]
    return "\n".join(lines + ["", f"total {out['seconds']:.0f} s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--encoder-weights", default=None, help="local ViT weights file (default: random init)")
    args = parser.parse_args()
    out = run(args.quick, args.encoder_weights)
    print(json.dumps(out, indent=1) if args.json else table(out))


if __name__ == "__main__":
    main()

"""The generator learns: a CPU-size proof run of both phases and the paper's generator tables on
identities it never saw, plus short personalisation from its output.

    python benchmarks/bm_generator.py [--quick] [--json] [--work DIR] [--mlflow-uri URI | --no-mlflow]

1. Train the `proof` recipe (jobs/train_generator.py's library call on a local Ray): synthetic
   identities (random shape, skin, hair, brows, lips, irises) on sa0's synthetic head, monocular
   clips for phase 1, multi-view captures (plus phase 1's clips, replayed) for phase 2; a small CNN
   encoder trained from scratch (NOT the paper's frozen DINOv3) and the visibility pool.
2. Phase 2 again from the same phase-1 generator with the paper's mix alone (L2-SP anchor, 25 %
   cross-time draws from the multi-view clips, no replay) and with neither anchor nor cross-time mix.
3. Held-out identities (seeds no training clip uses), through sa0.eval.run_evaluation (what
   jobs/evaluate.py runs): zero-shot K = 1..4 on monocular (ff_self) and multi-view
   (multiview_novel) identities beside a mean-avatar baseline (one avatar refined on every training
   identity's frames: the best head that ignores its sources), with the visibility pool and, same
   weights, the plain mean; phase 1 vs each phase 2 at K = 4.
4. Personalisation: refine a held-out identity from the generator and from the neutral start for
   100 / 250 / 500 / 1K / 2K (/ 10K) steps; PSNR on its held-out timesteps per step count. Novel
   views: each multi-view held-out identity refined on its two cameras nearest the front, scored on
   the cameras at wider yaws (up to 2K steps at full size, 500 with --quick).
The tables and the JSON go to MLflow as artifacts of the proof run (beside its training curves).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

SIZES = {  # quick: <= 15 minutes on 2 CPU cores; full: <= 60 minutes proof + <= 20 minutes personalisation;
    # test: the few-minute run tests/test_bm_generator.py makes
    "test": dict(phase1=400, phase2=40, mono_test=3, multiview_test=1, mean_steps=600, max_targets=4,
                 curve=(100, 300), personalise_subjects=1, novel_max_steps=300, paper_mix=False),
    "quick": dict(phase1=1500, phase2=150, mono_test=6, multiview_test=2, mean_steps=2000, max_targets=8,
               curve=(100, 250, 500, 1000, 2000), personalise_subjects=1, novel_max_steps=500),
    "full": dict(phase1=6000, phase2=600, mono_test=12, multiview_test=4, mean_steps=4000, max_targets=8,
                curve=(100, 250, 500, 1000, 2000, 10_000), personalise_subjects=1, novel_max_steps=2000),
}
HELD_OUT_SEEDS = {"mono": 9101, "multiview": 9102}  # identities no training shard has (those use seeds 1, 2)
DEFAULT = "phase 2 (anchor + cross-time mix + monocular replay)"  # the proof recipe's own phase 2
PAPER_MIX = "phase 2, paper's mix only (anchor, multi-view cross-time draws)"
NO_ANCHOR = "phase 2, no anchor, no cross-time mix"


def variants(job, paper_mix: bool = True) -> dict[str, list[str]]:
    """Phase-2 runs from the same phase-1 generator besides the recipe's own: name -> overrides (the
    paper's mix only where `paper_mix`: the test size leaves it out for time)."""
    multiview = f"phase2.data.shard_dirs={job.phase2.data.shard_dirs[0]}"  # without phase 1's clips
    runs = {PAPER_MIX: [multiview]} if paper_mix else {}
    return runs | {NO_ANCHOR: [multiview, "phase2.loss.l2_sp=0", "phase2.data.example.sampler.cross_camera_prob=1"]}

PERSONALISE_FRAMES = 40  # the held-out identity's clip for personalisation (the last 20 % held out)
MONO_SOURCES = "spread"  # ff_self: K sources spread over the clip, as training draws them (sa0.data.sampling);
# the targets are the timesteps no K takes, the same for every K (sa0.eval.protocols)


def proof_job(root: Path, size: dict, mlflow_uri: str):
    from sa0.config import apply_overrides
    from sa0.train.demo import ensure_demo_inputs
    from sa0.train.recipes import recipe

    job = apply_overrides(recipe("proof"), [
        f"train.storage_path={root / 'runs'}", f"train.mlflow_uri={mlflow_uri}", f"train.cache_dir={root / 'cache'}",
        f"phase1.steps={size['phase1']}", f"phase2.steps={size['phase2']}"])
    return ensure_demo_inputs(job, root / "cache")


def held_out_shards(root: Path, job, size: dict) -> dict[str, Path]:
    """Monocular and multi-view clips of identities the training shards do not have."""
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model
    from sa0.train.demo import RECIPE_DATA, shards_once

    out = {}
    for phase, kind in ((1, "mono"), (2, "multiview")):
        _, _, timesteps, views, res = RECIPE_DATA["proof"][phase]
        n = size[f"{kind}_test"]
        out[kind] = shards_once(root / f"held_out_{kind}_{n}", lambda: synthetic_clips(
            load_head_model(job.flame, job.layout), kind, n, 1, timesteps, views, res, DOMAINS["studio"],
            seed=HELD_OUT_SEEDS[kind], dataset=f"held-out-{kind}"), f"{n} held-out {kind} identities")
    return out


def phase2_variant(job, phase1_export: Path, name: str, overrides: list[str]) -> Path:
    """Phase 2 alone from `phase1_export` in its own run (the run starts with phase 1 already exported)."""
    from sa0.config import apply_overrides
    from sa0.train.job import train_generator

    run_name = "proof-" + "".join(c if c.isalnum() else "-" for c in name).strip("-")
    variant = apply_overrides(job, [f"train.run_name={run_name}", *overrides])
    run_dir = Path(variant.train.storage_path) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / phase1_export.name).exists():
        shutil.copytree(phase1_export, run_dir / phase1_export.name)
    return train_generator(variant).exports[2]


def mean_avatar(root: Path, job, size: dict) -> Path:
    """One avatar refined on frames of every training identity (each posed with its own shape): the
    best head that does not look at its sources."""
    import numpy as np

    from sa0.data.reader import list_clip_keys, load_clip
    from sa0.data.schema import Clip, FlameTrack
    from sa0.export.package import save_package
    from sa0.head import load_head_model
    from sa0.refine import RefineConfig, refine_subject

    head = load_head_model(job.flame, job.layout)
    clips = [load_clip(d, k) for d, k in list_clip_keys(job.phase1.data.shard_dirs)]
    cat = lambda name: np.concatenate([getattr(c, name) for c in clips])  # noqa: E731
    track = FlameTrack(**{k: np.concatenate([c.flame.as_dict()[k] for c in clips]) for k in clips[0].flame.as_dict()})
    pooled = Clip(replace(clips[0].meta, subject="mean", clip_id="all"), cat("images"), cat("mattes"), cat("viewmats"),
                  cat("Ks"), cat("face_boxes"), track)
    result = refine_subject(head, pooled, RefineConfig(steps=size["mean_steps"]))
    return save_package(root / "mean" / "avatar.npz", result.local, head.layout, track.shape[result.reference_frame],
                        {"subject": "mean", "reference_frame": 0, "note": "mean avatar over the training identities"})


def evaluate(root: Path, job, shards: Path, protocol: str, k: int, size: dict, name: str, *, checkpoint=None,
             avatars=None) -> dict:
    from sa0.eval.protocols import EvalConfig
    from sa0.eval.run import run_evaluation

    cfg = EvalConfig(protocol=protocol, num_sources=k, max_targets=size["max_targets"], lpips=False,
                     sources=MONO_SOURCES)
    summary = run_evaluation(cfg, [shards], root / "eval" / name, job.flame, job.layout,
                             checkpoint=str(checkpoint) if checkpoint else None, avatars=str(avatars) if avatars else None)
    return {"psnr": summary["overall"]["psnr"], "ssim": summary["overall"]["ssim"], "frames": summary["frames"]}


def with_pool(export: Path, pool: str, root: Path) -> Path:
    """A copy of an exported generator whose model config pools with `pool` (same weights)."""
    out = root / f"{export.name}_{pool}"
    if not out.exists():
        shutil.copytree(export, out)
        meta_path = out / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["model"]["pool"] = pool
        meta_path.write_text(json.dumps(meta, indent=1))
    return out


def personalise(root: Path, job, export: Path, size: dict) -> list[dict]:
    """Held-out-timestep PSNR after each step count, from the generator and from the neutral start, on
    a longer clip of held-out monocular identities (the last 20 % of its frames held out)."""
    import numpy as np

    from sa0.data.reader import list_clip_keys, load_clip
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model
    from sa0.model.inference import load_trained_generator
    from sa0.refine import RefineConfig, refine_subject
    from sa0.refine.subjects import train_test
    from sa0.train.demo import shards_once

    head = load_head_model(job.flame, job.layout)
    n, res = size["personalise_subjects"], job.phase1.data.example.image_size
    shards = shards_once(root / f"personalise_{n}", lambda: synthetic_clips(
        head, "mono", n, 1, PERSONALISE_FRAMES, 1, res, DOMAINS["studio"], seed=HELD_OUT_SEEDS["mono"],
        dataset="personalise"), f"{n} held-out identities' longer clips")
    trained = load_trained_generator(export, head)
    splits = [train_test([load_clip(d, k)]) for d, k in list_clip_keys([shards])]
    rows = []
    for steps in size["curve"]:
        row = {"steps": steps}
        for start, generator in (("generator", trained), ("neutral", None)):
            began = time.perf_counter()
            runs = [refine_subject(head, train, RefineConfig(steps=steps), test=test, generator=generator).metrics
                    for train, test in splits]
            row[f"{start}_init_psnr"] = float(np.mean([m["initial"]["psnr"] for m in runs]))
            row[f"{start}_psnr"] = float(np.mean([m["final"]["psnr"] for m in runs]))
            row[f"{start}_seconds"] = (time.perf_counter() - began) / len(splits)
        rows.append(row)
        print(f"personalise {steps} steps: generator {row['generator_psnr']:.2f} dB, neutral {row['neutral_psnr']:.2f} dB",
              flush=True)
    return rows


def _camera_groups(clip) -> dict[str, list[int]]:
    """"train": the two cameras nearest the front; then the others by their yaw from the front (either
    side, rounded to 10 degrees: the synthetic rigs jitter each camera by a degree or two)."""
    import numpy as np

    rot, trans = clip.viewmats[0, :, :3, :3], clip.viewmats[0, :, :3, 3]
    centres = -np.einsum("cji,cj->ci", rot, trans)
    yaw = np.degrees(np.abs(np.arctan2(centres[:, 0], centres[:, 2])))
    order = [int(i) for i in np.argsort(yaw)]
    groups = {"train": sorted(order[:2])}
    for i in order[2:]:
        groups.setdefault(f"{10 * int(round(yaw[i] / 10))} deg", []).append(i)
    return groups


def personalise_novel(job, export: Path, shards: Path, size: dict) -> list[dict]:
    """Novel views after personalisation: each held-out multi-view identity refined on its two cameras
    nearest the front (every timestep), then scored on those (the training views) and on the other
    cameras (grouped by yaw), from the generator and from the neutral start; 1 step (the start) and
    the curve's counts up to size["novel_max_steps"] (10K on every multi-view identity: ~25 minutes)."""
    from collections import defaultdict

    import numpy as np

    from sa0.data.reader import list_clip_keys, load_clip
    from sa0.head import load_head_model
    from sa0.model.inference import load_trained_generator
    from sa0.refine import RefineConfig, refine_subject
    from sa0.refine.refine import evaluate as score
    from sa0.refine.subjects import select_cameras

    head = load_head_model(job.flame, job.layout)
    trained = load_trained_generator(export, head)
    clips = [load_clip(d, k) for d, k in list_clip_keys([shards])]
    rows = []
    for steps in (1,) + tuple(s for s in size["curve"] if s <= size["novel_max_steps"]):
        row = {"steps": steps}
        for start, generator in (("generator", trained), ("neutral", None)):
            psnrs, cfg = defaultdict(list), RefineConfig(steps=steps, eval_every=0)
            for clip in clips:
                groups = _camera_groups(clip)
                local = refine_subject(head, select_cameras(clip, groups["train"]), cfg, generator=generator).local
                for name, idx in groups.items():
                    psnrs[name].append(score(head, local, select_cameras(clip, idx), cfg.render)["psnr"])
            row[start] = {name: float(np.mean(v)) for name, v in psnrs.items()}
        rows.append(row)
        print(f"personalise (novel views) {steps} steps: " + "; ".join(
            f"{start} " + ", ".join(f"{k} {v:.2f}" for k, v in row[start].items()) for start in ("generator", "neutral")),
            flush=True)
    return rows


def generator_tables(root: Path, job, held: dict, exports: dict, mean: Path, size: dict) -> dict:
    """Zero-shot K = 1..4 on the monocular (ff_self) and multi-view (multiview_novel) held-out
    identities with the visibility pool and the plain mean (the same weights), the mean avatar on
    both, and the phase ablation at K = 4."""
    sets = {"mono": (held["mono"], "ff_self"), "multiview": (held["multiview"], "multiview_novel")}
    out = {"mean_avatar": {kind: evaluate(root, job, shards, protocol, 1, size, f"mean_avatar_{kind}", avatars=mean)
                           for kind, (shards, protocol) in sets.items()}}
    final = exports[DEFAULT]
    for pool in ("visible", "mean"):
        model = with_pool(final, pool, root / "pools")
        out[f"zero_shot_{pool}"] = {kind: [evaluate(root, job, shards, protocol, k, size, f"{kind}_k{k}_{pool}",
                                                    checkpoint=model) for k in (1, 2, 3, 4)]
                                    for kind, (shards, protocol) in sets.items()}
    out["phases"] = {name: {kind: evaluate(root, job, shards, protocol, 4, size, f"{kind}_{i}", checkpoint=path)
                            for kind, (shards, protocol) in sets.items()}
                     for i, (name, path) in enumerate(exports.items())}
    return out


def run(size_name: str, mlflow_uri: str, work: str | None = None) -> dict:
    """work: keep everything there (a rerun skips finished training phases and built data); None: a
    temporary directory, removed at the end."""
    import contextlib

    import ray

    from sa0.train.job import train_generator

    size = SIZES[size_name]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    start = time.perf_counter()
    place = contextlib.nullcontext(work) if work else tempfile.TemporaryDirectory(dir="/tmp", prefix="bmgen")
    with place as tmp:
        root = Path(tmp).absolute()
        job = proof_job(root, size, mlflow_uri)
        held = held_out_shards(root, job, size)
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            result = train_generator(job)
            proof_minutes = (time.perf_counter() - start) / 60
            exports = {"phase 1 only": result.exports[1], DEFAULT: result.exports[2]}
            for name, overrides in variants(job, size.get("paper_mix", True)).items():
                exports[name] = phase2_variant(job, result.exports[1], name, overrides)
            mean = mean_avatar(root, job, size)
            tables = generator_tables(root, job, held, exports, mean, size)
        finally:
            ray.shutdown()
        began = time.perf_counter()
        curve = personalise(root, job, exports[DEFAULT], size)
        novel = personalise_novel(job, exports[DEFAULT], held["multiview"], size)
        out = summarise(tables, curve, size, size_name)
        out["personalise_novel"] = novel
        out.update(proof_minutes=proof_minutes, personalise_minutes=(time.perf_counter() - began) / 60,
                   minutes=(time.perf_counter() - start) / 60, mlflow_run_id=result.mlflow_run_id)
        log_to_mlflow(out, mlflow_uri, root)
    return out


def summarise(tables: dict, curve: list[dict], size: dict, size_name: str) -> dict:
    """The JSON: the issue's keys first (zero_shot_psnr_k*: monocular held-out identities, ff_self,
    visibility pool), then every other figure and the tables."""
    phases = tables["phases"]
    drop = lambda name: phases["phase 1 only"]["mono"]["psnr"] - phases[name]["mono"]["psnr"]  # noqa: E731
    at = {row["steps"]: row for row in curve}
    final, short = at[max(at)], at.get(500, curve[0])
    out = {"mean_avatar_psnr": tables["mean_avatar"]["mono"]["psnr"],
           "mean_avatar_multiview_psnr": tables["mean_avatar"]["multiview"]["psnr"]}
    for pool, suffix in (("visible", ""), ("mean", "_mean_pool")):
        for kind, infix in (("mono", ""), ("multiview", "_multiview")):
            out.update({f"zero_shot{infix}_psnr_k{r + 1}{suffix}": row["psnr"]
                        for r, row in enumerate(tables[f"zero_shot_{pool}"][kind])})
    out.update(phase2_anchor_drop_db=drop(DEFAULT), phase2_paper_mix_drop_db=drop(PAPER_MIX) if PAPER_MIX in phases else None,
               phase2_no_anchor_drop_db=drop(NO_ANCHOR),
               personalise_500_gap_db=final["generator_psnr"] - short["generator_psnr"],
               personalise_500_gap_db_neutral=final["neutral_psnr"] - short["neutral_psnr"],
               personalise_final_steps=max(at), size=size_name, sizes=size, encoder="cnn (trained from scratch)",
               tables=tables, personalise=curve)
    return out


def _k_table(t: dict, kind: str, title: str) -> list[str]:
    mean = t["mean_avatar"][kind]
    lines = [title, "", "| method | K | PSNR↑ (visibility pool) | SSIM↑ | PSNR↑ (plain mean pool) | SSIM↑ |",
             "|---|---|---|---|---|---|", f"| mean avatar (one avatar for all) | - | {mean['psnr']:.2f} | {mean['ssim']:.4f} | | |"]
    for k, (vis, plain) in enumerate(zip(t["zero_shot_visible"][kind], t["zero_shot_mean"][kind]), 1):
        lines.append(f"| sa0 generator, zero-shot | {k} | {vis['psnr']:.2f} | {vis['ssim']:.4f} | {plain['psnr']:.2f} | "
                     f"{plain['ssim']:.4f} |")
    return lines + [""]


def table(out: dict) -> str:
    s, t = out["sizes"], out["tables"]
    lines = [f"Proof recipe: {s['phase1']} phase-1 + {s['phase2']} phase-2 steps, synthetic identities on sa0's "
             "synthetic head, encoder: a small CNN trained from scratch (not the paper's frozen DINOv3), trained "
             f"with the visibility pool. Held-out identities: {s['mono_test']} monocular, {s['multiview_test']} "
             "multi-view.", ""]
    lines += _k_table(t, "mono", "Monocular held-out identities (ff_self; sources: K timesteps spread over the clip, "
                      "targets: the timesteps no K takes):")
    lines += _k_table(t, "multiview", "Multi-view held-out identities (multiview_novel; sources: K other cameras at "
                      "timestep 0, targets: the held-out camera, every timestep):")
    lines += ["| training | PSNR↑ mono (ff_self, K = 4) | SSIM↑ | PSNR↑ multi-view (held-out camera, K = 4) | SSIM↑ |",
              "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['mono']['psnr']:.2f} | {r['mono']['ssim']:.4f} | {r['multiview']['psnr']:.2f} | "
              f"{r['multiview']['ssim']:.4f} |" for name, r in t["phases"].items()]
    lines += ["", "Personalisation (held-out timesteps of a held-out identity; PSNR at the start in brackets):", "",
              "| steps | from the generator | from the neutral start | seconds (generator / neutral) |", "|---|---|---|---|"]
    lines += [f"| {r['steps']} | {r['generator_psnr']:.2f} ({r['generator_init_psnr']:.2f}) | {r['neutral_psnr']:.2f} "
              f"({r['neutral_init_psnr']:.2f}) | {r['generator_seconds']:.1f} / {r['neutral_seconds']:.1f} |"
              for r in out["personalise"]]
    lines += _novel_table(out.get("personalise_novel") or [])
    keys = [k for k in out if isinstance(out[k], float)]
    lines += ["", " ".join(f"{k}={out[k]:.2f}" for k in keys)]
    return "\n".join(lines)


def _novel_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    views = list(rows[0]["generator"])
    head = " | ".join(f"{v} (gen.)" for v in views) + " | " + " | ".join(f"{v} (neutral)" for v in views)
    lines = ["", "Personalisation, novel views (multi-view held-out identities refined on the two cameras nearest "
             "the front, every timestep; PSNR per camera group; 1 step = the start):", "", f"| steps | {head} |",
             "|---" * (1 + 2 * len(views)) + "|"]
    lines += [f"| {r['steps']} | " + " | ".join(f"{r['generator'][v]:.2f}" for v in views) + " | "
              + " | ".join(f"{r['neutral'][v]:.2f}" for v in views) + " |" for r in rows]
    return lines


def log_to_mlflow(out: dict, mlflow_uri: str, root: Path) -> None:
    """The tables (markdown) and the JSON as artifacts of the proof run, its figures as metrics."""
    from sa0.experiments import Tracker

    if mlflow_uri == "off" or not out.get("mlflow_run_id"):
        return
    (root / "generator_tables.md").write_text(table(out) + "\n")
    (root / "generator_tables.json").write_text(json.dumps(out, indent=1))
    tracker = Tracker("sa0-generator", mlflow_uri)
    tracker.start("proof", {}, run_id=out["mlflow_run_id"])
    tracker.artifacts([str(root / "generator_tables.md"), str(root / "generator_tables.json")])
    tracker.end({f"bm.{k}": v for k, v in out.items() if isinstance(v, float)})


def main() -> None:
    from sa0.experiments import OFF, tracking_uri

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="<= 15 minutes on 2 CPU cores, smaller margins")
    parser.add_argument("--size", choices=tuple(SIZES), default=None, help="full (default), quick (= --quick) or test")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: sqlite:///mlflow.db here)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--work", default=None, help="keep runs and data here; a rerun reuses finished phases "
                        "(default: a temporary directory)")
    args = parser.parse_args()
    out = run(args.size or ("quick" if args.quick else "full"), OFF if args.no_mlflow else tracking_uri(args.mlflow_uri),
              args.work)
    print(json.dumps(out, indent=1) if args.json else table(out))


if __name__ == "__main__":
    main()

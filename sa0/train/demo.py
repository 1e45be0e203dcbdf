"""Inputs for a run that was given none: the synthetic FLAME-format head and small synthetic shards
(the demo's; the proof recipe's: more identities, sized so that a generator must read its sources).

Everything is written once into a cache directory and reused (a shard directory counts once its
manifest exists; the head once its model file exists), so a second demo run starts training at once.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from sa0.data.shards import MANIFEST, ShardError, read_manifest
from sa0.flame.io import FLAME_DIR_ENV
from sa0.train.recipes import GeneratorJob

# per recipe and phase: kind, subjects, timesteps, views, clip resolution (px)
RECIPE_DATA = {
    "demo": {1: ("mono", 8, 12, 1, 128), 2: ("multiview", 4, 6, 6, 128)},
    "proof": {1: ("mono", 32, 12, 1, 96), 2: ("multiview", 8, 6, 6, 96)},
}
# recipes whose phase 2 also reads phase 1's monocular clips (replay): at the proof's scale the paper's
# anchor and multi-view cross-time draws alone do not keep the monocular prior (benchmarks/bm_generator.py)
PHASE2_REPLAY = ("proof",)


def ensure_demo_inputs(job: GeneratorJob, cache_dir: Path) -> GeneratorJob:
    """-> job with flame.model_dir and every phase's data.shard_dirs filled (building what is missing;
    directories are written under a .partial name and renamed, so a crash never leaves half of one)"""
    from sa0.flame.synthetic import write_synthetic_flame

    flame = job.flame
    if flame.model_dir is None and not os.environ.get(FLAME_DIR_ENV):
        head_dir = cache_dir / "synthetic_flame"
        if not head_dir.is_dir():
            print(f"building the synthetic FLAME-format head in {head_dir}", flush=True)
            tmp = head_dir.with_name(head_dir.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            write_synthetic_flame(tmp, seed=0)
            os.replace(tmp, head_dir)
        flame = replace(flame, model_dir=str(head_dir))
    job = replace(job, flame=flame)
    phases = {}
    for number, phase in job.phases():
        if not phase.data.shard_dirs:
            dirs = (str(_ensure_shards(job, number, cache_dir)),)
            if number == 2 and job.recipe in PHASE2_REPLAY:
                dirs += tuple(phases["phase1"].data.shard_dirs)
            phase = replace(phase, data=replace(phase.data, shard_dirs=dirs))
        phases[f"phase{number}"] = phase
    return replace(job, **phases)


def _ensure_shards(job: GeneratorJob, phase: int, cache_dir: Path) -> Path:
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model

    kind, subjects, timesteps, views, resolution = RECIPE_DATA.get(job.recipe, RECIPE_DATA["demo"])[phase]
    out = cache_dir / f"shards_{kind}_{subjects}x{timesteps}x{views}_{resolution}"
    return shards_once(out, lambda: synthetic_clips(load_head_model(job.flame, job.layout), kind, subjects, 1, timesteps,
                                                    views, resolution, DOMAINS["studio"], seed=phase),
                       f"{subjects} synthetic {kind} subjects")


def shards_once(out: Path, clips, what: str) -> Path:
    """The shard directory `out`, written from clips() unless a readable one is there already (made
    under a .partial name and renamed, so a crash never leaves half of one)."""
    from sa0.data.shards import write_shards

    if (out / MANIFEST).is_file():
        try:
            read_manifest(out)
            return out
        except ShardError as exc:  # written by an older sa0: render again
            print(f"{exc.args[0].split(';')[0]}; rendering it again", flush=True)
            shutil.rmtree(out)
    print(f"rendering {what} into {out} (once; reused by later runs)", flush=True)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_shards(clips(), tmp)
    os.replace(tmp, out)
    return out

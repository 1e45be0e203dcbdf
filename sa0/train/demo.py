"""Inputs for a run that was given none: the synthetic FLAME-format head and small synthetic shards.

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

# kind, subjects, timesteps, views, clip resolution (px) per phase
DEMO_DATA = {1: ("mono", 8, 12, 1, 128), 2: ("multiview", 4, 6, 6, 128)}


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
            shard_dir = _ensure_shards(job, number, cache_dir)
            phase = replace(phase, data=replace(phase.data, shard_dirs=(str(shard_dir),)))
        phases[f"phase{number}"] = phase
    return replace(job, **phases)


def _ensure_shards(job: GeneratorJob, phase: int, cache_dir: Path) -> Path:
    from sa0.data.shards import write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model

    kind, subjects, timesteps, views, resolution = DEMO_DATA[phase]
    out = cache_dir / f"shards_{kind}_{subjects}x{timesteps}x{views}_{resolution}"
    if (out / MANIFEST).is_file():
        try:
            read_manifest(out)
            return out
        except ShardError as exc:  # written by an older sa0: render again
            print(f"{exc.args[0].split(';')[0]}; rendering it again", flush=True)
            shutil.rmtree(out)
    print(f"rendering {subjects} synthetic {kind} subjects into {out} (once; reused by later runs)", flush=True)
    head = load_head_model(job.flame, job.layout)
    clips = synthetic_clips(head, kind, subjects, 1, timesteps, views, resolution, DOMAINS["studio"], seed=phase)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_shards(clips, tmp)
    os.replace(tmp, out)
    return out

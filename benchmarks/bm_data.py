"""Example-building throughput: decode + sample + crop/resize of K = 4 source examples, per CPU.

    python benchmarks/bm_data.py [--json] [--examples N]

Writes small synthetic mono shards at 256^2 and 512^2 (sa0.data.synthetic), then times
build_example() on one core in this process (examples per second per CPU), and the same work
through the Ray Data pipeline on all cores (examples per second after the first batch, whole
machine; the start-up time is reported separately).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.examples import ExampleConfig, build_example
from sa0.data.pipeline import DataConfig, example_dataset
from sa0.data.sampling import SamplerConfig
from sa0.data.shards import iter_tar_samples, write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.flame.synthetic import write_synthetic_flame
from sa0.head import load_head_model


def _make_shards(root: str, resolution: int) -> str:
    flame_dir = write_synthetic_flame(os.path.join(root, "flame"), seed=0)
    head = load_head_model(FlameConfig(model_dir=str(flame_dir)), LayoutConfig(uv_resolution=128))
    out = os.path.join(root, f"shards{resolution}")
    write_shards(synthetic_clips(head, "mono", 4, 1, 12, 1, resolution, DOMAINS["studio"], seed=0), out)
    return out


def bench_single_cpu(shard_dir: str, examples: int) -> float:
    torch.set_num_threads(1)
    samples = [s for p in sorted(os.listdir(shard_dir)) if p.endswith(".tar")
               for s in iter_tar_samples(os.path.join(shard_dir, p))]
    cfg = ExampleConfig(phase=1, image_size=256, sampler=SamplerConfig(max_sources=4))
    rng = np.random.default_rng(0)
    build_example(samples[0], "warmup", rng, 1.0, cfg)
    t0 = time.perf_counter()
    for i in range(examples):
        build_example(samples[i % len(samples)], "bench", rng, 1.0, cfg)
    return examples / (time.perf_counter() - t0)


def bench_ray(shard_dir: str, examples_per_clip: int) -> dict:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        cfg = DataConfig(shard_dirs=(shard_dir,), example=ExampleConfig(image_size=256, sampler=SamplerConfig(max_sources=4)),
                         examples_per_clip=examples_per_clip)
        ds = example_dataset(cfg)
        t_start = time.perf_counter()
        batches = iter(ds.iter_torch_batches(batch_size=8))
        next(batches)  # pipeline start-up, timed separately
        t0 = time.perf_counter()
        count = sum(len(b["src_mask"]) for b in batches)
        return {"examples": count, "examples_per_s": count / (time.perf_counter() - t0),
                "startup_s": t0 - t_start, "cpus": os.cpu_count()}
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--examples", type=int, default=40, help="examples timed per resolution on one CPU")
    args = parser.parse_args()
    report = {"cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        for resolution in (256, 512):
            shard_dir = _make_shards(tmp, resolution)
            per_cpu = bench_single_cpu(shard_dir, args.examples)
            torch.set_num_threads(os.cpu_count() or 1)
            ray_figures = bench_ray(shard_dir, examples_per_clip=100)
            report["cases"].append({"source_resolution": resolution, "output_size": 256, "max_sources": 4,
                                    "examples_per_s_per_cpu": per_cpu, "ray": ray_figures})
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for case in report["cases"]:
        r = case["ray"]
        print(f"source {case['source_resolution']}^2 -> 256^2, K <= 4: {case['examples_per_s_per_cpu']:.1f} examples/s per CPU; "
              f"Ray Data pipeline {r['examples_per_s']:.1f} examples/s on {r['cpus']} CPUs ({r['examples']} examples after "
              f"a {r['startup_s']:.1f}s start-up)")
    print("(generator training step: not built yet, see the generator issue)")


if __name__ == "__main__":
    main()

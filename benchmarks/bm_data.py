"""What training sees of the data path: examples/s per CPU and through Ray Data, bytes read per
example and peak reader memory, for short, long and 16-camera clips; conversion on 1 vs 2 nodes.

    python benchmarks/bm_data.py [--json] [--quick] [--examples N]

Reads (the ExampleStream the trainer uses, K <= 4 sources + 1 target, output 256^2, the training
default examples_per_clip = 4, shard reads included; the page cache is warm, the data being small):
  mono-T12     4 monocular clips x 12 timesteps at 512^2
  mono-T300    4 monocular clips x 300 timesteps at 512^2
  mv-16x50     2 multi-view clips x 16 cameras x 50 timesteps at 512^2
Per case, in a fresh process: examples/s on 1 CPU (runner "local"), bytes read per example built
next to the bytes of the frames the examples use and the bytes a whole-clip read would cost
(schema 1), and the reader's peak resident memory growth over the warm-up (sampled after every
example); then the same stream through Ray Data on all CPUs.
Conversion: 16 VHAP sources (2 cameras x 24 timesteps, 256^2 noise images) converted by `make_shards convert`'s
library call on a simulated Ray cluster of 1 node x 1 CPU, then 2 nodes x 1 CPU (clips/s each).
Synthetic shards are rendered once into ~/.cache/sa0/bm_data (--quick: smaller cases, not cached).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the conversion case reuses tests/ fixtures

CASES = {  # name: kind, clips, timesteps, cameras, resolution
    "mono-T12": ("mono", 4, 12, 1, 512),
    "mono-T300": ("mono", 4, 300, 1, 512),
    "mv-16x50": ("multiview", 2, 50, 16, 512),
}
QUICK = {"mono-T12": ("mono", 2, 12, 1, 256), "mono-T300": ("mono", 2, 120, 1, 256),
         "mv-16x50": ("multiview", 1, 12, 16, 256)}


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def make_case(root: Path, name: str, spec) -> Path:
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.data.shards import MANIFEST, write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.flame.synthetic import write_synthetic_flame
    from sa0.head import load_head_model

    kind, clips, timesteps, cameras, res = spec
    out = root / f"{name}_{clips}x{timesteps}x{cameras}_{res}"
    if (out / MANIFEST).is_file():
        return out
    flame = write_synthetic_flame(root / "flame", seed=0)
    head = load_head_model(FlameConfig(model_dir=str(flame)), LayoutConfig(uv_resolution=64))
    print(f"rendering {name} once into {out}", file=sys.stderr, flush=True)
    tmp = out.with_name(out.name + ".partial")
    write_shards(synthetic_clips(head, kind, clips, 1, timesteps, cameras, res, DOMAINS["studio"], seed=0, stream=True),
                 tmp)
    os.replace(tmp, out)
    return out


def _config(shard_dir: Path, phase: int):
    from sa0.data.examples import ExampleConfig
    from sa0.data.pipeline import DataConfig
    from sa0.data.sampling import SamplerConfig

    return DataConfig(shard_dirs=(str(shard_dir),), examples_per_clip=4,
                      example=ExampleConfig(phase=phase, image_size=256, sampler=SamplerConfig(max_sources=4)))


def measure_local(shard_dir: Path, phase: int, examples: int) -> dict:
    """In this (fresh) process: one CPU, the local runner; bytes and memory of the reader."""
    import torch

    from sa0.data.examples import choose_frames
    from sa0.data.pipeline import ExampleStream

    torch.set_num_threads(1)
    cfg = _config(shard_dir, phase)
    stream = ExampleStream(cfg, 1, runner="local")
    batches = iter(stream)
    rss0 = _rss_kib()
    list(islice(batches, 4))  # warm-up: page cache, imports
    builder = stream.local_builder
    bytes0, built0, peak = builder.reader.bytes_read, sum(builder.built.values()), _rss_kib()
    t0 = time.perf_counter()
    for _ in range(examples):
        next(batches)
        peak = max(peak, _rss_kib())
    seconds = time.perf_counter() - t0
    read = (builder.reader.bytes_read - bytes0) / (sum(builder.built.values()) - built0)  # per example built
    plan = stream.plan(0)
    used = 0
    for i in range(min(len(plan), 64)):  # bytes of the frames the examples use (the first 64)
        index = builder._index(int(plan.clip[i]))
        sources, target = choose_frames(index, builder.rng(plan, i), float(plan.temperature[i]), cfg.example)
        used += sum(int(index.offsets[f][:, 1].sum()) for f in dict.fromkeys(sources + [target]))
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    clip_bytes = sum(s["bytes"] for s in manifest["shards"]) / manifest["clips"]
    return {"examples_per_s_per_cpu": examples / seconds, "bytes_per_example": read,
            "frame_bytes_per_example": used / min(len(plan), 64),
            "whole_clip_bytes_per_example": clip_bytes / cfg.examples_per_clip,
            "peak_rss_growth_mib": (peak - rss0) / 1024,
            "clip_mib": clip_bytes / 2**20}


def measure_ray(shard_dir: Path, phase: int, batches: int) -> dict:
    import ray

    from sa0.data.pipeline import ExampleStream

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        stream = iter(ExampleStream(_config(shard_dir, phase), 8))
        t_start = time.perf_counter()
        next(stream)  # start-up, timed separately
        t0 = time.perf_counter()
        count = sum(len(b["src_mask"]) for b in islice(stream, batches))
        seconds = time.perf_counter() - t0
        stream.close()
        return {"examples_per_s": count / seconds, "startup_s": t0 - t_start,
                "examples": count, "cpus": os.cpu_count()}
    finally:
        ray.shutdown()


def bench_conversion(root: Path, sources: int = 16) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from sa0.data.convert.run import ConvertConfig, convert_dataset
    from tests.data.clips import tiny_clip, write_vhap

    srcs = []
    for i in range(sources):
        write_vhap(tiny_clip(timesteps=24, cameras=2, height=256, width=256, subject=f"seq{i:02d}", seed=i),
                   root / "vhap" / f"seq{i:02d}")
        srcs.append(str(root / "vhap" / f"seq{i:02d}"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    out = {}
    for nodes in (1, 2):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            for _ in range(nodes):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            ray.get([ray.remote(num_cpus=1)(lambda: 0).remote() for _ in range(nodes)])  # workers up
            t0 = time.perf_counter()
            report = convert_dataset(ConvertConfig(format="vhap", sources=tuple(srcs), out=str(root / f"out{nodes}")),
                                     progress=False)
            seconds = time.perf_counter() - t0
        finally:
            ray.shutdown()
            cluster.shutdown()
        out[f"{nodes}_node"] = {"clips": report["clips"], "seconds": seconds, "clips_per_s": report["clips"] / seconds}
    out["speedup"] = out["2_node"]["clips_per_s"] / out["1_node"]["clips_per_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--examples", type=int, default=160, help="examples timed per case on one CPU (and / 4 batches of 8 through Ray)")
    parser.add_argument("--worker", nargs=3, metavar=("DIR", "PHASE", "EXAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        shard_dir, phase, examples = Path(args.worker[0]), int(args.worker[1]), int(args.worker[2])
        print(json.dumps({"local": measure_local(shard_dir, phase, examples),
                          "ray": measure_ray(shard_dir, phase, batches=max(8, examples // 4))}))
        return
    cases = QUICK if args.quick else CASES
    cache = Path(tempfile.mkdtemp()) if args.quick else Path.home() / ".cache" / "sa0" / "bm_data"
    cache.mkdir(parents=True, exist_ok=True)
    report = {"cases": {}, "examples_per_clip": 4}
    for name, spec in cases.items():
        shard_dir = make_case(cache, name, spec)
        phase = 2 if spec[0] == "multiview" else 1
        done = subprocess.run([sys.executable, __file__, "--worker", str(shard_dir), str(phase), str(args.examples)],
                              capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
        report["cases"][name] = {"spec": dict(zip(("kind", "clips", "timesteps", "cameras", "resolution"), spec)),
                                 **json.loads(done.stdout.strip().splitlines()[-1])}
    with tempfile.TemporaryDirectory() as tmp:
        report["conversion"] = bench_conversion(Path(tmp), sources=4 if args.quick else 16)
    c = report["cases"]
    rate = lambda n: c[n]["local"]["examples_per_s_per_cpu"]  # noqa: E731
    report["ratios"] = {"T300_vs_T12": rate("mono-T300") / rate("mono-T12"),
                        "multiview_vs_mono_T12": rate("mv-16x50") / rate("mono-T12")}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'case':<10} {'ex/s 1 CPU':>10} {'ex/s Ray':>9} {'KiB read/ex':>11} {'KiB frames/ex':>13} "
          f"{'KiB whole clip/ex':>17} {'peak RSS +MiB':>13}")
    for name, r in c.items():
        loc = r["local"]
        print(f"{name:<10} {loc['examples_per_s_per_cpu']:>10.1f} {r['ray']['examples_per_s']:>9.1f} "
              f"{loc['bytes_per_example'] / 1024:>11.0f} {loc['frame_bytes_per_example'] / 1024:>13.0f} "
              f"{loc['whole_clip_bytes_per_example'] / 1024:>17.0f} {loc['peak_rss_growth_mib']:>13.1f}")
    conv = report["conversion"]
    print(f"T=300 vs T=12: {report['ratios']['T300_vs_T12']:.2f}x; 16-camera vs mono T=12: "
          f"{report['ratios']['multiview_vs_mono_T12']:.2f}x (examples/s per CPU)")
    print(f"conversion: 1 node {conv['1_node']['clips_per_s']:.2f} clips/s, 2 nodes {conv['2_node']['clips_per_s']:.2f} "
          f"clips/s: {conv['speedup']:.2f}x")


if __name__ == "__main__":
    main()

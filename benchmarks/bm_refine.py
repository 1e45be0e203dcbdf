"""Refinement cost: one step vs a bare render forward+backward, steps/s, and fan-out speed-up.

    python benchmarks/bm_refine.py [--json] [--quick]

1. Synthetic head at R = 128: a full refinement step (bind, render over a random background,
   L1 + SSIM + aspect penalty, backward, Adam, clamps) against a bare render forward + backward of
   the same Gaussians with a plain sum loss, at 256^2 and 512^2, side by side (target <= 1.3x).
   Both are medians of per-step times: the refinement's steps are timed between its progress
   callbacks (so its one-off set-up and final evaluation are not counted), the bare render as often.
   Beside it, SSIM forward + backward alone: sa0's fused SSIM vs pytorch-msssim (the step's SSIM today).
2. Fan-out: N small subjects refined as Ray tasks on a simulated cluster of 1 node x 1 CPU vs
   2 nodes x 1 CPU (ray.cluster_utils.Cluster); speed-up = time(1 node) / time(2 nodes)
   (target >= 0.8 x nodes).
3. Subjects per hour on this machine (a local Ray with every CPU), synthetic head at R = 128,
   256^2, the whole job as refine_batch runs it (load, refine, write outputs): one subject with
   torch at 1 thread in a 1-CPU task (before the thread fix) vs a task holding every CPU (after);
   four subjects as one task each (1 CPU) vs batched in one task holding every CPU; and the code as
   when refinement-at-scale was filed (1-CPU task, SA0_NATIVE_KERNEL=plain, in a Ray session of its
   own) against now. Also the refinement loop's own steps/s per subject, from each metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.flame.synthetic import write_synthetic_flame
from sa0.gaussians import bind
from sa0.head import load_head_model
from sa0.refine import RefineConfig, refine_subject
from sa0.refine.reference import neutral_init
from sa0.refine.refine import _posed, camera_of
from sa0.render import render
from sa0.render.native import KERNEL_ENV
from sa0.types import LocalGaussians


def bench_step(flame_dir: str, size: int, steps: int) -> dict:
    head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=128))
    (clip,) = list(synthetic_clips(head, "mono", 1, 1, 4, 1, size, DOMAINS["studio"], seed=0))
    verts = _posed(head, clip)
    init = neutral_init(head, verts[0], clip, 0)
    leaves = [t.clone().requires_grad_() for t in (init.positions, init.rotations, init.log_scales, init.colors,
                                                   init.opacity_logits)]
    cam = camera_of(clip, 0, 0)

    def bare():
        for leaf in leaves:
            leaf.grad = None
        out = render(bind(LocalGaussians(*leaves), verts[0], head.faces, head.layout), cam, torch.zeros(3))
        (out.image.sum() + out.alpha.sum()).backward()

    bare()  # warm-up
    bare_times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        bare()
        bare_times.append(time.perf_counter() - t0)
    bare_s = statistics.median(bare_times)
    stamps = []  # the refinement's own steps, timed between consecutive progress callbacks
    cfg = RefineConfig(steps=steps + 1, scale_freeze_steps=0, log_every=10**9)
    refine_subject(head, clip, cfg, init=init, progress=lambda step: stamps.append(time.perf_counter()))
    step_s = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    return {"size": size, "gaussians": head.num_gaussians, "bare_render_fwd_bwd_s": bare_s, "refine_step_s": step_s,
            "ratio": step_s / bare_s, "steps_per_s": 1.0 / step_s}


def bench_ssim(size: int, rounds: int = 30) -> dict:
    """SSIM forward + backward on one (size, size, 3) image: sa0's fused path vs pytorch-msssim,
    alternated, medians after 5 warm-up rounds."""
    from pytorch_msssim import ssim as peer

    from sa0.losses.photometric import fused_ssim

    target = torch.rand(1, 3, size, size)
    start = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    ways = {"fused": lambda p: fused_ssim(p, target),
            "pytorch_msssim": lambda p: peer(p, target, data_range=1.0, size_average=False)}
    times = {k: [] for k in ways}
    for _ in range(rounds + 5):
        for name, fn in ways.items():
            pred = start.clone().requires_grad_(True)
            t0 = time.perf_counter()
            fn(pred).sum().backward()
            times[name].append(time.perf_counter() - t0)
    out = {f"{k}_ms": 1000 * statistics.median(v[5:]) for k, v in times.items()}
    return {"size": size, **out, "speedup": out["pytorch_msssim_ms"] / out["fused_ms"]}


def bench_fanout(flame_dir: str, subjects: int, steps: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from sa0.refine.fanout import refine_batch

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory() as tmp:
        head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=48))
        write_shards(synthetic_clips(head, "mono", subjects, 1, 6, 1, 64, DOMAINS["studio"], seed=2), f"{tmp}/shards")
        names = [f"subj{i:04d}" for i in range(subjects)]
        times = {}
        for nodes in (1, 2):
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
            for _ in range(nodes):
                cluster.add_node(num_cpus=1)
            ray.init(address=cluster.address, log_to_driver=False)
            try:
                t0 = time.perf_counter()
                refine_batch(names, [f"{tmp}/shards"], f"{tmp}/out{nodes}", FlameConfig(model_dir=flame_dir),
                             LayoutConfig(uv_resolution=48), RefineConfig(steps=steps, log_every=10**9),
                             max_in_flight=nodes)
                times[nodes] = time.perf_counter() - t0
            finally:
                ray.shutdown()
                cluster.shutdown()
    return {"subjects": subjects, "steps": steps, "one_node_s": times[1], "two_nodes_s": times[2],
            "speedup": times[1] / times[2], "target": 0.8 * 2}


def bench_throughput(flame_dir: str, steps: int) -> dict:
    import ray

    from sa0.refine.fanout import refine_batch

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cpus = os.cpu_count() or 1
    layout, flame = LayoutConfig(uv_resolution=128), FlameConfig(model_dir=flame_dir)
    cases = {"1 subject, 1 CPU (before)": (1, {"cpus_per_subject": 1}),
             f"1 subject, {cpus} CPUs (after)": (1, {}),
             "4 subjects, 1 per task x 1 CPU": (4, {"cpus_per_subject": 1}),
             f"4 subjects batched, 1 task x {cpus} CPUs": (4, {"subjects_per_task": 4, "cpus_per_subject": None})}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        head = load_head_model(flame, layout)
        write_shards(synthetic_clips(head, "mono", 4, 1, 10, 1, 256, DOMAINS["studio"], seed=3), f"{tmp}/shards")

        def run(k: int, name: str, count: int, options: dict) -> None:
            names = [f"subj{i:04d}" for i in range(count)]
            t0 = time.perf_counter()
            got = refine_batch(names, [f"{tmp}/shards"], f"{tmp}/out{k}", flame, layout,
                               RefineConfig(steps=steps, log_every=10**9, eval_every=0, images=0), **options)
            wall = time.perf_counter() - t0
            assert all(r.status == "done" for r in got), got
            loop_s = max(json.loads((Path(f"{tmp}/out{k}") / n / "metrics.json").read_text())["seconds"]
                         for n in names)  # the refinement loops alone (no start-up, evaluation, writing)
            rows.append({"case": name, "subjects": count, "wall_s": wall, "subjects_per_hour": 3600 * count / wall,
                         "loop_steps_per_s": steps / loop_s, "threads": got[0]["threads"]})

        # today's code path, in a Ray session of its own: workers inherit the driver's environment at start
        os.environ[KERNEL_ENV] = "plain"
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            run(len(cases), "1 subject, 1 CPU, plain kernel (as when filed)", 1, {"cpus_per_subject": 1})
        finally:
            ray.shutdown()
            os.environ.pop(KERNEL_ENV)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            for k, (name, (count, options)) in enumerate(cases.items()):
                run(k, name, count, options)
        finally:
            ray.shutdown()
    filed, rows = rows[0], rows[1:] + rows[:1]
    return {"steps": steps, "size": 256, "gaussians": head.num_gaussians, "cpus": cpus, "cases": rows,
            "thread_fix_speedup": rows[1]["loop_steps_per_s"] / rows[0]["loop_steps_per_s"],
            "thread_fix_speedup_whole_job": rows[0]["wall_s"] / rows[1]["wall_s"],
            "now_vs_filed": rows[1]["loop_steps_per_s"] / filed["loop_steps_per_s"],
            "now_vs_filed_whole_job": filed["wall_s"] / rows[1]["wall_s"],
            "batched_vs_single_tasks": rows[2]["wall_s"] / rows[3]["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="256^2 only, fewer steps and subjects")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        flame_dir = str(write_synthetic_flame(tmp, seed=0))
        sizes = (256,) if args.quick else (256, 512)
        report = {"torch_threads": torch.get_num_threads(),
                  "steps": [bench_step(flame_dir, s, 20 if args.quick else 60) for s in sizes],
                  "ssim": [bench_ssim(s) for s in sizes],
                  "fanout": bench_fanout(flame_dir, 4 if args.quick else 6, 200 if args.quick else 800),
                  "throughput": bench_throughput(flame_dir, 100 if args.quick else 300)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for s in report["steps"]:
        print(f"{s['size']}^2, {s['gaussians']} Gaussians: refine step {1000 * s['refine_step_s']:.1f} ms "
              f"({s['steps_per_s']:.1f} steps/s) vs bare render fwd+bwd {1000 * s['bare_render_fwd_bwd_s']:.1f} ms: "
              f"{s['ratio']:.2f}x (target <= 1.3x)")
    for s in report["ssim"]:
        print(f"SSIM fwd+bwd at {s['size']}^2: fused {s['fused_ms']:.1f} ms vs pytorch-msssim "
              f"{s['pytorch_msssim_ms']:.1f} ms ({s['speedup']:.2f}x)")
    f = report["fanout"]
    print(f"fan-out, {f['subjects']} subjects x {f['steps']} steps: 1 node {f['one_node_s']:.1f}s, 2 nodes "
          f"{f['two_nodes_s']:.1f}s -> {f['speedup']:.2f}x (target >= {f['target']:.1f}x)")
    t = report["throughput"]
    print(f"subjects/hour, {t['steps']} steps each at {t['size']}^2 x {t['gaussians']} Gaussians, {t['cpus']} CPUs "
          "(whole job: load, refine, write):")
    for row in t["cases"]:
        print(f"  {row['case']:<40} {row['wall_s']:7.1f} s  {row['subjects_per_hour']:7.1f} subjects/h  "
              f"loop {row['loop_steps_per_s']:5.1f} steps/s per subject  (torch threads {row['threads']})")
    print(f"  thread fix: {t['thread_fix_speedup']:.2f}x the loop's steps/s (target >= 1.7x), "
          f"{t['thread_fix_speedup_whole_job']:.2f}x the whole job; batched vs one task per subject: "
          f"{t['batched_vs_single_tasks']:.2f}x")
    print(f"  now ({t['cpus']} CPUs, boxed kernel) vs as filed (1 CPU, plain kernel): {t['now_vs_filed']:.2f}x the "
          f"loop's steps/s, {t['now_vs_filed_whole_job']:.2f}x the whole job (target >= 1.7x)")


if __name__ == "__main__":
    main()

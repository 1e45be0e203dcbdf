"""The native kernel's two loop orders side by side, per thread: boxed (default) vs plain (its twin).

    python benchmarks/bm_native.py [--json] [--quick] [--rounds 7]

Cases: bm_render's random scenes (256^2 x 8,192 and 512^2 x 60,000, one camera) and the synthetic
head's neutral-init Gaussians seen by a subject camera (UV 128 and 256, 512^2). For each case and
for 1 and 2 torch threads: render() forward + backward with SA0_NATIVE_KERNEL=plain and =boxed,
alternated, medians over `rounds`; the kernel calls alone (forward, backward) from the autograd
profiler; the speed-up boxed / plain per thread, and each order's scaling from 1 to 2 threads.
Both orders give bitwise-equal images and gradients (tests/render/test_native.py), so only time
differs. The boxed order's gain grows as Gaussians shrink relative to the 16 x 16 tiles.
Last, the refinement loop in-process (synthetic head UV 128, 12 timesteps x 4 cameras at 256^2,
RefineConfig defaults): steps/s with 1 thread + plain (the code before the thread fix and this
kernel) vs 2 threads + boxed (now), alternated over 3 rounds, medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from sa0.config import FlameConfig, LayoutConfig, RenderConfig
from sa0.render import render
from sa0.render.native import KERNEL_ENV, load_native
from sa0.render.scenes import orbit_cameras, random_gaussians
from sa0.types import Gaussians

ORDERS = ("plain", "boxed")


def random_case(size: int, num: int):
    return random_gaussians(num, seed=1, median_scale=0.01 if num < 20_000 else 0.006), orbit_cameras(1, size, size)


def head_case(flame_dir: str, uv: int, size: int):
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.gaussians import bind
    from sa0.head import load_head_model
    from sa0.refine.reference import neutral_init
    from sa0.refine.refine import camera_of

    head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=uv))
    (clip,) = synthetic_clips(head, "mono", 1, 1, 1, 1, size, DOMAINS["studio"], seed=0)
    verts = head.pose_track(clip.flame.as_dict())
    with torch.no_grad():
        g = bind(neutral_init(head, verts[0], clip, 0), verts[0], head.faces, head.layout)
    return g, camera_of(clip, 0, 0)


def _once(g: Gaussians, cams, order: str) -> tuple[float, float, float]:
    """-> (render fwd+bwd s, kernel forward s, kernel backward s) for one call."""
    os.environ[KERNEL_ENV] = order
    leaves = [t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    with torch.autograd.profiler.profile() as prof:
        t0 = time.perf_counter()
        out = render(Gaussians(*leaves), cams, torch.full((3,), 0.2), RenderConfig(backend="native"))
        (out.image * torch.linspace(0, 1, out.image.numel()).reshape(out.image.shape)).sum().backward()
        total = time.perf_counter() - t0
    kernel = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
    return total, kernel.get("_NativeRasterize", float("nan")), kernel.get("_NativeRasterizeBackward", float("nan"))


def bench(name: str, g: Gaussians, cams, rounds: int) -> dict:
    row = {"case": name, "gaussians": int(g.means.shape[0]), "size": int(cams.width)}
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            times = {o: [] for o in ORDERS}
            for r in range(rounds + 1):
                for order in (ORDERS if r % 2 == 0 else ORDERS[::-1]):
                    got = _once(g, cams, order)
                    if r:  # the first round warms up
                        times[order].append(got)
            for order in ORDERS:
                med = [statistics.median(t[i] for t in times[order]) for i in range(3)]
                row[f"{order}_t{n}_ms"] = round(1000 * med[0], 1)
                row[f"{order}_t{n}_kernel_fwd_ms"] = round(1000 * med[1], 1)
                row[f"{order}_t{n}_kernel_bwd_ms"] = round(1000 * med[2], 1)
            row[f"speedup_t{n}"] = round(row[f"plain_t{n}_ms"] / row[f"boxed_t{n}_ms"], 2)
            row[f"kernel_speedup_t{n}"] = round(
                (row[f"plain_t{n}_kernel_fwd_ms"] + row[f"plain_t{n}_kernel_bwd_ms"])
                / (row[f"boxed_t{n}_kernel_fwd_ms"] + row[f"boxed_t{n}_kernel_bwd_ms"]), 2)
    finally:
        torch.set_num_threads(threads)
        os.environ.pop(KERNEL_ENV, None)
    for order in ORDERS:
        row[f"{order}_scaling_1_to_2"] = round(row[f"{order}_t1_ms"] / row[f"{order}_t2_ms"], 2)
    return row


def refine_loop(flame_dir: str, steps: int = 120, rounds: int = 3) -> dict:
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model
    from sa0.refine import RefineConfig, refine_subject

    head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=128))
    (clip,) = synthetic_clips(head, "mono", 1, 1, 12, 4, 256, DOMAINS["studio"], seed=0)
    cases = {"1 thread, plain": (1, "plain"), "1 thread, boxed": (1, "boxed"), "2 threads, plain": (2, "plain"),
             "2 threads, boxed": (2, "boxed")}
    rates = {name: [] for name in cases}
    threads = torch.get_num_threads()
    try:
        for _ in range(rounds):
            for name, (n, order) in cases.items():
                torch.set_num_threads(n)
                os.environ[KERNEL_ENV] = order
                stamps: list[float] = []
                cfg = RefineConfig(steps=steps, log_every=10**9, eval_every=0, images=0)
                refine_subject(head, clip, cfg, progress=lambda _: stamps.append(time.perf_counter()))
                rates[name].append((len(stamps) - 11) / (stamps[-1] - stamps[10]))  # after 10 warm-up steps
    finally:
        torch.set_num_threads(threads)
        os.environ.pop(KERNEL_ENV, None)
    med = {name: round(statistics.median(v), 1) for name, v in rates.items()}
    return {"steps_per_s": med, "now_vs_before": round(med["2 threads, boxed"] / med["1 thread, plain"], 2),
            "boxed_thread_scaling": round(med["2 threads, boxed"] / med["1 thread, boxed"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="the 256^2 random scene and the UV 128 head only")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if load_native() is None:
        raise SystemExit("the native kernel could not be built")
    from sa0.flame.synthetic import write_synthetic_flame

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        flame_dir = str(write_synthetic_flame(tmp, seed=0))
        cases = [("random 256^2 x 8192", lambda: random_case(256, 8192)),
                 ("head UV 128 at 512^2", lambda: head_case(flame_dir, 128, 512))]
        if not args.quick:
            cases += [("random 512^2 x 60000", lambda: random_case(512, 60000)),
                      ("head UV 256 at 512^2", lambda: head_case(flame_dir, 256, 512))]
        for name, make in cases:
            rows.append(bench(name, *make(), args.rounds))
            if not args.json:
                r = rows[-1]
                print(f"{name} ({r['gaussians']} Gaussians), render fwd+bwd: "
                      f"1 thread plain {r['plain_t1_ms']} ms / boxed {r['boxed_t1_ms']} ms = {r['speedup_t1']}x "
                      f"(kernel {r['kernel_speedup_t1']}x); 2 threads {r['plain_t2_ms']} / {r['boxed_t2_ms']} ms = "
                      f"{r['speedup_t2']}x (kernel {r['kernel_speedup_t2']}x); scaling 1->2: plain "
                      f"{r['plain_scaling_1_to_2']}x, boxed {r['boxed_scaling_1_to_2']}x", flush=True)
        loop = refine_loop(flame_dir)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "cases": rows, "refine_loop": loop}, indent=1))
    else:
        print(f"refinement loop, UV 128, 4 cameras at 256^2: {loop['steps_per_s']} steps/s; 2 threads boxed / "
              f"1 thread plain = {loop['now_vs_before']}x; boxed 1 -> 2 threads {loop['boxed_thread_scaling']}x")


if __name__ == "__main__":
    main()

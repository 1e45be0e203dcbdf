"""Rasteriser speed: native vs tiled vs dense, forward+backward, measured side by side in one run.

    python benchmarks/bm_render.py [--json] [--quick] [--repeats N] [--no-build]

Cases (random Gaussians from sa0.render.scenes, one camera):
  128^2 x 4K and 256^2 x 8K with all three CPU backends: best-of-N time, ratios, max difference of
  image and gradients against dense, peak memory growth;
  512^2 x 60K with native and tiled (dense would need ~16G pixel-Gaussian pairs).
Then: the native kernel's build time (fresh build directory), a refinement-like step on the
synthetic head at R = 128 (FLAME -> bind -> render -> L1 -> backward -> Adam) at 256^2 with each
backend and at 512^2 with native and tiled, and forward-only frames/s of that head at 512^2.

Per thread (1 and 2 torch threads), on 256^2 x 8K and 512^2 x 60K: render() forward and
forward + backward with the native backend as it is ("v2": C++ projection, AVX2 loop order where
the CPU has it) against the earlier path ("v1": torch projection + the scalar boxed loop order,
SA0_NATIVE_KERNEL=boxed), alternated, medians; the speed-up per thread, v2's scaling from 1 to 2
threads and binning's share of its forward. (v1 here already has this version's binning and
gather; benchmarks/results/native_cpu_202612.md has the kernel as it was.)
Last, the refinement loop itself (sa0.refine.refine_subject: L1 + SSIM + aspect penalty, Adam,
clamp) on the synthetic head at R = 256 (54,420 Gaussians) at 512^2 with all torch threads: steps/s,
projected minutes for 10,000 steps, and where a step's time goes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict

import psutil
import torch

from sa0.config import FlameConfig, LayoutConfig, RenderConfig
from sa0.render import render
from sa0.render.native import KERNEL_ENV, load_native, native_bins, rasterize_native
from sa0.render.projection import project
from sa0.render.scenes import orbit_cameras, random_gaussians
from sa0.types import Gaussians, LocalGaussians


def _release_free_memory() -> None:
    """Hand freed heap back to the OS, so the next block's RSS growth is its own peak (glibc only)."""
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


class PeakMemory:
    """Peak resident memory growth (MB) over a block, sampled every 5 ms by a thread."""

    def __enter__(self):
        _release_free_memory()
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak_mb = max(self.peak_mb, (self._proc.memory_info().rss - self._base) / 2**20)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _fwd_bwd(g: Gaussians, cams, config: RenderConfig):
    leaves = [t.detach().clone().requires_grad_() for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    t0 = time.perf_counter()
    out = render(Gaussians(*leaves), cams, torch.full((3,), 0.2), config)
    loss = (out.image * torch.linspace(0, 1, out.image.numel()).reshape(out.image.shape)).sum() + out.alpha.sum()
    loss.backward()
    elapsed = time.perf_counter() - t0
    return elapsed, out.image.detach(), [t.grad for t in leaves]


def bench_case(size: int, num: int, backends: tuple[str, ...], repeats: int) -> dict:
    g = random_gaussians(num, seed=1, median_scale=0.01 if num < 20_000 else 0.006)
    cams = orbit_cameras(1, size, size)
    result = {"case": f"{size}^2 x {num}", "width": size, "gaussians": num}
    outputs = {}
    for backend in backends:
        times = []
        with PeakMemory() as memory:
            for _ in range(1 if backend == "dense" else repeats):
                elapsed, image, grads = _fwd_bwd(g, cams, RenderConfig(backend=backend))
                times.append(elapsed)
        outputs[backend] = (image, grads)
        result[f"{backend}_s"] = min(times)
        result[f"{backend}_peak_mem_mb"] = memory.peak_mb
    reference = "dense" if "dense" in backends else "tiled"
    for backend in backends:
        if backend != reference:
            result[f"{backend}_vs_{reference}"] = result[f"{reference}_s"] / result[f"{backend}_s"]
            img, grads = outputs[backend]
            ref_img, ref_grads = outputs[reference]
            result[f"{backend}_max_abs_diff_image"] = (img - ref_img).abs().max().item()
            result[f"{backend}_max_rel_diff_grads"] = max(
                ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item() for a, b in zip(grads, ref_grads)
            )
    if "native" in backends and "tiled" in backends:
        result["native_vs_tiled"] = result["tiled_s"] / result["native_s"]
    return result


def bench_build() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        module = load_native(build_directory=tmp)
        return {"native_build_s": time.perf_counter() - t0, "built": module is not None}


def _synthetic_head(resolution: int):
    from sa0.flame.synthetic import write_synthetic_flame
    from sa0.head import load_head_model

    tmp = tempfile.TemporaryDirectory()
    write_synthetic_flame(tmp.name, seed=0)
    head = load_head_model(FlameConfig(model_dir=tmp.name), LayoutConfig(uv_resolution=resolution))
    return head, tmp


def bench_refine_step(size: int, backends: tuple[str, ...], steps: int, resolution: int = 128) -> dict:
    """One refinement-like step: pose FLAME, bind, render, L1 to a target, backward, Adam update."""
    from sa0.gaussians import bind, init_local_gaussians
    from sa0.render.preview import expressive_params, shaded_gaussians

    head, tmp = _synthetic_head(resolution)
    params = expressive_params(head)
    cams = orbit_cameras(1, size, size, distance=0.6, fov_y=30.0)
    bg = torch.ones(3)
    with torch.no_grad():
        target = render(shaded_gaussians(head, params), cams, bg).image
        verts = head.flame(params)[0]
    result = {"case": f"refine step, head R={resolution} ({head.num_gaussians} Gaussians) at {size}^2"}
    for backend in backends:
        init = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
        leaves = [t.clone().requires_grad_() for t in (init.positions, init.rotations, init.log_scales,
                                                       init.colors, init.opacity_logits)]
        optimizer = torch.optim.Adam(leaves, lr=1e-3)
        config = RenderConfig(backend=backend)
        times = []
        for _ in range(1 if backend == "dense" else steps + 1):
            t0 = time.perf_counter()
            g = bind(LocalGaussians(*leaves), verts, head.faces, head.layout)
            loss = (render(g, cams, bg, config).image - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
        step = min(times[1:]) if len(times) > 1 else times[0]
        result[f"{backend}_step_s"] = step
        result[f"{backend}_steps_per_s"] = 1.0 / step
    tmp.cleanup()
    return result


def _v1_render(g: Gaussians, cams, background):
    """render()'s native path before v2: torch's projection, then the scalar boxed loop order."""
    proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, cams.width, cams.height)
    n = cams.num_cameras
    image, alpha = rasterize_native(proj, g.colors.expand(n, -1, -1), g.opacities.expand(n, -1),
                                    background.expand(n, -1), cams.width, cams.height)
    return image, alpha


def _timed(g: Gaussians, cams, way: str, backward: bool) -> tuple[float, float]:
    """-> (seconds for render fwd (+ bwd), seconds of binning inside it) with `way` v1 or v2."""
    leaves = [t.detach().clone().requires_grad_(backward) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)]
    os.environ[KERNEL_ENV] = "boxed" if way == "v1" else "auto"
    bg = torch.full((3,), 0.2)
    t0 = time.perf_counter()
    if way == "v1":
        image, _ = _v1_render(Gaussians(*leaves), cams, bg[None])
    else:
        image = render(Gaussians(*leaves), cams, bg, RenderConfig(backend="native")).image
    if backward:
        (image * torch.linspace(0, 1, image.numel()).reshape(image.shape)).sum().backward()
    elapsed = time.perf_counter() - t0
    binning = 0.0
    if way == "v2" and not backward:
        with torch.no_grad():
            proj = project(g.means, g.quats, g.scales, g.opacities, cams.viewmats, cams.Ks, cams.width, cams.height)
            t1 = time.perf_counter()
            native_bins(proj, cams.width, cams.height, 16)
            binning = time.perf_counter() - t1
    return elapsed, binning


def bench_threads(size: int, num: int, rounds: int) -> dict:
    """v1 vs v2 per thread (1 and 2), forward and forward + backward, medians of alternated rounds."""
    g = random_gaussians(num, seed=1, median_scale=0.01 if num < 20_000 else 0.006)
    cams = orbit_cameras(1, size, size)
    row = {"case": f"{size}^2 x {num}"}
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            times = defaultdict(list)
            for r in range(rounds + 1):
                for way in (("v1", "v2") if r % 2 == 0 else ("v2", "v1")):
                    for backward in (False, True):
                        elapsed, binning = _timed(g, cams, way, backward)
                        if r:  # the first round warms up
                            times[way, backward].append(elapsed)
                            if binning:
                                times["bin"].append(binning)
            for way in ("v1", "v2"):
                row[f"{way}_t{n}_fwd_ms"] = round(1e3 * statistics.median(times[way, False]), 1)
                row[f"{way}_t{n}_fwd_bwd_ms"] = round(1e3 * statistics.median(times[way, True]), 1)
            row[f"speedup_t{n}_fwd"] = round(row[f"v1_t{n}_fwd_ms"] / row[f"v2_t{n}_fwd_ms"], 2)
            row[f"speedup_t{n}_fwd_bwd"] = round(row[f"v1_t{n}_fwd_bwd_ms"] / row[f"v2_t{n}_fwd_bwd_ms"], 2)
            row[f"v2_t{n}_binning_ms"] = round(1e3 * statistics.median(times["bin"]), 2)
            row[f"v2_t{n}_binning_share_of_fwd"] = round(row[f"v2_t{n}_binning_ms"] / row[f"v2_t{n}_fwd_ms"], 3)
    finally:
        torch.set_num_threads(threads)
        os.environ.pop(KERNEL_ENV, None)
    row["v2_scaling_fwd_bwd"] = round(row["v2_t1_fwd_bwd_ms"] / row["v2_t2_fwd_bwd_ms"], 2)
    row["v2_scaling_fwd"] = round(row["v2_t1_fwd_ms"] / row["v2_t2_fwd_ms"], 2)
    return row


def bench_refine_loop(resolution: int = 256, size: int = 512, steps: int = 60, warmup: int = 10) -> dict:
    """The refinement loop as refine_batch runs it (refine_subject on a synthetic clip, every loss term
    on from step 0): steps/s after `warmup` steps, projected minutes per 10K steps, and the wall time
    of each stage of a step (sa0.refine.batched's calls, wrapped with timers for this run only)."""
    import sa0.refine.batched as loop
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.refine import RefineConfig, refine_subject

    head, tmp = _synthetic_head(resolution)
    (clip,) = synthetic_clips(head, "mono", 1, 1, 4, 1, size, DOMAINS["studio"], seed=0)
    stages = defaultdict(list)
    originals = {}

    def timed(owner, name, label):
        fn = originals[owner, name] = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            stages[label].append(time.perf_counter() - t0)
            return out
        setattr(owner, name, wrapper)

    wrapped = ((loop, "_losses", "forward (bind, render, losses)"), (loop, "bind", "  bind"),
               (loop, "render", "  render"), (loop, "ssim_per_image", "  SSIM"),
               (loop, "aspect_penalty", "  aspect penalty"), (torch.Tensor, "backward", "backward"),
               (loop.RowAdam, "step", "Adam"), (loop, "_clamp", "clamp"))
    for owner, name, label in wrapped:
        timed(owner, name, label)
    stamps: list[float] = []
    cfg = RefineConfig(steps=steps + warmup + 1, log_every=10**9, eval_every=0, images=0, scale_freeze_steps=0)
    try:
        refine_subject(head, clip, cfg, progress=lambda _: stamps.append(time.perf_counter()))
    finally:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)
        tmp.cleanup()
    step_s = (stamps[-1] - stamps[warmup]) / (len(stamps) - 1 - warmup)
    return {"case": f"refinement loop, head R={resolution} ({head.num_gaussians} Gaussians) at {size}^2",
            "threads": torch.get_num_threads(), "steps_per_s": round(1 / step_s, 2),
            "minutes_per_10k_steps": round(10_000 * step_s / 60, 1),
            "stage_ms": {k: round(1e3 * statistics.median(stages[k][warmup:]), 2)
                         for _, _, k in wrapped if k in stages}}


def bench_head_fps(size: int = 512, resolution: int = 128, frames: int = 5) -> dict:
    from sa0.render.preview import expressive_params, shaded_gaussians

    head, tmp = _synthetic_head(resolution)
    with torch.no_grad():
        g = shaded_gaussians(head, expressive_params(head))
    tmp.cleanup()
    cams = orbit_cameras(1, size, size, distance=0.6, fov_y=30.0)
    result = {"case": f"head R={resolution} at {size}^2 forward", "gaussians": head.num_gaussians}
    for backend in ("native", "tiled"):
        config = RenderConfig(backend=backend)
        with torch.no_grad():
            render(g, cams, config=config)  # warm-up
            t0 = time.perf_counter()
            for _ in range(frames):
                render(g, cams, config=config)
            result[f"{backend}_fps"] = frames / (time.perf_counter() - t0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--quick", action="store_true", help="small cases only, no dense refine step")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per case (best time kept; dense runs once)")
    parser.add_argument("--no-build", action="store_true", help="skip timing a fresh build of the native kernel")
    parser.add_argument("--rounds", type=int, default=7, help="alternated rounds per thread count (medians kept)")
    args = parser.parse_args()
    torch.manual_seed(0)
    all3 = ("native", "tiled", "dense")
    report = {"torch_threads": torch.get_num_threads(), "native_available": load_native() is not None}
    if not args.no_build:
        report["build"] = bench_build()
    sizes = [(128, 4096, all3)] if args.quick else [(128, 4096, all3), (256, 8192, all3), (512, 60_000, all3[:2])]
    report["cases"] = [bench_case(s, n, b, args.repeats) for s, n, b in sizes]
    report["refine"] = [bench_refine_step(256, all3[:2] if args.quick else all3, 3)]
    if not args.quick:
        report["refine"].append(bench_refine_step(512, all3[:2], 3))
    report["head"] = bench_head_fps(frames=2 if args.quick else 5)
    if load_native() is not None:
        per_thread = [(256, 8192)] if args.quick else [(256, 8192), (512, 60_000)]
        report["per_thread"] = [bench_threads(s, n, 3 if args.quick else args.rounds) for s, n in per_thread]
        report["refine_loop"] = bench_refine_loop(128 if args.quick else 256, 256 if args.quick else 512,
                                                  steps=20 if args.quick else 60)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"torch threads: {report['torch_threads']}")
    if "build" in report:
        print(f"native kernel fresh build: {report['build']['native_build_s']:.1f}s")
    for c in report["cases"]:
        parts = [f"{b} {c[b + '_s']:.3f}s ({c[b + '_peak_mem_mb']:.0f} MB)" for b in all3 if b + "_s" in c]
        ratios = [f"{k} {v:.1f}x" for k, v in c.items() if "_vs_" in k]
        diffs = [f"{b} max|dimg| {c[b + '_max_abs_diff_image']:.1e} max rel dgrad {c[b + '_max_rel_diff_grads']:.1e}"
                 for b in all3 if b + "_max_abs_diff_image" in c]
        print(f"{c['case']:>14}: " + ", ".join(parts) + " | " + ", ".join(ratios) + " | " + "; ".join(diffs))
    for r in report["refine"]:
        print(f"{r['case']}: " + ", ".join(f"{b} {r[b + '_step_s']:.3f}s/step ({r[b + '_steps_per_s']:.2f} steps/s)"
                                             for b in all3 if b + "_step_s" in r))
    h = report["head"]
    print(f"{h['case']} ({h['gaussians']} Gaussians): native {h['native_fps']:.1f} frames/s, tiled {h['tiled_fps']:.1f} frames/s")
    for r in report.get("per_thread", []):
        for n in (1, 2):
            print(f"{r['case']:>14}, {n} thread{'s' if n > 1 else ''}: forward v1 {r[f'v1_t{n}_fwd_ms']} / v2 "
                  f"{r[f'v2_t{n}_fwd_ms']} ms ({r[f'speedup_t{n}_fwd']}x), forward + backward v1 "
                  f"{r[f'v1_t{n}_fwd_bwd_ms']} / v2 {r[f'v2_t{n}_fwd_bwd_ms']} ms ({r[f'speedup_t{n}_fwd_bwd']}x); "
                  f"binning {r[f'v2_t{n}_binning_ms']} ms = "
                  f"{100 * r[f'v2_t{n}_binning_share_of_fwd']:.1f}% of v2's forward")
        print(f"{r['case']:>14}: v2 scaling 1 -> 2 threads {r['v2_scaling_fwd_bwd']}x forward + backward, "
              f"{r['v2_scaling_fwd']}x forward")
    if "refine_loop" in report:
        r = report["refine_loop"]
        print(f"{r['case']}, {r['threads']} threads: {r['steps_per_s']} steps/s, {r['minutes_per_10k_steps']} min "
              "per 10K steps; per step: " + ", ".join(f"{k.strip()} {v} ms" for k, v in r["stage_ms"].items()))


if __name__ == "__main__":
    main()

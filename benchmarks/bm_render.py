"""Rasteriser speed: native vs tiled vs dense, forward+backward, measured side by side in one run.

    python benchmarks/bm_render.py [--json] [--quick] [--repeats N] [--no-build]

Cases (random Gaussians from sa0.render.scenes, one camera):
  128^2 x 4K and 256^2 x 8K with all three CPU backends: best-of-N time, ratios, max difference of
  image and gradients against dense, peak memory growth;
  512^2 x 60K with native and tiled (dense would need ~16G pixel-Gaussian pairs).
Then: the native kernel's build time (fresh build directory), a refinement-like step on the
synthetic head at R = 128 (FLAME -> bind -> render -> L1 -> backward -> Adam) at 256^2 with each
backend and at 512^2 with native and tiled, and forward-only frames/s of that head at 512^2.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import tempfile
import threading
import time

import psutil
import torch

from sa0.config import FlameConfig, LayoutConfig, RenderConfig
from sa0.render import render
from sa0.render.native import load_native
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


if __name__ == "__main__":
    main()

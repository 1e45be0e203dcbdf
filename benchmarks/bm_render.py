"""Rasteriser speed: tiled vs dense forward+backward, measured side by side in one run.

    python benchmarks/bm_render.py [--json] [--quick] [--repeats N]

Cases: 128^2 x 4K and 256^2 x 8K random Gaussians (sa0.render.scenes), forward+backward time of
each backend, their ratio, the max difference of image and gradients, peak memory growth; 512^2 x
60K with the tiled backend alone (the dense twin would need ~16G pixel-Gaussian pairs); then
forward-only frames/s at 512^2 of the synthetic head bound at R = 128.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

import psutil
import torch

from sa0.config import RenderConfig
from sa0.render import render
from sa0.render.scenes import orbit_cameras, random_gaussians
from sa0.types import Gaussians


class PeakMemory:
    """Peak resident memory growth (MB) over a block, sampled every 5 ms by a thread."""

    def __enter__(self):
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


def bench_case(size: int, num: int, repeats: int) -> dict:
    g = random_gaussians(num, seed=1)
    cams = orbit_cameras(1, size, size)
    result = {"case": f"{size}^2 x {num}", "width": size, "gaussians": num}
    outputs = {}
    for backend in ("tiled", "dense"):
        times = []
        with PeakMemory() as memory:
            for _ in range(repeats if backend == "tiled" else 1):
                elapsed, image, grads = _fwd_bwd(g, cams, RenderConfig(backend=backend))
                times.append(elapsed)
        outputs[backend] = (image, grads)
        result[f"{backend}_s"] = min(times)
        result[f"{backend}_peak_mem_mb"] = memory.peak_mb
    result["speedup"] = result["dense_s"] / result["tiled_s"]
    (img_t, grads_t), (img_d, grads_d) = outputs["tiled"], outputs["dense"]
    result["max_abs_diff_image"] = (img_t - img_d).abs().max().item()
    result["max_rel_diff_grads"] = max(
        ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item() for a, b in zip(grads_t, grads_d)
    )
    return result


def bench_large(repeats: int) -> dict:
    g = random_gaussians(60_000, seed=1, median_scale=0.006)
    cams = orbit_cameras(1, 512, 512)
    times = []
    with PeakMemory() as memory:
        for _ in range(repeats):
            times.append(_fwd_bwd(g, cams, RenderConfig(backend="tiled"))[0])
    return {"case": "512^2 x 60000", "tiled_s": min(times), "tiled_peak_mem_mb": memory.peak_mb}


def bench_head(size: int = 512, resolution: int = 128, frames: int = 5) -> dict:
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.flame.synthetic import write_synthetic_flame
    from sa0.head import load_head_model
    from sa0.render.preview import expressive_params, shaded_gaussians

    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_flame(tmp, seed=0)
        head = load_head_model(FlameConfig(model_dir=tmp), LayoutConfig(uv_resolution=resolution))
        with torch.no_grad():
            g = shaded_gaussians(head, expressive_params(head))
    cams = orbit_cameras(1, size, size, distance=0.6, fov_y=30.0)
    with torch.no_grad():
        render(g, cams)  # warm-up
        t0 = time.perf_counter()
        for _ in range(frames):
            render(g, cams)
        elapsed = time.perf_counter() - t0
    return {"case": f"head R={resolution} at {size}^2 forward", "gaussians": head.num_gaussians,
            "fps": frames / elapsed, "ms_per_frame": 1000 * elapsed / frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--quick", action="store_true", help="only the small case (for smoke runs)")
    parser.add_argument("--repeats", type=int, default=3, help="tiled repeats (best time is kept)")
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = [(128, 4096)] if args.quick else [(128, 4096), (256, 8192)]
    report = {"torch_threads": torch.get_num_threads(), "cases": [bench_case(s, n, args.repeats) for s, n in cases]}
    if not args.quick:
        report["large"] = bench_large(args.repeats)
    report["head"] = bench_head(frames=2 if args.quick else 5)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"torch threads: {report['torch_threads']}")
    for c in report["cases"]:
        print(
            f"{c['case']:>14}: tiled {c['tiled_s']:.3f}s  dense {c['dense_s']:.3f}s  speedup {c['speedup']:.1f}x  "
            f"max|dimg| {c['max_abs_diff_image']:.2e}  max rel dgrad {c['max_rel_diff_grads']:.2e}  "
            f"peak mem tiled {c['tiled_peak_mem_mb']:.0f} MB, dense {c['dense_peak_mem_mb']:.0f} MB"
        )
    if "large" in report:
        c = report["large"]
        print(f"{c['case']:>14}: tiled {c['tiled_s']:.3f}s  peak mem {c['tiled_peak_mem_mb']:.0f} MB (dense not run)")
    h = report["head"]
    print(f"{h['case']}: {h['gaussians']} Gaussians, {h['fps']:.2f} frames/s ({h['ms_per_frame']:.0f} ms/frame)")


if __name__ == "__main__":
    main()

"""The web viewer in headless Chromium: frames/s, page load time, site size, agreement with sa0.

    python benchmarks/bm_web.py [--json] [--quick]

For the synthetic head at UV 128 and 256 (13,610 and 54,420 Gaussians) at 512^2: an avatar
(neutral init on a synthetic subject) exported with its own 25-frame motion, served on 127.0.0.1 and
opened in Debian's Chromium. WebGL2 runs on SwiftShader (Chromium's CPU implementation; this
machine has no GPU), so the frame rate is a CPU figure, not what a browser on a GPU shows.
  load_s        from navigation to the first frame drawn (fetches, textures, shaders, first sort, draw)
  frame_ms      median of a few timed runs of 10 frames each (decode the frame's vertices, depth-sort
                on the CPU, draw, read one pixel back so the frame is finished)
  psnr_db       the page's frame 5 vs sa0's own render (native kernel) of that frame and camera
  site_mib, motion_kib_per_s   the whole folder, and the motion's bytes per second of playback
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.export.package import load_package, save_package
from sa0.export.serve import headless_chromium, open_viewer, served
from sa0.export.web import export_site, site_bytes_per_second
from sa0.flame.synthetic import write_synthetic_flame
from sa0.gaussians import bind
from sa0.head import load_head_model
from sa0.refine.reference import neutral_init
from sa0.refine.refine import camera_of
from sa0.render import render


def case(root: Path, flame_dir: str, uv: int, size: int, frames: int, browser) -> dict:
    head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=uv))
    (clip,) = synthetic_clips(head, "mono", 1, 1, frames, 1, size, DOMAINS["studio"], seed=5)
    verts = head.pose_track(clip.flame.as_dict())
    avatar = save_package(root / f"avatar{uv}.npz", neutral_init(head, verts[0], clip, 0), head.layout,
                          clip.flame.shape[0], {"subject": clip.meta.subject})
    package = load_package(avatar)
    site = export_site(package, head, clip, root / f"site{uv}")
    with served(site) as url:
        t0 = time.perf_counter()
        page = open_viewer(browser, f"{url}/index.html?paused=1&frame=5", timeout_ms=300_000)
        load_s = time.perf_counter() - t0
        if page.evaluate("window.sa0viewer.error"):
            raise RuntimeError(page.evaluate("window.sa0viewer.error"))
        got = page.evaluate("window.sa0viewer.pixels()")
        page.evaluate("window.sa0viewer.bench(2)")  # warm-up
        runs = [page.evaluate("window.sa0viewer.bench(10)") for _ in range(3)]
        target = page.evaluate("window.sa0viewer.accumulation")
        page.close()
    image = np.frombuffer(base64.b64decode(got["rgba"]), np.uint8).reshape(size, size, 4)[..., :3] / 255.0
    with torch.no_grad():
        ref = render(bind(package.local, head.pose_track(clip.flame.as_dict(), shape=package.shape)[5], head.faces,
                          head.layout), camera_of(clip, 5, 0), torch.ones(3)).image[0].clamp(0, 1).numpy()
    frame_ms = statistics.median(runs)
    return {"uv": uv, "gaussians": head.num_gaussians, "size": size, "frames": frames, "load_s": round(load_s, 2),
            "frame_ms": round(frame_ms, 1), "fps": round(1000 / frame_ms, 2),
            "psnr_db": round(float(10 * np.log10(1 / np.mean((image - ref) ** 2))), 1),
            "site_mib": round(sum(p.stat().st_size for p in site.iterdir()) / 2**20, 2),
            "motion_kib_per_s": round(site_bytes_per_second(site) / 1024, 1), "accumulation": target}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="UV 128 only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, headless_chromium() as browser:
        root = Path(tmp)
        flame_dir = str(write_synthetic_flame(root / "flame", seed=0))
        rows = [case(root, flame_dir, uv, 512, 25, browser) for uv in ((128,) if args.quick else (128, 256))]
        version = browser.version
    report = {"browser": f"Chromium {version}, WebGL2 on SwiftShader (CPU)", "cases": rows}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['browser']}; motion at 25 fps")
    for r in rows:
        print(f"  UV {r['uv']:>3} ({r['gaussians']:>6} Gaussians) at {r['size']}^2: {r['fps']:5.2f} frames/s "
              f"({r['frame_ms']} ms), load {r['load_s']} s, PSNR vs sa0 {r['psnr_db']} dB, site {r['site_mib']} MiB "
              f"({r['frames']} frames), motion {r['motion_kib_per_s']} KiB/s, target {r['accumulation']}")


if __name__ == "__main__":
    main()

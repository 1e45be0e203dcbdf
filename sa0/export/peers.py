"""Readers sa0 did not write, to check its exports: Babylon.js (the .glb, KHR_gaussian_splatting) and
Spark (the .spz, on three.js), in headless Chromium, seen from a given camera.

The packages come from npm at first use into a cache (SA0_NPM_CACHE, default ~/.cache/sa0/npm/<pins>),
pinned to the versions below; nothing is vendored. `render_with(reader, browser, splat_file, view)`
serves a small page beside the file (its node_modules linked in) and returns the page's pixels.
A View is a camera in sa0's world: OpenCV world-to-camera 4x4 and intrinsics, image size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGES = {"@babylonjs/core": "9.28.0", "@babylonjs/loaders": "9.28.0", "@sparkjsdev/spark": "2.2.0",
            "three": "0.180.0"}
READERS = ("babylon", "spark")


class PeersUnavailable(RuntimeError):
    """npm or the packages cannot be had here (no npm, no network)."""


@dataclass(frozen=True)
class View:
    viewmat: np.ndarray  # (4, 4) OpenCV world-to-camera
    K: np.ndarray  # (3, 3)
    width: int
    height: int

    def page_camera(self) -> dict:
        """The camera as the pages take it: position, target, up (world), vertical fov in degrees."""
        rot, t = self.viewmat[:3, :3].astype(np.float64), self.viewmat[:3, 3].astype(np.float64)
        centre = -rot.T @ t
        forward, up = rot.T @ np.array([0.0, 0.0, 1.0]), rot.T @ np.array([0.0, -1.0, 0.0])
        fov = 2 * np.degrees(np.arctan(self.height / (2 * float(self.K[1, 1]))))
        return {"position": centre.tolist(), "target": (centre + forward).tolist(), "up": up.tolist(),
                "fov": fov, "width": self.width, "height": self.height}


def npm_modules() -> Path:
    """The node_modules folder holding PACKAGES (installed once; PeersUnavailable if it cannot be)."""
    pins = " ".join(f"{k}@{v}" for k, v in sorted(PACKAGES.items()))
    root = Path(os.environ.get("SA0_NPM_CACHE") or Path.home() / ".cache" / "sa0" / "npm")
    home = root / hashlib.sha1(pins.encode()).hexdigest()[:12]
    if (home / "node_modules" / ".sa0-complete").is_file():
        return home / "node_modules"
    npm = shutil.which("npm")
    if npm is None:
        raise PeersUnavailable("npm is not installed (apt-get install -y npm)")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="npm-", dir=root))
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(staging),
                           *pins.split()], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise PeersUnavailable(f"npm install {pins} failed: {(done.stderr or done.stdout).strip()[-400:]}")
    (staging / "node_modules" / ".sa0-complete").write_text(pins + "\n")
    shutil.rmtree(home, ignore_errors=True)
    os.replace(staging, home)
    return home / "node_modules"


_IMPORTS = {"babylon": {"@babylonjs/core/": "./node_modules/@babylonjs/core/",
                        "@babylonjs/loaders/": "./node_modules/@babylonjs/loaders/"},
            "spark": {"three": "./node_modules/three/build/three.module.js",
                      "three/addons/": "./node_modules/three/examples/jsm/",
                      "@sparkjsdev/spark": "./node_modules/@sparkjsdev/spark/dist/spark.module.js"}}


def _page(reader: str) -> str:
    folder = Path(__file__).parent / "site" / "peers"
    script = (folder / f"{reader}.js").read_text() + "\n" + (folder / "common.js").read_text()
    return ("<!doctype html><meta charset=utf-8><body style='margin:0;background:#fff'>"
            f"<canvas id=c></canvas><script type=importmap>{json.dumps({'imports': _IMPORTS[reader]})}</script>"
            f"<script type=module>{script}</script>")


def _run_page(browser, url: str, timeout_ms: int) -> dict:
    """Open the page and wait for window.peer (its pixels or its error); a page error (a module that
    does not resolve, an exception outside main) ends the wait at once."""
    import time

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            got = page.evaluate("window.peer || null")
            if got or errors:
                return got or {"error": "; ".join(errors)}
            page.wait_for_timeout(250)
        return {"error": f"no picture after {timeout_ms / 1000:.0f} s"}
    finally:
        page.close()


def render_with(reader: str, browser, splat_file, view: View, timeout_ms: int = 120_000) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] of `splat_file` drawn by `reader` (babylon: .glb; spark: .spz)
    from `view`, on white. Needs npm_modules() and a playwright browser (sa0.export.serve)."""
    from sa0.export.serve import served

    modules = npm_modules()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        (site / "node_modules").symlink_to(modules, target_is_directory=True)
        shutil.copy(splat_file, site / f"splats{Path(splat_file).suffix}")
        (site / "view.json").write_text(json.dumps({**view.page_camera(), "file": f"splats{Path(splat_file).suffix}"}))
        (site / "index.html").write_text(_page(reader))
        with served(site) as url:
            got = _run_page(browser, f"{url}/index.html", timeout_ms)
    if got.get("error"):
        raise RuntimeError(f"{reader} ({splat_file}): {got['error']}")
    rgba = np.frombuffer(base64.b64decode(got["rgba"]), np.uint8).reshape(view.height, view.width, 4)
    return rgba[..., :3].astype(np.float64) / 255.0


def compare_readers(package, head, motion, frame: int, browser, workdir, camera: int = 0) -> dict[str, dict]:
    """The avatar at `frame` of `motion` exported (.glb, .spz) and drawn by each reader from the clip's
    camera (its pose and focal length; the principal point centred, as the readers' cameras are
    symmetric: a tracked crop's is off by a few pixels), against sa0's own render of the same
    Gaussians from that camera, all on white: -> {reader: {"psnr",
    "image" (H, W, 3) float, "file", "bytes"}} plus "sa0": {"image"}."""
    import torch

    from sa0.export.splats import posed_gaussians, write_splats
    from sa0.render.api import render
    from sa0.types import Cameras

    (gaussians,) = posed_gaussians(package, head, motion, [frame])
    h, w = motion.image_size
    K = np.array(motion.Ks[frame, camera], dtype=np.float32)
    K[0, 2], K[1, 2] = w / 2, h / 2  # the pages' cameras are symmetric frusta: centre the principal point
    view = View(motion.viewmats[frame, camera], K, w, h)
    cams = Cameras(torch.as_tensor(view.viewmat)[None], torch.as_tensor(view.K)[None], w, h)
    with torch.no_grad():
        own = render(gaussians, cams, torch.ones(3)).image[0].clamp(0, 1).double().numpy()
    results: dict[str, dict] = {"sa0": {"image": own}}
    for reader, fmt in (("babylon", "glb"), ("spark", "spz")):
        path = write_splats(gaussians, Path(workdir) / f"frame{frame}.{fmt}")
        image = render_with(reader, browser, path, view)
        # the 8-bit page against sa0's float render, both on white
        psnr = float(10 * np.log10(1.0 / max(float(((image - own) ** 2).mean()), 1e-12)))
        results[reader] = {"psnr": psnr, "image": image, "file": str(path), "bytes": path.stat().st_size}
    return results

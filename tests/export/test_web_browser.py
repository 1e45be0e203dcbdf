"""The exported viewer in headless Chromium (WebGL2 on SwiftShader) against sa0's own renderer."""

import json
import shutil
import time

import numpy as np
import pytest
import torch

from sa0.config import RenderConfig
from sa0.export.package import load_package
from sa0.export.web import export_site
from sa0.gaussians import bind
from sa0.render import render
from sa0.types import Cameras
from tests.browser import chromium, open_viewer, served, viewer_pixels
from tests.export.web_site import make_avatar

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("webview")
    made = make_avatar(root)
    export_site(load_package(made["avatar"]), made["head"], made["clip"], root / "site", fps=10)
    return root / "site", made


def _reference(made, frame: int, scale: int = 1) -> np.ndarray:
    """sa0's render (native kernel) of the avatar at `frame` of its driver, its camera (at `scale`
    times its resolution, intrinsics scaled alike), white background."""
    head, clip, package = made["head"], made["clip"], load_package(made["avatar"])
    verts = head.pose_track(clip.flame.as_dict(), shape=package.shape)
    h, w = clip.image_size
    K = torch.as_tensor(clip.Ks[frame, 0]).clone()
    K[:2] *= scale
    cams = Cameras(torch.as_tensor(clip.viewmats[frame, 0])[None], K[None], w * scale, h * scale)
    with torch.no_grad():
        out = render(bind(package.local, verts[frame], head.faces, head.layout), cams, torch.ones(3), RenderConfig())
    return out.image[0].clamp(0, 1).double().numpy()


def _psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.mark.parametrize("scale", [1, 2])
def test_frame_k_from_the_subject_camera_matches_sa0s_render(site, capsys, scale):
    directory, made = site
    with chromium() as browser, served(directory) as url:
        page = open_viewer(browser, f"{url}/index.html?paused=1&frame=5&scale={scale}")
        assert page.evaluate("window.sa0viewer.error") is None
        frame, image = viewer_pixels(page)
    psnr = _psnr(image, _reference(made, 5, scale))
    with capsys.disabled():
        print(f"\nweb viewer vs sa0 render, frame 5 at {image.shape[1]}x{image.shape[0]}: PSNR {psnr:.1f} dB")
    assert frame == 5 and image.shape[:2] == (128 * scale, 128 * scale)
    assert psnr >= 28.0
    assert (image < 0.9).any(axis=-1).mean() > 0.1  # the head is there, not a blank page


def test_playback_advances_the_jaw_and_nothing_else_and_orbit_reset_restores_the_view(site):
    directory, made = site
    with chromium() as browser, served(directory) as url:
        assert open_viewer(browser, f"{url}/index.html").evaluate("window.sa0viewer.scale") == 4  # 128 px -> 512
        page = open_viewer(browser, f"{url}/index.html?scale=1")
        first, a = viewer_pixels(page)
        deadline = time.monotonic() + 60
        second, b = first, a
        while (second - first) % 8 < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
            second, b = viewer_pixels(page)
        assert (second - first) % 8 >= 2, "playback did not advance"
        assert page.evaluate("window.sa0viewer.state.playing")
        page.evaluate("window.sa0viewer.setFrame(0)")
        _, before = viewer_pixels(page)
        page.evaluate("window.sa0viewer.orbit(0.6, 0.2, 1.3)")
        page.wait_for_timeout(300)
        _, orbited = viewer_pixels(page)
        page.click("#reset")
        page.wait_for_timeout(300)
        _, reset = viewer_pixels(page)
    moving = np.abs(_reference(made, first) - _reference(made, second)).max(-1) > 0.05
    assert moving.sum() > 20, "the driver's jaw should move between the two frames"
    still = ~moving
    for k in range(1, 4):  # grow the moving region a few pixels before calling the rest still
        still &= ~np.roll(moving, k, 0) & ~np.roll(moving, -k, 0) & ~np.roll(moving, k, 1) & ~np.roll(moving, -k, 1)
    diff = np.abs(a - b).max(-1)
    assert diff[moving].mean() > 0.03
    assert diff[still].mean() < 0.002
    assert np.abs(orbited - before).mean() > 0.01
    np.testing.assert_allclose(reset, before, atol=1.5 / 255)


@pytest.mark.parametrize("damage", ["missing motion.bin", "another format version"])
def test_a_broken_site_shows_a_readable_error(site, tmp_path, damage):
    directory, _ = site
    broken = tmp_path / "site"
    shutil.copytree(directory, broken)
    if damage == "missing motion.bin":
        (broken / "motion.bin").unlink()
        expected = "motion.bin: HTTP 404"
    else:
        meta = json.loads((broken / "avatar.json").read_text())
        (broken / "avatar.json").write_text(json.dumps({**meta, "version": 99}))
        expected = "version 99"
    with chromium() as browser, served(broken) as url:
        page = open_viewer(browser, f"{url}/index.html")
        assert page.is_visible("#error")
        text = page.inner_text("#error")
    assert "could not be shown" in text and expected in text

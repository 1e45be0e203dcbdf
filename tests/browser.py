"""Headless Chromium for the `browser` tests (sa0.export.serve), skipping where it is not installed."""

from __future__ import annotations

import base64
import contextlib

import numpy as np
import pytest

from sa0.export.serve import chromium_path, headless_chromium, open_viewer, served

__all__ = ["chromium", "open_viewer", "served", "viewer_pixels"]


@contextlib.contextmanager
def chromium():
    """-> a playwright Browser (skips the test if Chromium or playwright is missing)."""
    pytest.importorskip("playwright.sync_api")
    if chromium_path() is None:
        pytest.skip("Chromium not installed (apt-get install -y --no-install-recommends chromium)")
    with headless_chromium() as browser:
        yield browser


def viewer_pixels(page) -> tuple[int, np.ndarray]:
    """(frame drawn, (H, W, 3) float image in [0, 1]) from the page's viewer."""
    got = page.evaluate("window.sa0viewer.pixels()")
    rgba = np.frombuffer(base64.b64decode(got["rgba"]), np.uint8).reshape(got["height"], got["width"], 4)
    return got["frame"], rgba[..., :3].astype(np.float64) / 255.0

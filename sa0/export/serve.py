"""Serving an exported site on 127.0.0.1, and a headless Chromium to look at it (tests, benchmarks).

ES modules do not load from file://, so a site is always served (python -m http.server does the
same). Chromium is Debian's /usr/bin/chromium driven by playwright (its own browser download is
never used); WebGL2 then runs on SwiftShader, Chromium's CPU implementation.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

CHROMIUM_ARGS = ("--no-sandbox", "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run")


def chromium_path() -> str | None:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    return found


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def served(directory, port: int = 0, quiet: bool = True):
    """-> the base URL of `directory` on 127.0.0.1:port (0: any free port), served until the block ends."""
    handler = functools.partial(_Quiet if quiet else http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def headless_chromium():
    """-> a playwright Browser on Debian's Chromium; RuntimeError saying what to install if missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise RuntimeError("playwright is not installed: pip install playwright (its browser download is not needed)") from exc
    path = chromium_path()
    if path is None:
        raise RuntimeError("Chromium is not installed: apt-get install -y --no-install-recommends chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def open_viewer(browser, url: str, timeout_ms: int = 60_000):
    """A page on the viewer at `url`, once it has drawn (or shown its error)."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("window.sa0viewer && (window.sa0viewer.pixels || window.sa0viewer.error)", timeout=timeout_ms)
    return page

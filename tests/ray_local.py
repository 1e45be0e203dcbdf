"""Test helper: a local Ray cluster per test module."""

from __future__ import annotations

import contextlib
import os
import tempfile

import pytest


@contextlib.contextmanager
def local_ray(num_cpus: int, env_vars: dict | None = None):
    """A local Ray for one test module: no token auth, no dashboard, its own short temp dir (Unix
    socket paths are limited), always shut down. Yields the ray module."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(dir="/tmp", prefix="sa0ray"),
             runtime_env={"env_vars": env_vars} if env_vars else None)
    try:
        yield ray
    finally:
        ray.shutdown()

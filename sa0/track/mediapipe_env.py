"""sa0's MediaPipe environment: mediapipe 0.10.21 in a virtualenv of its own, driven as a subprocess.

Why its own environment: mediapipe 0.10.21 is the last release that bundles its face models (later
ones download a .task file at run time), and it needs protobuf < 5 while MLflow 3 needs protobuf
>= 5; its metadata also pins numpy < 2 and pulls jax and opencv-contrib. Installed beside MLflow it
would break one of the two. So `python -m sa0.track.mediapipe_env` (part of the README's install
command) makes `<sys.prefix>/sa0-mediapipe` (or DIR / $SA0_MEDIAPIPE_ENV) with mediapipe installed
without its declared dependencies plus the few it imports (absl-py, attrs, flatbuffers, protobuf < 5,
opencv-python-headless, numpy, matplotlib); it runs under numpy 2. sa0 talks to it through
sa0/track/mediapipe_worker.py over pipes. Nothing is downloaded when tracking.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ENV_VAR = "SA0_MEDIAPIPE_ENV"
MEDIAPIPE = "mediapipe==0.10.21"
IMPORTED = ("absl-py", "attrs", "flatbuffers", "protobuf>=4.25,<5", "opencv-python-headless", "numpy", "matplotlib")
STAMP = "sa0-mediapipe.json"


class MediaPipeMissing(RuntimeError):
    """sa0's MediaPipe environment is not installed."""


def env_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or Path(sys.prefix) / "sa0-mediapipe")


def env_python(directory: Path | None = None) -> Path:
    """The environment's interpreter; MediaPipeMissing says how to install it."""
    directory = directory or env_dir()
    python = directory / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not (directory / STAMP).is_file() or not python.exists():
        raise MediaPipeMissing(f"sa0's MediaPipe environment is not installed at {directory}: run "
                               f"`python -m sa0.track.mediapipe_env` once (it needs PyPI), or set ${ENV_VAR} to one")
    return python


def install(directory: Path, quiet: bool = True) -> Path:
    """Create the environment at `directory` (replacing a broken one); returns its interpreter."""
    if directory.exists():
        shutil.rmtree(directory)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(directory)], check=True)
    python = directory / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"] + (["-q"] if quiet else [])
    subprocess.run(pip + list(IMPORTED), check=True)
    subprocess.run(pip + ["--no-deps", MEDIAPIPE], check=True)  # last: pip then has nothing to re-resolve
    worker = Path(__file__).with_name("mediapipe_worker.py")
    check = subprocess.run([str(python), "-c", "import mediapipe, sys; print(mediapipe.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"mediapipe does not import in {directory}:\n{check.stderr[-2000:]}")
    (directory / STAMP).write_text(json.dumps({"mediapipe": check.stdout.strip(), "worker": str(worker)}) + "\n")
    return python


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Install sa0's MediaPipe environment (see the module docstring).")
    parser.add_argument("--dir", default=None, help=f"where (default ${ENV_VAR} or <sys.prefix>/sa0-mediapipe)")
    parser.add_argument("--force", action="store_true", help="reinstall even if it is there")
    args = parser.parse_args(argv)
    directory = Path(args.dir) if args.dir else env_dir()
    if not args.force:
        try:
            print(f"sa0's MediaPipe environment is ready: {env_python(directory)}")
            return 0
        except MediaPipeMissing:
            pass
    print(f"installing {MEDIAPIPE} into {directory} ...", flush=True)
    python = install(directory)
    print(f"sa0's MediaPipe environment is ready: {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

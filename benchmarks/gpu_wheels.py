"""Fill .whl/ (git-ignored) with the wheels the GPU check needs and the device machine lacks.

    python benchmarks/gpu_wheels.py [--dest .whl]

The device machine (Python 3.12, torch 2.11, an older timm perhaps, no network) gets these as
`carry: [".whl"]`; benchmarks/gpu_check.sh installs them with pip --no-index --no-deps. Versions
are the ones installed here, so the GPU runs the code the CPU tests ran. Wheels come from PyPI
for CPython 3.12 manylinux x86-64; a package PyPI ships only as an sdist (DeepSpeed) is built here
into a pure-Python wheel (DS_BUILD_OPS=0: its ops JIT-compile on use). Ray and MLflow stay behind
(too big to carry; the check runs without them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["gsplat", "smplx", "webdataset", "braceexpand", "plyfile", "pytorch-msssim", "timm", "deepspeed", "hjson",
            "pydantic", "pydantic-core", "annotated-types", "typing-inspection"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
LIMIT_MIB = 48  # of the 64 MiB a device call carries, the rest is the working tree


def fetch(name: str, dest: Path) -> None:
    pin = f"{name}=={version(name)}"
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
                "3.12", "--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS), "-d", str(dest), pin]
    if subprocess.run(download, capture_output=True, text=True).returncode == 0:
        return
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dest), pin]
    done = subprocess.run(build, capture_output=True, text=True, env={**os.environ, "DS_BUILD_OPS": "0"})
    if done.returncode != 0:
        raise SystemExit(f"could not fetch or build a wheel of {pin}: {done.stderr[-800:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=str(ROOT / ".whl"))
    dest = Path(parser.parse_args().dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    for name in PACKAGES:
        fetch(name, dest)
        print(f"  {name}=={version(name)}", flush=True)
    wheels = sorted(dest.glob("*.whl"))
    if any("none-any" not in w.name and "cp312" not in w.name for w in wheels):
        raise SystemExit(f"a wheel in {dest} is for neither any Python nor CPython 3.12: {[w.name for w in wheels]}")
    mib = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {mib:.1f} MiB in {dest}")
    if mib > LIMIT_MIB:
        raise SystemExit(f"{mib:.1f} MiB of wheels leaves too little of a device call's 64 MiB for the working tree")


if __name__ == "__main__":
    main()

"""The package ships everything it needs: a built wheel holds every file the native kernel's build
reads, the shipped ICT head and the web viewer; a non-editable install builds and uses the native
backend from its own copy (the install bug of issue 29: the wheel lacked csrc/native.h)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                           "-q", "-w", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("sa0-*.whl")
    return found


def test_the_wheel_holds_every_file_the_package_reads(wheel):
    from sa0.render.native import HEADER, SOURCES

    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [f"sa0/render/csrc/{name}" for name in SOURCES] + [f"sa0/render/csrc/{HEADER.name}"]
    needed += [f"sa0/heads/ict_light/{p.name}" for p in (ROOT / "sa0" / "heads" / "ict_light").iterdir()]
    site = ROOT / "sa0" / "export" / "site"
    needed += [f"sa0/export/site/{p.relative_to(site)}" for p in site.rglob("*") if p.is_file()]
    assert not [n for n in needed if n not in names]


@pytest.mark.slow
def test_a_non_editable_install_builds_and_uses_the_native_backend(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = ("import sa0, sa0.render.native as n; m = n.load_native(); "
             "print(sa0.__file__); print(m is not None, n.native_unavailable_reason())")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    where, loaded = run.stdout.splitlines()[-2:]
    assert where.startswith(str(target)) and loaded.startswith("True"), run.stdout + run.stderr[-1000:]

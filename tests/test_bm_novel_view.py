"""benchmarks/bm_novel_view.py at a small size: its JSON keys, and the frontal / 30 degree gap it reaches."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_novel_view_benchmark_small():
    done = subprocess.run([sys.executable, "benchmarks/bm_novel_view.py", "--json", "--subjects", "1", "--frames", "20",
                           "--size", "128", "--steps", "400", "--uv-resolution", "64", "--rows", "exact"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    for key in ("frontal_psnr", "novel30_psnr", "novel60_psnr", "frontal_psnr_before", "novel30_psnr_before",
                "novel60_psnr_before", "novel30_psnr_registered", "novel60_psnr_registered"):
        assert 10 < report[key] < 60, (key, report[key])
    rows = report["rows"]
    default, off = rows["ICT head, true params, default"], rows["ICT head, true params, unseen off"]
    no_silhouette = rows["ICT head, true params, default, silhouette off"]
    no_band = rows["ICT head, true params, default, band off"]
    # measured at this size on the 2-core CPU machine: frontal 28.29, 30 degrees 25.47 (gap 2.82 dB; the issue's
    # target is 3); unseen parts off 29.04 / 23.61, silhouette off 24.50, band off 24.96, whole-head silhouette
    # 25.71 at 30 degrees (benchmarks/results/novel_view_cpu_202612.md)
    assert report["frontal_psnr"] - report["novel30_psnr"] <= 3.6
    assert default["novel30_psnr"] >= off["novel30_psnr"] and default["novel60_psnr"] >= off["novel60_psnr"]
    assert default["frontal_psnr"] >= off["frontal_psnr"] - 1.0  # the matte costs the front 0.75 dB here (0.49 at 256^2)
    assert default["novel30_psnr"] > no_silhouette["novel30_psnr"]  # the face-only silhouette's gain
    assert default["novel30_psnr"] > no_band["novel30_psnr"]  # the bald truth's band is ~0: its scalp's matte counts
    # with exact geometry there is little to register: measured here +1.04 dB, 0.66 px and 0.23 degrees at
    # 30 degrees (+0.17 dB at 256^2; tracked at 256^2: +2.83 dB, 0.63 px, 0.44 degrees)
    assert 0 <= default["novel30_psnr_registered"] - default["novel30_psnr"] <= 1.6
    assert default["novel30_rotation_deg"] < 0.5 and default["novel30_shift_px"] < 1.0

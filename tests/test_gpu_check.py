"""benchmarks/gpu_check.py in its --dry-run: every section runs on the CPU at tiny sizes, with Ray,
MLflow and LPIPS made unimportable (the GPU machine has none of them), and writes its report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["environment", "tiled_render", "feed_forward", "gsplat_build", "pytest_gpu", "gsplat_render", "refine",
            "refine_batch", "generator_step"]
BLOCKER = """
import importlib.abc, sys
class _Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("ray", "mlflow", "lpips"):
            raise ImportError(f"{name} is not installed on the GPU machine")
sys.meta_path.insert(0, _Missing())
"""


def _dry_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{site}:{ROOT}"}
    env.pop("OUT", None)
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").is_file() else {}
    markdown = (out / "gpu_check.md").read_text() if (out / "gpu_check.md").is_file() else ""
    return done, report, markdown


@pytest.mark.slow
def test_the_dry_run_runs_every_section_without_ray_or_mlflow_and_reports_figures(tmp_path):
    done, report, markdown = _dry_run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    failed = {k: report[k].get("error") for k in SECTIONS if report.get(k, {}).get("status") != "ok"}
    assert not failed, failed
    assert report["environment"]["dry_run"] is True and report["environment"]["device"] == "cpu"
    for name in ("tiled_render", "gsplat_render"):
        assert report[name]["forward_ms"] > 0 and report[name]["forward_backward_ms"] > report[name]["forward_ms"] / 2
    assert report["tiled_render"]["backend"] == "tiled" and report["gsplat_render"]["backend"] == "native"
    assert report["feed_forward"]["fp32_ms"] > 0 and report["feed_forward"]["bf16_ms"] > 0
    # the gpu tests were found and collected (and skipped: no CUDA here)
    assert report["pytest_gpu"]["skipped"] >= 4 and "tests/render/test_gsplat_backend.py" in report["pytest_gpu"]["files"]
    for name, subjects in (("refine", 1), ("refine_batch", 2)):
        row = report[name]
        assert row["finished"] and row["steps_done"] == 12 and row["subjects"] == subjects
        assert row["steps_per_s_per_subject"] > 0
    gen = report["generator_step"]
    assert gen["zero_stage"] == 2 and gen["samples_per_s"] > 0 and gen["loss"] == gen["loss"]  # finite
    for name in SECTIONS[1:]:
        assert f"| {name} | ok |" in markdown
    assert "265.6 FPS" in markdown  # the paper's figure beside ours


def test_sections_past_the_budget_are_skipped_and_said_so(tmp_path):
    done, report, markdown = _dry_run(tmp_path, "--budget-s", "5")
    assert done.returncode == 0, done.stderr[-3000:]
    skipped = [k for k in SECTIONS if report[k]["status"] == "skipped"]
    assert {"tiled_render", "pytest_gpu", "refine", "generator_step"} <= set(skipped)
    assert "of the budget left" in report["refine"]["reason"]
    assert "| refine | skipped |" in markdown


def test_without_cuda_the_full_check_refuses_and_points_to_the_dry_run(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--dry-run" in done.stderr

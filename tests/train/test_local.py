"""The generator loop without Ray (sa0.train.loop.train_local through LocalSession): a debugger can
step through it; its first losses on a fixed tiny job match a golden curve stored in the repository,
and the Ray Train path reproduces the same curve (RANDOMLY INITIALISED encoder: mechanics, not
quality). SA0_WRITE_GOLDEN=1 rewrites the golden file from the local run (review the diff)."""

import json
import os
import sys
from pathlib import Path

import pytest

from sa0.config import apply_overrides
from sa0.train.loop import PhaseRun, train_local
from sa0.train.recipes import recipe

GOLDEN = Path(__file__).with_name("golden_losses.json")
STEPS = 6


def golden_job(synthetic_dir, shards, tmp_path, *extra):
    """The demo recipe, shrunk: one worker, phase 1 only, a loss row every step."""
    return apply_overrides(recipe("demo"), [
        "phase2=none", "train.num_workers=1", "train.cpus_per_worker=1", "train.run_name=golden",
        f"train.storage_path={tmp_path / 'runs'}", "train.mlflow_uri=off", f"flame.model_dir={synthetic_dir}",
        "layout.uv_resolution=32", "model.image_size=56", "model.unet_channels=16,24", f"phase1.steps={STEPS}",
        f"phase1.data.shard_dirs={shards}", "phase1.data.example.image_size=64",
        "phase1.data.example.sampler.max_sources=2", "phase1.data.examples_per_clip=16", "phase1.loss.jacobian=0",
        "train.log_every=1", f"train.checkpoint_every={STEPS}", "train.use_gpu=false", *extra])


def _losses(rows) -> list[float]:
    return [row["loss"] for row in sorted(rows, key=lambda r: r["step"])]


def test_random_init_the_loop_runs_in_process_without_ray_and_matches_the_golden_curve(synthetic_dir, shards,
                                                                                       tmp_path):
    job = golden_job(synthetic_dir, shards, tmp_path)
    rows = train_local(PhaseRun(job, 1), tmp_path / "local")
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    losses = _losses(rows)
    if os.environ.get("SA0_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"job": "tests/train/test_local.py::golden_job", "losses": losses}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())["losses"]
    assert losses == pytest.approx(golden, rel=2e-3), (losses, golden)
    assert (tmp_path / "local" / "checkpoint" / "generator.pt").is_file()
    again = train_local(PhaseRun(job, 1), tmp_path / "local")  # finished: a rerun resumes at the end, no steps
    assert again == []


@pytest.mark.slow
@pytest.mark.ray
def test_random_init_the_ray_train_path_reproduces_the_golden_curve(synthetic_dir, shards, tmp_path):
    from sa0.train.job import train_generator
    from tests.ray_local import local_ray

    job = golden_job(synthetic_dir, shards, tmp_path, f"train.mlflow_uri=sqlite:///{tmp_path / 'mlflow.db'}")
    with local_ray(num_cpus=2):
        result = train_generator(job)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=job.train.mlflow_uri)
    history = sorted((m.step, m.value) for m in client.get_metric_history(result.mlflow_run_id, "phase1/loss"))
    assert [s for s, _ in history] == list(range(1, STEPS + 1))
    golden = json.loads(GOLDEN.read_text())["losses"]
    assert [v for _, v in history] == pytest.approx(golden, rel=2e-3)

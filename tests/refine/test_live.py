"""A subject's MLflow run while it refines: live curves before the subject ends, one run across retries."""

import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.refine import RefineConfig
from sa0.refine.fanout import refine_batch
from tests.ray_local import local_ray
from tests.refine.shards import mono_shards

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, synthetic_dir):
    root = mono_shards(tmp_path_factory.mktemp("live_shards"), synthetic_dir, subjects=1, seed=1)
    return root


def test_subject_run_is_live_and_a_retried_subject_continues_it(shards, synthetic_dir, tmp_path, monkeypatch):
    """The subject's MLflow run holds a loss history while the subject has not ended (its worker
    dies before writing, no retries); a rerun continues that run (one run for the subject) and
    logs no step twice."""
    from sa0.experiments import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = RefineConfig(steps=12, log_every=3, eval_every=6, images=2)
    args = ([shards], tmp_path / "out", FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=16), cfg)
    marker = tmp_path / "crashed.marker"
    with local_ray(num_cpus=2, env_vars={"SA0_FAULT_INJECT": f"subj0000:before_write:{marker}"}):
        tracker = Tracker("sa0-refine-live", uri)
        tracker.start("first", {})
        (row,) = refine_batch(["subj0000"], *args, tracker=tracker, max_retries=0)
        tracker.end()
    assert marker.exists() and row.status == "failed"
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("sa0-refine-live")
    (run,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "subj0000"]
    steps = lambda key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key))  # noqa: E731
    assert steps("train/loss") == [0, 3, 6, 9, 11] and steps("heldout/psnr") == [6, 12]
    assert run.data.tags["sa0.status"] == "failed"
    with local_ray(num_cpus=2):
        tracker = Tracker("sa0-refine-live", uri)
        tracker.start("second", {})
        (row,) = refine_batch(["subj0000"], *args, tracker=tracker)
        tracker.end()
    assert row.status == "done"
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "subj0000"]
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert steps("train/loss") == [0, 3, 6, 9, 11] and steps("heldout/psnr") == [6, 12]
    assert runs[0].data.tags["sa0.status"] == "done" and runs[0].data.metrics["psnr"] > 0
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
    assert "metrics.json" in artifacts and any("render_vs_truth" in a or "images" in a for a in artifacts)

"""MLflow tracking: runs, metrics, image grids and run continuation; an unreachable server costs a
warning and turns tracking off, never an exception."""

import logging
import socket

import numpy as np

from sa0.experiments import Tracker


def test_tracker_logs_and_continues_a_run(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker("exp", uri)
    run_id = tracker.start("job", {"a.b": 1, "long": "x" * 900})
    tracker.metrics({"phase1/loss": 0.5, "note": "not a number"}, step=3)
    tracker.image(np.zeros((4, 8, 3), np.uint8), "phase1_grid", step=3)
    tracker.end()
    again = Tracker("exp", uri)
    assert again.start("job", {}, run_id=run_id) == run_id
    again.metrics({"phase1/loss": 0.25}, step=6)
    again.end({"skipped_samples": 0})
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["a.b"] == "1" and len(run.data.params["long"]) == 500
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "phase1/loss")] == [(3, 0.5), (6, 0.25)]
    assert "note" not in run.data.metrics and run.data.metrics["skipped_samples"] == 0
    assert any("phase1_grid" in a.path for a in client.list_artifacts(run_id, "images"))
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_unreachable_server_warns_once_and_never_raises(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="sa0.experiments"):
        tracker = Tracker("exp", f"http://127.0.0.1:{port}")
        assert tracker.start("job", {"a": 1}) is None
        tracker.metrics({"loss": 1.0}, step=1)
        tracker.image(np.zeros((2, 2, 3), np.uint8), "grid", step=1)
        assert tracker.subject_run("subject", {"sa0.subject": "subject"}) is None
        tracker.finish_subject("some-run", {"sa0.status": "done"}, {"psnr": 30.0})
        tracker.end({"x": 1.0})
    assert not tracker.enabled
    warnings = [r for r in caplog.records if "MLflow tracking disabled" in r.getMessage()]
    assert len(warnings) == 1
    from sa0.experiments import RunLogger

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sa0.experiments"):
        live = RunLogger(f"http://127.0.0.1:{port}", "some-run")  # a task's live logger, same server
        live.metrics({"train/loss": 1.0}, step=1)
        live.image(np.zeros((2, 2, 3), np.uint8), "render_vs_truth", step=1)
    assert not live.enabled
    assert len([r for r in caplog.records if "MLflow tracking disabled" in r.getMessage()]) == 1

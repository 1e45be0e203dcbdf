"""MLflow tracking that never breaks the work it records: every call is guarded and a failure
is logged once as a warning. One parent run per job, one nested run per unit (e.g. subject)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, experiment: str | None, tracking_uri: str | None = None, enabled: bool = True):
        """experiment None: only continue runs by id (start(run_id=...)), whatever experiment holds them."""
        self.enabled, self._warned, self._parent = enabled, False, None
        if not enabled:
            return
        try:
            import mlflow

            self._mlflow = mlflow
            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
            if experiment is not None:
                mlflow.set_experiment(experiment)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("MLflow tracking disabled after an error: %s", exc)
        self._warned, self.enabled = True, False

    def start(self, run_name: str, params: dict, run_id: str | None = None) -> str | None:
        """Start (or, given run_id, continue) the job's run; returns its id."""
        if not self.enabled:
            return None
        try:
            if run_id:
                self._parent = self._mlflow.start_run(run_id=run_id)
            else:
                self._parent = self._mlflow.start_run(run_name=run_name)
                self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            return self._parent.info.run_id
        except Exception as exc:
            self._fail(exc)
            return None

    def metrics(self, values: dict, step: int) -> None:
        if not self.enabled:
            return
        try:
            self._mlflow.log_metrics({k: float(v) for k, v in values.items() if isinstance(v, (int, float))}, step=step)
        except Exception as exc:
            self._fail(exc)

    def tags(self, values: dict) -> None:
        """Tags on the current run (e.g. which phases of a job have finished)."""
        if not self.enabled:
            return
        try:
            self._mlflow.set_tags({k: str(v) for k, v in values.items()})
        except Exception as exc:
            self._fail(exc)

    def image(self, image, key: str, step: int) -> None:
        """An (H, W, 3) uint8 image as a step-indexed image series (the MLflow UI's image grid view)."""
        if not self.enabled:
            return
        try:
            self._mlflow.log_image(image, key=key, step=step)
        except Exception as exc:
            self._fail(exc)

    def artifacts(self, paths: list[str]) -> None:
        """Attach files to the current run."""
        if not self.enabled:
            return
        try:
            for path in paths:
                self._mlflow.log_artifact(path)
        except Exception as exc:
            self._fail(exc)

    def child(self, run_name: str, params: dict, metrics: dict, artifacts: list[str] = ()) -> None:
        if not self.enabled:
            return
        try:
            with self._mlflow.start_run(run_name=run_name, nested=True):
                self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
                self._mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
                for path in artifacts:
                    self._mlflow.log_artifact(path)
        except Exception as exc:
            self._fail(exc)

    def end(self, metrics: dict | None = None) -> None:
        if not self.enabled or self._parent is None:
            return
        try:
            if metrics:
                self._mlflow.log_metrics(metrics)
            self._mlflow.end_run()
        except Exception as exc:
            self._fail(exc)

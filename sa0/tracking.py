"""MLflow tracking that never breaks the work it records: every call is guarded and a failure
is logged once as a warning. One parent run per job, one nested run per unit (e.g. subject)."""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)


def absolute_uri(uri: str | None) -> str | None:
    """A tracking URI that means the same from any working directory (Ray tasks run elsewhere):
    a relative sqlite:/// path or a plain / file: path made absolute; servers unchanged."""
    if not uri:
        return uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return "file://" + os.path.abspath(uri[len("file:"):])
    if "://" not in uri:
        return "file://" + os.path.abspath(uri)
    return uri


class Tracker:
    def __init__(self, experiment: str | None, tracking_uri: str | None = None, enabled: bool = True):
        """experiment None: only continue runs by id (start(run_id=...)), whatever experiment holds them."""
        self.enabled, self._warned, self._parent = enabled, False, None
        self.uri, self._experiment = None, None
        if not enabled:
            return
        try:
            import mlflow

            self._mlflow = mlflow
            if tracking_uri:
                mlflow.set_tracking_uri(absolute_uri(tracking_uri))
            self.uri = absolute_uri(mlflow.get_tracking_uri())
            if experiment is not None:
                self._experiment = mlflow.set_experiment(experiment).experiment_id
                # MLflow 3's UI opens an unmarked experiment in its GenAI view (traces, evaluation runs)
                mlflow.MlflowClient().set_experiment_tag(self._experiment, "mlflow.experimentKind",
                                                         "custom_model_development")
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

    def subject_run(self, name: str, tags: dict) -> str | None:
        """The id of `name`'s nested run under the current parent: the run an earlier attempt made
        with the same tags (a resumed job continues it, re-parented here), else a new one."""
        if not self.enabled or self._parent is None:
            return None
        try:
            client = self._mlflow.MlflowClient()
            parent = self._parent.info.run_id
            query = " and ".join([f"attributes.run_name = '{name}'"] + [f"tags.`{k}` = '{v}'" for k, v in tags.items()])
            found = client.search_runs([self._experiment], filter_string=query, max_results=1,
                                       order_by=["attributes.start_time DESC"])
            if found:
                run_id = found[0].info.run_id
                client.set_tag(run_id, "mlflow.parentRunId", parent)
                client.update_run(run_id, status="RUNNING")
                return run_id
            return client.create_run(self._experiment, run_name=name,
                                     tags={"mlflow.parentRunId": parent, **tags}).info.run_id
        except Exception as exc:
            self._fail(exc)
            return None

    def finish_subject(self, run_id: str | None, tags: dict, metrics: dict, artifacts: list[str] = ()) -> None:
        """Final tags, metrics and files of a subject's run, and mark it ended."""
        if not self.enabled or run_id is None:
            return
        try:
            client = self._mlflow.MlflowClient()
            for key, value in tags.items():
                client.set_tag(run_id, key, str(value)[:5000])
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    client.log_metric(run_id, key, float(value))
            for path in artifacts:
                client.log_artifact(run_id, path)
            client.set_terminated(run_id, "FINISHED" if tags.get("sa0.status") != "failed" else "FAILED")
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


class RunLogger:
    """Live metrics and images into one existing run by id (a refinement task's subject runs), through
    MlflowClient so one process can feed several runs. Guarded like Tracker. A retried or resumed
    attempt repeats steps an earlier attempt already logged (it restarts from a checkpoint); rows at
    or below the last step the run holds for a key are not sent again, so no step appears twice."""

    def __init__(self, tracking_uri: str | None, run_id: str | None):
        self.enabled, self._warned, self.run_id = bool(tracking_uri and run_id), False, run_id
        self._last: dict[str, int] = {}
        self._earlier = -1
        if not self.enabled:
            return
        try:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=tracking_uri)
            self._earlier = max((m.step for m in self._client.get_metric_history(run_id, "train/loss")), default=-1)
        except Exception as exc:
            self._fail(exc)

    _fail = Tracker._fail

    def _after_last(self, key: str, step: int) -> bool:
        if key not in self._last:
            history = self._client.get_metric_history(self.run_id, key)
            self._last[key] = max((m.step for m in history), default=-1)
        if step <= self._last[key]:
            return False
        self._last[key] = step
        return True

    def metrics(self, values: dict, step: int) -> None:
        if not self.enabled:
            return
        try:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            rows = [Metric(k, float(v), now, step) for k, v in values.items()
                    if isinstance(v, (int, float)) and self._after_last(k, step)]
            if rows:
                self._client.log_batch(self.run_id, metrics=rows)
        except Exception as exc:
            self._fail(exc)

    def image(self, image, key: str, step: int) -> None:
        if not self.enabled:
            return
        try:
            if step > self._earlier:  # an earlier attempt's images up to where it got exist
                self._client.log_image(self.run_id, image, key=key, step=step)
        except Exception as exc:
            self._fail(exc)

"""MLflow tracking that never breaks the work it records: every call is guarded and a failure
is logged once as a warning. One parent run per job, one nested run per unit (e.g. subject)."""

from __future__ import annotations

import functools
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


OFF = "off"


def tracking_uri(setting: str | None) -> str | None:
    """A job's mlflow_uri setting -> the URI to track to: "off" -> None (no tracking); None ->
    $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current directory; anything else, made
    absolute (absolute_uri)."""
    if setting == OFF:
        return None
    return absolute_uri(setting or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db")


class _Guarded:
    """Every public call of a subclass is wrapped by `guarded`: a no-op once tracking is off, and an
    error turns tracking off with one warning instead of reaching the work."""

    enabled, _warned = True, False

    def _fail(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("MLflow tracking disabled after an error: %s", exc)
        self._warned, self.enabled = True, False


def guarded(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if not self.enabled:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            self._fail(exc)
            return None

    return call


class Tracker(_Guarded):
    def __init__(self, experiment: str | None, tracking_uri: str | None = None, enabled: bool = True):
        """experiment None: only continue runs by id (start(run_id=...)), whatever experiment holds them."""
        self.enabled, self._parent, self.uri, self._experiment = enabled, None, None, None
        self._connect(experiment, tracking_uri)

    @guarded
    def _connect(self, experiment: str | None, tracking_uri: str | None) -> None:
        import mlflow

        from sa0.console import quiet_libraries

        quiet_libraries()  # after the import: MLflow sets its loggers to INFO when first imported
        self._mlflow = mlflow
        if tracking_uri:
            mlflow.set_tracking_uri(absolute_uri(tracking_uri))
        self.uri = absolute_uri(mlflow.get_tracking_uri())
        if experiment is not None:
            self._experiment = mlflow.set_experiment(experiment).experiment_id
            # MLflow 3's UI opens an unmarked experiment in its GenAI view (traces, evaluation runs)
            mlflow.MlflowClient().set_experiment_tag(self._experiment, "mlflow.experimentKind",
                                                     "custom_model_development")

    @guarded
    def start(self, run_name: str, params: dict, run_id: str | None = None) -> str | None:
        """Start (or, given run_id, continue) the job's run; returns its id."""
        if run_id:
            self._parent = self._mlflow.start_run(run_id=run_id)
        else:
            self._parent = self._mlflow.start_run(run_name=run_name)
            self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        return self._parent.info.run_id

    @guarded
    def metrics(self, values: dict, step: int) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in values.items() if isinstance(v, (int, float))}, step=step)

    @guarded
    def tags(self, values: dict) -> None:
        """Tags on the current run (e.g. which phases of a job have finished)."""
        self._mlflow.set_tags({k: str(v) for k, v in values.items()})

    @guarded
    def image(self, image, key: str, step: int) -> None:
        """An (H, W, 3) uint8 image as a step-indexed image series (the MLflow UI's image grid view)."""
        self._mlflow.log_image(image, key=key, step=step)

    @guarded
    def artifacts(self, paths: list[str]) -> None:
        """Attach files to the current run."""
        for path in paths:
            self._mlflow.log_artifact(path)

    @guarded
    def subject_run(self, name: str, tags: dict) -> str | None:
        """The id of `name`'s nested run under the current parent: the run an earlier attempt made
        with the same tags (a resumed job continues it, re-parented here), else a new one."""
        if self._parent is None:
            return None
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
        run = client.create_run(self._experiment, run_name=name, tags={"mlflow.parentRunId": parent, **tags})
        return run.info.run_id

    @guarded
    def finish_subject(self, run_id: str | None, tags: dict, metrics: dict, artifacts: list[str] = (),
                       folders: dict[str, str] | None = None) -> None:
        """Final tags, metrics, files and folders ({artifact path: local folder}) of a subject's run, and
        mark it ended."""
        if run_id is None:
            return
        client = self._mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_tag(run_id, key, str(value)[:5000])
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                client.log_metric(run_id, key, float(value))
        for path in artifacts:
            client.log_artifact(run_id, path)
        for name, folder in (folders or {}).items():
            client.log_artifacts(run_id, folder, artifact_path=name)
        client.set_terminated(run_id, "FINISHED" if tags.get("sa0.status") != "failed" else "FAILED")

    @guarded
    def end(self, metrics: dict | None = None, failed: bool = False) -> None:
        """End the job's run: FINISHED, or FAILED when the work it records failed."""
        if self._parent is None:
            return
        if metrics:
            self._mlflow.log_metrics(metrics)
        self._mlflow.end_run(status="FAILED" if failed else "FINISHED")


class RunLogger(_Guarded):
    """Live metrics and images into one existing run by id (a refinement task's subject runs), through
    MlflowClient so one process can feed several runs. A retried or resumed attempt repeats steps an
    earlier attempt already logged (it restarts from a checkpoint); rows at or below the last step
    the run holds for a key are not sent again, so no step appears twice."""

    def __init__(self, tracking_uri: str | None, run_id: str | None):
        self.enabled, self.run_id, self._last, self._earlier = bool(tracking_uri and run_id), run_id, {}, -1
        self._connect(tracking_uri)

    @guarded
    def _connect(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self._client = MlflowClient(tracking_uri=tracking_uri)
        self._earlier = self._last_step("train/loss")  # how far an earlier attempt got

    def _last_step(self, key: str) -> int:
        return max((m.step for m in self._client.get_metric_history(self.run_id, key)), default=-1)

    def _after_last(self, key: str, step: int) -> bool:
        if key not in self._last:
            self._last[key] = self._last_step(key)
        if step <= self._last[key]:
            return False
        self._last[key] = step
        return True

    @guarded
    def metrics(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, step) for k, v in values.items()
                if isinstance(v, (int, float)) and self._after_last(k, step)]
        if rows:
            self._client.log_batch(self.run_id, metrics=rows)

    @guarded
    def image(self, image, key: str, step: int) -> None:
        if step > self._earlier:  # an earlier attempt's images up to where it got exist
            self._client.log_image(self.run_id, image, key=key, step=step)

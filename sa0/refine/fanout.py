"""Fan-out of per-subject refinements as Ray tasks (ARCHITECTURE: Ray at the edges).

Subjects are grouped `subjects_per_task` to a task; a task refines its group in one batched loop
(sa0.refine.subjects.run_subjects). Where the cluster has GPUs a task holds one GPU and several
subjects; on CPUs a task holds `cpus_per_subject` CPUs per subject and sets torch's threads to the
CPUs it holds (Ray would leave it at one). A task whose worker dies (crash, lost node) is retried
up to `max_retries` times by Ray and resumes each subject from its checkpoint; a subject with bad
input is not retried: its row says why. Subjects with complete outputs are skipped before any task
starts. While tasks run, the driver shows steps done over all subjects with an ETA (a small actor
collects each subject's step), and each subject's MLflow run, nested under the job's run, gets its
loss curves, held-out PSNR and render | truth images live; the row's final figures and files at
the end.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from sa0.config import FlameConfig, LayoutConfig
from sa0.experiments import RunLogger, Tracker
from sa0.refine.batched import Observer
from sa0.refine.outputs import export_files, has_site, is_complete, lacks_extras
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import SubjectRow, run_subjects, skipped_row

log = logging.getLogger(__name__)
GPU_SUBJECTS_PER_TASK = 8


@dataclass(frozen=True)
class Placement:
    """How subjects map onto tasks: subjects per task, and what each task asks Ray for."""

    subjects_per_task: int
    num_cpus: int
    num_gpus: int
    max_in_flight: int


def place(num_subjects: int, cpus: int, gpus: int, node_cpus: int, subjects_per_task: int | None = None,
          cpus_per_subject: int | None = None) -> Placement:
    """Defaults: on GPUs, up to GPU_SUBJECTS_PER_TASK subjects per task, spread over the GPUs, one
    CPU each task; on CPUs, one subject per task and the machine filled (CPUs split evenly over
    the tasks that can run at once, at most one node's CPUs per task)."""
    num_subjects = max(1, num_subjects)
    if gpus > 0:
        per_task = subjects_per_task or min(GPU_SUBJECTS_PER_TASK, math.ceil(num_subjects / gpus))
        return Placement(per_task, cpus_per_subject or 1, 1, int(gpus))
    per_task = subjects_per_task or 1
    tasks = math.ceil(num_subjects / per_task)
    if cpus_per_subject:
        task_cpus = cpus_per_subject * per_task
    else:
        task_cpus = max(1, cpus // min(tasks, max(1, cpus)))
    task_cpus = max(1, min(task_cpus, max(1, node_cpus)))
    return Placement(per_task, task_cpus, 0, max(1, cpus // task_cpus))


def _remote_steps():
    import ray

    @ray.remote(num_cpus=0)
    class StepCounter:
        """Each subject's latest step, as its task reports it (a retried task reports again)."""

        def __init__(self):
            self.steps: dict[str, int] = {}

        def report(self, subject: str, step: int) -> None:
            self.steps[subject] = step

        def latest(self) -> dict[str, int]:
            return dict(self.steps)

    return StepCounter.remote()


class _TaskObserver(Observer):
    """Inside a task: steps to the driver's counter (at most every `every_s` seconds per subject),
    live metrics and images to each subject's MLflow run."""

    def __init__(self, counter, run_ids: dict, tracking_uri: str | None, every_s: float = 1.0):
        self.counter, self.every_s, self._sent = counter, every_s, {}
        self.loggers = {name: RunLogger(tracking_uri, run_id) for name, run_id in run_ids.items()}

    def progress(self, name, step):
        now = time.monotonic()
        if now - self._sent.get(name, -1e9) >= self.every_s:
            self._sent[name] = now
            self.counter.report.remote(name, step)

    def log(self, name, record):
        self.loggers[name].metrics({f"train/{k}": v for k, v in record.items() if k not in ("step", "steps_per_s")}
                                   | {"steps_per_s": record["steps_per_s"]}, record["step"])

    def heldout(self, name, step, metrics):
        self.loggers[name].metrics({f"heldout/{k}": v for k, v in metrics.items()}, step)

    def image(self, name, step, image):
        self.loggers[name].image(image, "render_vs_truth", step)


def refine_task(subjects: list[str], shard_dirs, out_dir, flame: FlameConfig, layout: LayoutConfig,
                refine: RefineConfig, generator_dir: str | None, counter, run_ids: dict,
                tracking_uri: str | None, web: bool = False, export: tuple[str, ...] = ()) -> list[SubjectRow]:
    """One task: torch threads = the CPUs Ray gave it, then the batch."""
    import ray

    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    observer = _TaskObserver(counter, run_ids, tracking_uri)
    rows = run_subjects(subjects, shard_dirs, out_dir, flame, layout, refine, generator_dir, observer, web=web,
                        export=export)
    for row in rows:  # done or skipped: all its steps count; a failed one's steps stay undone (no full bar)
        if not row.failed:
            counter.report.remote(row.subject, refine.steps)
    return rows


def _cluster() -> tuple[int, int, int]:
    import ray

    resources = ray.cluster_resources()
    node_cpus = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
    return int(resources.get("CPU", 1)), int(resources.get("GPU", 0)), int(node_cpus)


def refine_batch(subjects: list[str], shard_dirs, out_dir, flame: FlameConfig, layout: LayoutConfig,
                 refine: RefineConfig, max_in_flight: int | None = None, max_retries: int = 2,
                 tracker: Tracker | None = None, generator_dir: str | None = None,
                 subjects_per_task: int | None = None, cpus_per_subject: int | None = None,
                 web: bool = False, export: tuple[str, ...] = ()) -> list[SubjectRow]:
    import ray

    if not ray.is_initialized():
        ray.init()
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [s for s in subjects if not is_complete(out_dir / s) or lacks_extras(out_dir / s, web, export)]
    rows = {s: skipped_row(s, out_dir) for s in subjects if s not in todo}
    placement = place(len(todo), *_cluster(), subjects_per_task, cpus_per_subject)
    resources = {"num_cpus": placement.num_cpus, **({"num_gpus": placement.num_gpus} if placement.num_gpus else {})}
    task = ray.remote(max_retries=max_retries, retry_exceptions=False, **resources)(refine_task)
    in_flight = max_in_flight or placement.max_in_flight
    groups = [todo[i:i + placement.subjects_per_task] for i in range(0, len(todo), placement.subjects_per_task)]
    if todo:
        log.info("refining %d subjects in %d tasks of up to %d (%d CPUs%s each)", len(todo), len(groups),
                 placement.subjects_per_task, placement.num_cpus, ", 1 GPU" if placement.num_gpus else "")
    run_ids = {s: tracker.subject_run(s, {"sa0.subject": s, "sa0.out": str(out_dir)}) if tracker else None
               for s in todo}
    uri = tracker.uri if tracker is not None and tracker.enabled else None
    counter = _remote_steps()
    pending: dict = {}
    queue = list(groups)
    with tqdm(total=len(todo) * refine.steps, desc="refine", unit="step", dynamic_ncols=True) as bar:
        bar.set_postfix_str(f"subjects 0/{len(todo)} finished")
        finished = 0
        while queue or pending:
            while queue and len(pending) < in_flight:
                group = queue.pop(0)
                ref = task.remote(group, [str(d) for d in shard_dirs], str(out_dir), flame, layout, refine,
                                  generator_dir, counter, {s: run_ids[s] for s in group}, uri, web, export)
                pending[ref] = group
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in done:
                group = pending.pop(ref)
                try:
                    got = ray.get(ref)
                except Exception as exc:  # crashed more often than retried, or raised
                    got = [SubjectRow(s, reason=f"task failed: {type(exc).__name__}: {exc}"[:300]) for s in group]
                for row in got:
                    rows[row.subject] = row
                    finished += 1
                    _record(tracker, run_ids.get(row.subject), row, out_dir, export)
                failed = sum(r.failed for r in rows.values())
                bar.set_postfix_str(f"subjects {finished}/{len(todo)} finished" + (f", {failed} failed" if failed else ""))
            reported = ray.get(counter.latest.remote())  # a finished subject counts from its row, not a report
            bar.n = min(bar.total, sum(_steps_done(rows.get(s), reported.get(s, 0), refine.steps) for s in todo))
            bar.refresh()
    return [rows[s] for s in subjects]


def _steps_done(row: SubjectRow | None, reported: int, steps: int) -> int:
    """A subject's share of the bar: all its steps once done, what its task reported while it runs or
    when it failed (a failed subject's steps stay undone: the bar never fills for failed work)."""
    return steps if row is not None and not row.failed else reported


def _record(tracker: Tracker | None, run_id: str | None, row: SubjectRow, out_dir: Path,
            export: tuple[str, ...] = ()) -> None:
    if tracker is None:
        return
    subject_dir = out_dir / row.subject
    files = [subject_dir / n for n in ("metrics.json", "preview.mp4")] if row.status == "done" else []
    files += [p for p in export_files(subject_dir, export) if not row.failed and p.is_file()]
    artifacts = [str(p) for p in files]
    folders = {"web": str(subject_dir / "web")} if not row.failed and has_site(subject_dir) else {}
    tracker.finish_subject(run_id, {"sa0.status": row.status, "sa0.reason": row.reason}, row.figures(),
                           artifacts, folders)

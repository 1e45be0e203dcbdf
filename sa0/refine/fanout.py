"""Fan-out of per-subject refinements as independent Ray tasks (ARCHITECTURE: Ray at the edges).

One task per subject (one GPU each where the cluster has GPUs, else one CPU), at most
`max_in_flight` at a time. A task whose worker dies (crash, lost node) is retried up to
`max_retries` times by Ray; a subject with bad input is not retried: its row says why. Subjects
with complete outputs are skipped before any task starts. Results go to MLflow as one nested run
per subject under a parent run, and into the returned rows (in input order).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from sa0.config import FlameConfig, LayoutConfig
from sa0.refine.outputs import is_complete
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import run_subject
from sa0.tracking import Tracker

log = logging.getLogger(__name__)


def refine_batch(subjects: list[str], shard_dirs, out_dir, flame: FlameConfig, layout: LayoutConfig,
                 refine: RefineConfig, max_in_flight: int | None = None, max_retries: int = 2,
                 tracker: Tracker | None = None, generator_dir: str | None = None) -> list[dict]:
    import ray

    if not ray.is_initialized():
        ray.init()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gpus = ray.cluster_resources().get("GPU", 0)
    resources = {"num_gpus": 1} if gpus > 0 else {"num_cpus": 1}
    task = ray.remote(max_retries=max_retries, retry_exceptions=False, **resources)(run_subject)
    max_in_flight = max_in_flight or max(1, int(gpus or ray.cluster_resources().get("CPU", 1)))
    rows: dict[str, dict] = {}
    queue = []
    for subject in subjects:
        if is_complete(out_dir / subject):
            rows[subject] = run_subject(subject, shard_dirs, out_dir, flame, layout, refine)  # reads metrics only
        else:
            queue.append(subject)
    pending: dict = {}
    with tqdm(total=len(subjects), initial=len(rows), desc="subjects", unit="subject") as bar:
        while queue or pending:
            while queue and len(pending) < max_in_flight:
                subject = queue.pop(0)
                pending[task.remote(subject, [str(d) for d in shard_dirs], str(out_dir), flame, layout, refine,
                                    generator_dir)] = subject
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                subject = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:  # crashed more often than retried, or raised
                    row = {"subject": subject, "status": "failed", "psnr": None, "ssim": None, "max_ar": None,
                           "steps": 0, "seconds": 0.0, "reason": f"task failed: {type(exc).__name__}: {exc}"[:300]}
                rows[subject] = row
                bar.update(1)
                if tracker is not None:
                    artifacts = [str(out_dir / subject / "metrics.json")] if row["status"] == "done" else []
                    tracker.child(subject, {"status": row["status"], "reason": row["reason"]},
                                  {k: row[k] for k in ("psnr", "ssim", "max_ar", "steps", "seconds")
                                   if row[k] is not None}, artifacts)
    return [rows[s] for s in subjects]

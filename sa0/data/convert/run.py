"""Converting whole datasets: one Ray task per group of clips, fault tolerant and resumable.

    convert_dataset(ConvertConfig(format, sources, out)) -> summary dict   (call with or without Ray running)

Each task converts `units_per_task` clips of one source directory (a video, a split, a subject:
`STREAMING[format].units(src)`) into shards `shard-<task id>-NNNNNN.tar` in `OUT/.staging/<task id>/`
(each written as .tmp and renamed when complete). The driver moves finished tasks' shards into
OUT and then rewrites `manifest.json` atomically, listing the tasks as done (batched: at most every
few seconds, and at the end): a rerun (after a killed
driver or a lost node) skips done tasks, deletes staging leftovers and any shard the manifest does
not describe (only a driver killed between those two renames leaves one). A task whose worker dies
is retried from scratch by Ray. A bad frame drops its timestep, a bad clip or source is skipped:
each problem is recorded with its file, field and value in the manifest's task entry and in
`conversion_report.json`, and counted in the summary line; `strict=True` makes the first one fatal.
The manifest orders shards by source and unit, so any cluster gives the same manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sa0.data.convert import STREAMING
from sa0.data.schema import ClipError
from sa0.data.shards import MANIFEST, ShardError, ShardWriter, build_manifest, read_manifest
from sa0.faults import maybe_crash
from sa0.fsutil import write_json_atomic

log = logging.getLogger(__name__)
REPORT = "conversion_report.json"
STAGING = ".staging"


class ConversionError(RuntimeError):
    """Conversion stopped (strict mode found a problem, or a task failed for good)."""


@dataclass(frozen=True, kw_only=True)
class ConvertConfig:
    """format: a key of STREAMING; sources: tracker output directories; out: shard directory;
    dataset / domain: names in the clip keys (None: the format's default / the dataset);
    strict: any problem is fatal; units_per_task: clips per Ray task; retries: per task."""

    format: str = "vhap"
    sources: tuple[str, ...] = ()
    out: str = ""
    dataset: str | None = None
    domain: str | None = None
    strict: bool = False
    max_shard_bytes: int = 256 << 20
    image_format: str = "png"
    units_per_task: int = 1
    retries: int = 3

    def __post_init__(self):
        if self.format not in STREAMING:
            raise ValueError(f"ConvertConfig.format must be one of {sorted(STREAMING)}, got {self.format!r}")
        if self.units_per_task < 1 or self.max_shard_bytes < 1 or self.retries < 0:
            raise ValueError("ConvertConfig.units_per_task and max_shard_bytes must be >= 1, retries >= 0")

    def kwargs(self) -> dict:
        return {k: v for k, v in (("dataset", self.dataset), ("domain", self.domain)) if v}


@dataclass(frozen=True)
class Task:
    id: str
    source: str
    units: tuple[str, ...]


@dataclass
class TaskResult:
    id: str
    source: str
    units: list[str]
    shards: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)  # {"source", "unit", "problem"}
    clips_skipped: int = 0


def plan_tasks(cfg: ConvertConfig) -> tuple[list[Task], list[dict], list[str]]:
    """The tasks of a conversion, in manifest order, the sources that could not be listed, and notes
    (parts of a source left out on purpose, e.g. an empty split beside converted ones)."""
    module, tasks, problems, notes = STREAMING[cfg.format], [], [], []
    for src in sorted(str(Path(s).absolute()) for s in cfg.sources):
        try:
            units = module.units(src)
            notes += module.notes(src) if hasattr(module, "notes") else []
        except (ClipError, OSError, ValueError) as exc:
            problems.append({"source": src, "unit": None, "problem": str(exc)})
            continue
        for i in range(0, len(units), cfg.units_per_task):
            group = tuple(units[i: i + cfg.units_per_task])
            digest = hashlib.sha1(f"{src}\n{chr(10).join(group)}".encode()).hexdigest()[:12]
            tasks.append(Task(f"{Path(src).name[:40]}-{digest}", src, group))
    return tasks, problems, notes


def convert_task(task: Task, cfg: ConvertConfig) -> TaskResult:
    """Convert one task's clips into its staging directory (cleared first: a retry starts clean)."""
    staging = Path(cfg.out) / STAGING / task.id
    shutil.rmtree(staging, ignore_errors=True)
    writer = ShardWriter(staging, f"shard-{task.id}", cfg.max_shard_bytes, cfg.image_format, strict=cfg.strict)
    result = TaskResult(task.id, task.source, list(task.units))
    module = STREAMING[cfg.format]
    try:
        for unit in task.units:
            try:
                for source in module.sources(task.source, [unit], **cfg.kwargs()):
                    record, problems = writer.add(source)
                    result.problems += [{"source": task.source, "unit": unit, "problem": p} for p in problems]
                    result.clips_skipped += record is None
                    maybe_crash(f"convert-{Path(task.source).name}", "mid-shard")
            except ClipError as exc:
                if cfg.strict:
                    raise
                result.problems.append({"source": task.source, "unit": unit, "problem": str(exc)})
                result.clips_skipped += 1
        result.shards = writer.close()
    except BaseException:
        writer.abandon()
        raise
    return result


def _cleanup(out: Path, listed: set[str]) -> None:
    for path in out.glob("*.tar*"):
        if path.name not in listed:
            log.warning("%s: not described by the manifest (a driver stopped mid-commit); removing it", path)
            path.unlink()


def _load_previous(out: Path, cfg: ConvertConfig) -> tuple[dict[str, dict], dict[str, dict]]:
    """(done tasks by id, shard entries by file) of an earlier run into `out`."""
    if not (out / MANIFEST).is_file():
        return {}, {}
    manifest = read_manifest(out)
    conversion = manifest.get("conversion") or {}
    if conversion.get("format") not in (None, cfg.format):
        raise ShardError(f"{out / MANIFEST}: written by a '{conversion['format']}' conversion; this one is "
                         f"'{cfg.format}' (use another --out)")
    return dict(conversion.get("tasks") or {}), {s["file"]: s for s in manifest["shards"]}


class _Committer:
    """The driver's bookkeeping. Finished tasks wait in staging; flush() moves their shards into OUT
    and rewrites the manifest once for all of them (at most every `every_s` seconds, so the
    manifest is written O(duration / every_s) times, not once per task), then clears their staging."""

    def __init__(self, cfg: ConvertConfig, order: dict[str, int], done: dict, shards: dict, listing: list[dict],
                 every_s: float = 5.0):
        self.cfg, self.out, self.order, self.done, self.shards = cfg, Path(cfg.out), order, done, shards
        self.listing_problems, self.every_s = listing, every_s
        self.queued: list[TaskResult] = []
        self.flushed_at = time.monotonic()
        self.clips = sum(len(s["clips"]) for s in shards.values())
        self.problems = sum(len(e["problems"]) for e in done.values())

    def add(self, result: TaskResult) -> None:
        self.queued.append(result)
        self.clips += sum(len(s["clips"]) for s in result.shards)
        self.problems += len(result.problems)
        if time.monotonic() - self.flushed_at >= self.every_s:
            self.flush()

    def flush(self) -> None:
        for result in self.queued:
            for shard in result.shards:
                os.replace(self.out / STAGING / result.id / shard["file"], self.out / shard["file"])
                self.shards[shard["file"]] = shard
            self.done[result.id] = {**asdict(result), "shards": [shard["file"] for shard in result.shards]}
        write_json_atomic(self.out / MANIFEST, self.manifest(), indent=None)
        for result in self.queued:
            shutil.rmtree(self.out / STAGING / result.id, ignore_errors=True)
        self.queued, self.flushed_at = [], time.monotonic()

    def manifest(self) -> dict:
        tasks = sorted(self.done.values(), key=lambda e: (self.order.get(e["id"], 1 << 30), e["id"]))
        shards = [self.shards[name] for entry in tasks for name in entry["shards"]]
        conversion = {"format": self.cfg.format, "settings": self.cfg.kwargs(), "tasks": {e["id"]: e for e in tasks}}
        return build_manifest(shards, self.cfg.image_format, conversion=conversion)

    def report(self, failed: list[dict], notes: list[str] = ()) -> dict:
        entries = list(self.done.values())
        problems = self.listing_problems + [p for e in entries for p in e["problems"]] + failed
        manifest = self.manifest()
        report = {"format": self.cfg.format, "out": str(self.out), "clips": manifest["clips"],
                  "frames": manifest["frames"], "shards": len(manifest["shards"]),
                  "clips_skipped": sum(e["clips_skipped"] for e in entries) + len(self.listing_problems) + len(failed),
                  "problems": problems, "notes": list(notes)}
        write_json_atomic(self.out / REPORT, report)
        return report


def convert_dataset(cfg: ConvertConfig, address: str | None = None, progress: bool = True) -> dict:
    """Convert every source (see the module docstring); -> the report (also in OUT/conversion_report.json).
    Starts a local Ray (or connects to `address`) unless Ray is already initialised."""
    import ray

    if not cfg.sources or not cfg.out:
        raise ConversionError("a conversion needs sources (--src DIR ...) and an output directory (--out DIR)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks, listing, notes = plan_tasks(cfg)
    if cfg.strict and listing:
        raise ConversionError(f"{listing[0]['source']}: {listing[0]['problem']}")
    done, shards = _load_previous(out, cfg)
    committer = _Committer(cfg, {t.id: i for i, t in enumerate(tasks)}, done, shards, listing)
    _cleanup(out, set(shards) | {MANIFEST, REPORT})
    shutil.rmtree(out / STAGING, ignore_errors=True)
    todo = [t for t in tasks if t.id not in done]
    started = not ray.is_initialized()
    if started:
        if address is None:  # a private local cluster: no token to share
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    failed: list[dict] = []
    try:
        _run(ray, cfg, todo, committer, failed, progress, reused=len(tasks) - len(todo))
    finally:
        committer.flush()  # what finished is kept, also when stopped (strict mode, Ctrl-C)
        shutil.rmtree(out / STAGING, ignore_errors=True)
        if started:
            ray.shutdown()
    return {**committer.report(failed, notes), "tasks_run": len(todo), "tasks_reused": len(tasks) - len(todo)}


def _run(ray, cfg, todo, committer, failed, progress, reused) -> None:
    from tqdm import tqdm

    remote = ray.remote(num_cpus=1, max_retries=cfg.retries, retry_exceptions=False)(convert_task)
    pending = {remote.remote(task, cfg): task for task in todo}
    bar = tqdm(total=sum(len(t.units) for t in todo), unit="clip", desc=f"converting {cfg.format}",
               disable=not progress or not todo, postfix={"reused tasks": reused} if reused else None)
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # the task raised (strict mode, a bug) or its worker died too often
                cause = getattr(exc, "cause", None) or exc
                if cfg.strict:
                    for other in pending:
                        ray.cancel(other, force=True)
                    raise ConversionError(f"{task.source}: {cause}") from exc
                failed.append({"source": task.source, "unit": ",".join(task.units), "problem": f"task failed: {cause}"})
            else:
                committer.add(result)
            bar.update(len(task.units))
            bar.set_postfix(clips=committer.clips, problems=committer.problems + len(failed))
    finally:
        bar.close()

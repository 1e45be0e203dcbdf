"""Streaming training examples to a rank: a planned epoch (sa0.data.plan) built on Ray Data.

    ExampleStream(DataConfig, batch_size, rank, world, position) -> batches (dicts of tensors), forever
      epoch e:  rank_plan(e) -> descriptors[next:]            (nothing before `next` is read or built)
             -> ray.data.range(n).map_batches(build)           each task: index read + K+1 frames per
                                                               example (sa0.data.reader); bad clips
                                                               are skipped, logged and counted
             -> iter_torch_batches(batch_size, drop_last)      order preserved

`runner="local"` builds the same examples in this process without Ray: the plain twin the Ray path
is tested against, and the path for a single process. The stream's position {"epoch", "next",
"batch"} goes into checkpoints; a stream built from it yields exactly the batches an uninterrupted
one would have yielded next.

Why not `ray.data.read_webdataset`: it reads every member of every sample, i.e. whole clips, to
use K + 1 frames of each; here the work items are example descriptors and the shards are read
with ranged reads.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sa0.data.examples import ExampleConfig, build_example
from sa0.data.plan import ClipTable, EpochPlan, rank_plan
from sa0.data.reader import ShardReader
from sa0.data.schema import ClipError
from sa0.data.shards import ShardError, read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """shard_dirs: directories written by make_shards; examples_per_clip: draws per clip per epoch;
    shuffle_buffer: descriptors in the local shuffle buffer (1: none); shuffle_shards: permute the
    shard order every epoch; descriptors_per_task: examples one Ray Data task builds; total_steps:
    training length (for the temperature anneal); seed."""

    shard_dirs: tuple[str, ...] = ()
    example: ExampleConfig = field(default_factory=ExampleConfig)
    examples_per_clip: int = 4
    shuffle_buffer: int = 2048
    shuffle_shards: bool = True
    descriptors_per_task: int = 16
    total_steps: int = 200_000
    seed: int = 0

    def __post_init__(self):
        for name in ("examples_per_clip", "shuffle_buffer", "descriptors_per_task", "total_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"DataConfig.{name} must be >= 1, got {getattr(self, name)}")


def shard_paths(shard_dirs) -> list[str]:
    """All shard files of the given directories, after checking each against its manifest.

    A missing or schema-1 manifest, a missing file or a size that differs from the manifest
    (truncation) is refused up front, naming every problem.
    """
    paths, problems = [], []
    for directory in map(Path, shard_dirs):
        try:
            manifest = read_manifest(directory)
        except ShardError as exc:
            problems.append(str(exc))
            continue
        for shard in manifest["shards"]:
            path = directory / shard["file"]
            if not path.is_file():
                problems.append(f"{path}: listed in the manifest but missing")
            elif path.stat().st_size != shard["bytes"]:
                problems.append(f"{path}: {path.stat().st_size} bytes, manifest says {shard['bytes']} (truncated?)")
            else:
                paths.append(str(path))
    if problems:
        raise ShardError("refusing to stream these shards (run `python jobs/make_shards.py validate DIR`):\n  "
                         + "\n  ".join(problems))
    if not paths:
        raise ShardError(f"no shards found in {list(map(str, shard_dirs))}")
    return paths


def make_skip_counter():
    """A Ray actor counting samples that could not be built, with their reasons (call after ray.init())."""
    import ray

    @ray.remote(num_cpus=0)
    class SkipCounter:
        def __init__(self):
            self.reasons: list[str] = []

        def add(self, reason: str) -> None:
            self.reasons.append(reason)

        def count(self) -> int:
            return len(self.reasons)

        def all(self) -> list[str]:
            return list(self.reasons)

    return SkipCounter.remote()


class ExampleBuilder:
    """Builds the examples of descriptor positions of one plan (one per process; caches a few clip
    indices, so draws of one clip close together read its index once). `reader.bytes_read` counts
    every byte taken from the shards, `built` the examples built per epoch."""

    def __init__(self, table: ClipTable, cfg: DataConfig, cache: int = 64):
        self.table, self.cfg, self.reader = table, cfg, ShardReader()
        self._indices: OrderedDict[int, object] = OrderedDict()
        self._cache, self.built = cache, Counter()

    def _index(self, clip: int):
        index = self._indices.pop(clip, None)
        if index is None:
            index = self.reader.index(self.table.paths[self.table.shard[clip]], self.table.record(clip))
            while len(self._indices) >= self._cache:
                self._indices.popitem(last=False)
        self._indices[clip] = index
        return index

    def build(self, plan: EpochPlan, positions, on_skip=None) -> list[tuple[int, dict]]:
        """-> [(position, example)] for the positions that could be built (in order)."""
        out = []
        for i in positions:
            clip, draw = int(plan.clip[i]), int(plan.draw[i])
            rng = np.random.default_rng([self.cfg.seed, int(self.table.crc[clip]), plan.epoch, draw])
            try:
                example = build_example(self.reader, self._index(clip), rng, float(plan.temperature[i]), self.cfg.example)
            except (ShardError, ClipError, ValueError) as exc:
                reason = f"{self.table.paths[self.table.shard[clip]]} '{self.table.keys[clip]}': {exc}"
                log.warning("skipping sample %s", reason)
                if on_skip is not None:
                    on_skip(reason)
                continue
            self.built[plan.epoch] += 1
            out.append((int(i), example))
        return out


def _collate(pairs: list[tuple[int, dict]]) -> dict[str, np.ndarray]:
    return {"seq": np.array([p for p, _ in pairs], np.int64),
            **{k: np.stack([e[k] for _, e in pairs]) for k in pairs[0][1]}} if pairs else {}


_WORKER_STATE: dict = {}


def _ray_build(batch: dict, holder: list, start: int, counter) -> dict:
    """map_batches body (in a Ray worker): ids -> examples of plan positions start + id. holder =
    [ObjectRef of (table, cfg, plan)], fetched once per worker process."""
    import ray

    state_ref = holder[0]
    key = state_ref.hex()
    if _WORKER_STATE.get("key") != key:
        table, cfg, plan = ray.get(state_ref)
        _WORKER_STATE.update(key=key, builder=ExampleBuilder(table, cfg), plan=plan)
    on_skip = (lambda reason: counter.add.remote(reason)) if counter is not None else None
    built = _WORKER_STATE["builder"].build(_WORKER_STATE["plan"], (start + batch["id"]).tolist(), on_skip)
    return _collate(built) if built else {"seq": np.zeros(0, np.int64)}


class ExampleStream:
    """Batches epoch after epoch for rank `rank` of `world`, with a resumable position:
    state_dict() = {"epoch", "next" (plan position), "batch" (batches done in that epoch)}."""

    def __init__(self, cfg: DataConfig, batch_size: int, *, rank: int = 0, world: int = 1, position: dict | None = None,
                 counter=None, runner: str = "ray", table: ClipTable | None = None):
        if runner not in ("ray", "local"):
            raise ValueError(f"runner must be 'ray' or 'local', got {runner!r}")
        self.cfg, self.batch_size, self.rank, self.world = cfg, batch_size, rank, world
        self.counter, self.runner = counter, runner
        self.table = table or ClipTable.from_dirs(cfg.shard_dirs)
        position = position or {}
        self.epoch, self.next, self.batch = (int(position.get(k, 0)) for k in ("epoch", "next", "batch"))
        self.skipped: list[str] = []
        self.local_builder = ExampleBuilder(self.table, cfg) if runner == "local" else None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "next": self.next, "batch": self.batch}

    def plan(self, epoch: int) -> EpochPlan:
        c = self.cfg
        return rank_plan(self.table, epoch, seed=c.seed, examples_per_clip=c.examples_per_clip,
                         shuffle_buffer=c.shuffle_buffer, shuffle_shards=c.shuffle_shards, rank=self.rank,
                         world=self.world, batch_size=self.batch_size, total_steps=c.total_steps,
                         sampler=c.example.sampler)

    def _skip(self, reason: str) -> None:
        self.skipped.append(reason)
        if self.counter is not None:
            self.counter.add.remote(reason)

    def _local_batches(self, plan: EpochPlan, start: int):
        pending: list = []
        for first in range(start, len(plan), self.cfg.descriptors_per_task):
            stop = min(first + self.cfg.descriptors_per_task, len(plan))
            pending += self.local_builder.build(plan, range(first, stop), self._skip)
            while len(pending) >= self.batch_size:
                batch, pending = pending[: self.batch_size], pending[self.batch_size:]
                yield {k: torch.as_tensor(v) for k, v in _collate(batch).items()}

    def _ray_batches(self, plan: EpochPlan, start: int):
        import ray
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        remaining = len(plan) - start
        state = ray.put((self.table, self.cfg, plan))
        ds = ray.data.range(remaining, override_num_blocks=max(1, math.ceil(remaining / self.cfg.descriptors_per_task)))
        ds = ds.map_batches(_ray_build, batch_size=self.cfg.descriptors_per_task, fn_args=([state], start, self.counter))
        yield from ds.iter_torch_batches(batch_size=self.batch_size, drop_last=True, device="cpu")

    def __iter__(self):
        while True:
            plan = self.plan(self.epoch)
            if self.next:
                log.info("data: resuming epoch %d at example %d of %d (batch %d); nothing before it is read",
                         self.epoch, self.next, len(plan), self.batch)
            batches = self._local_batches if self.runner == "local" else self._ray_batches
            if self.next < len(plan):
                for batch in batches(plan, self.next):
                    self.next, self.batch = int(batch.pop("seq")[-1]) + 1, self.batch + 1
                    yield batch
            self.epoch, self.next, self.batch = self.epoch + 1, 0, 0

"""Streaming training examples to a rank: a planned epoch (sa0.data.plan) built on Ray Data.

    ExampleStream(DataConfig, batch_size, rank, world, position) -> batches (dicts of tensors), forever
      window:  rank_plan(e)[next:] + rank_plan(e + 1) + ...   (>= descriptors_per_dataset; nothing
                                                               before `next` is read or built)
            -> ray.data.range(n).map_batches(build)            each task: index read + K+1 frames per
                                                               example (sa0.data.reader); bad clips
                                                               are skipped, logged and counted
            -> iter_batches (order preserved) -> batches of `batch_size` consecutive examples

`runner="local"` builds the same examples in this process without Ray: the plain twin the Ray path
is tested against, and the path for a single process. The stream's position {"epoch", "next"} goes
into checkpoints; a stream built from it yields exactly the batches an uninterrupted one would have
yielded next. Batches may span an epoch boundary; the partial batch at the end of a dataset carries
over into the next, so how many epochs one dataset covers changes no batch.

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
    shard order every epoch; descriptors_per_task: examples one Ray Data task builds;
    descriptors_per_dataset: a Ray Data dataset covers at least this many (whole epochs of a small
    data set, so it does not pay the pipeline start-up every epoch); total_steps: training length
    (for the temperature anneal; in a training phase always the phase's steps); seed."""

    shard_dirs: tuple[str, ...] = ()
    example: ExampleConfig = field(default_factory=ExampleConfig)
    examples_per_clip: int = 4
    shuffle_buffer: int = 2048
    shuffle_shards: bool = True
    descriptors_per_task: int = 16
    descriptors_per_dataset: int = 4096
    total_steps: int = 200_000
    seed: int = 0

    def __post_init__(self):
        for name in ("examples_per_clip", "shuffle_buffer", "descriptors_per_task", "descriptors_per_dataset",
                     "total_steps"):
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

    def rng(self, plan: EpochPlan, i: int) -> np.random.Generator:
        """The randomness of descriptor i: seeded by (seed, crc32(clip key), epoch, draw)."""
        clip, epoch, draw = int(plan.clip[i]), int(plan.epoch[i]), int(plan.draw[i])
        return np.random.default_rng([self.cfg.seed, int(self.table.crc[clip]), epoch, draw])

    def build(self, plan: EpochPlan, positions, on_skip=None) -> list[tuple[int, dict]]:
        """-> [(index into plan, example)] for the descriptors that could be built (in order)."""
        out = []
        for i in positions:
            clip, epoch = int(plan.clip[i]), int(plan.epoch[i])
            try:
                example = build_example(self.reader, self._index(clip), self.rng(plan, i), float(plan.temperature[i]),
                                        self.cfg.example)
            except (ShardError, ClipError, ValueError) as exc:
                reason = f"{self.table.paths[self.table.shard[clip]]} '{self.table.keys[clip]}': {exc}"
                log.warning("skipping sample %s", reason)
                if on_skip is not None:
                    on_skip(reason)
                continue
            self.built[epoch] += 1
            out.append((int(i), example))
        return out


def _collate(pairs: list[tuple[int, dict]]) -> dict[str, np.ndarray]:
    return {"seq": np.array([p for p, _ in pairs], np.int64),
            **{k: np.stack([e[k] for _, e in pairs]) for k in pairs[0][1]}} if pairs else {}


_WORKER_STATE: dict = {}


def _ray_build(batch: dict, holder: list, counter) -> dict:
    """map_batches body (in a Ray worker): ids -> examples of those plan indices. holder =
    [ObjectRef of (table, cfg, plan)], fetched once per worker process."""
    import ray

    state_ref = holder[0]
    key = state_ref.hex()
    if _WORKER_STATE.get("key") != key:
        table, cfg, plan = ray.get(state_ref)
        _WORKER_STATE.update(key=key, builder=ExampleBuilder(table, cfg), plan=plan)
    on_skip = (lambda reason: counter.add.remote(reason)) if counter is not None else None
    built = _WORKER_STATE["builder"].build(_WORKER_STATE["plan"], batch["id"].tolist(), on_skip)
    return _collate(built) if built else {"seq": np.zeros(0, np.int64)}


class ExampleStream:
    """Batches for rank `rank` of `world`, epoch after epoch, with a resumable position:
    state_dict() = {"epoch", "next"}: the first descriptor of that epoch not yet in a yielded batch.
    Batches are consecutive examples of the planned stream (they may span an epoch boundary)."""

    def __init__(self, cfg: DataConfig, batch_size: int, *, rank: int = 0, world: int = 1, position: dict | None = None,
                 counter=None, runner: str = "ray", table: ClipTable | None = None):
        if runner not in ("ray", "local"):
            raise ValueError(f"runner must be 'ray' or 'local', got {runner!r}")
        self.cfg, self.batch_size, self.rank, self.world = cfg, batch_size, rank, world
        self.counter, self.runner = counter, runner
        self.table = table or ClipTable.from_dirs(cfg.shard_dirs)
        self.epoch_length = len(self.table) * cfg.examples_per_clip // world
        if self.epoch_length == 0:
            self.plan(0)  # raises, saying why
        position = position or {}
        self.epoch, self.next = self._normalised(int(position.get("epoch", 0)), int(position.get("next", 0)))
        self.skipped: list[str] = []
        self.local_builder = ExampleBuilder(self.table, cfg) if runner == "local" else None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "next": self.next}

    def _normalised(self, epoch: int, next_: int) -> tuple[int, int]:
        return (epoch + 1, 0) if next_ >= self.epoch_length else (epoch, next_)

    def plan(self, epoch: int) -> EpochPlan:
        c = self.cfg
        return rank_plan(self.table, epoch, seed=c.seed, examples_per_clip=c.examples_per_clip,
                         shuffle_buffer=c.shuffle_buffer, shuffle_shards=c.shuffle_shards, rank=self.rank,
                         world=self.world, batch_size=self.batch_size, total_steps=c.total_steps,
                         sampler=c.example.sampler)

    def window(self, epoch: int, start: int) -> EpochPlan:
        """Descriptors from (epoch, start) on: the rest of that epoch and whole epochs after it, at least
        descriptors_per_dataset of them, but no more than training still needs (total_steps x
        batch_size, plus a batch of slack for skipped samples): Ray Data builds a dataset ahead of the
        trainer, and examples built past the last step would be CPU taken from it."""
        want = self.cfg.descriptors_per_dataset
        left = self.cfg.total_steps * self.batch_size - (epoch * self.epoch_length + start) + self.batch_size
        if left > self.batch_size:
            want = min(want, left)
        parts, count = [], 0
        while count < want or not parts:
            part = self.plan(epoch)[start:]
            if left > self.batch_size:
                part = part[: max(1, left - count)]
            parts.append(part)
            count, epoch, start = count + len(part), epoch + 1, 0
        return EpochPlan.concat(parts)

    def _skip(self, reason: str) -> None:
        self.skipped.append(reason)
        if self.counter is not None:
            self.counter.add.remote(reason)

    def _local_chunks(self, window: EpochPlan):
        for first in range(0, len(window), self.cfg.descriptors_per_task):
            stop = min(first + self.cfg.descriptors_per_task, len(window))
            built = self.local_builder.build(window, range(first, stop), self._skip)
            if built:
                yield _collate(built)

    def _ray_chunks(self, window: EpochPlan):
        import ray
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        # A dataset per window: keep Ray Data's per-execution notices (start, plan, finished, "progress
        # bars disabled") off the console; the trainer prints its own progress lines.
        context.print_on_execution_start = False
        logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        # One fused operator (range -> build, whole blocks): reserving resources per operator only
        # holds CPUs back (on 2 CPUs it ran one task at a time: 3.8 s vs 2.2 s for 16 x 0.25 s tasks).
        if hasattr(context, "op_resource_reservation_enabled"):
            context.op_resource_reservation_enabled = False
        state = ray.put((self.table, self.cfg, window))
        n = len(window)
        ds = ray.data.range(n, override_num_blocks=max(1, math.ceil(n / self.cfg.descriptors_per_task)))
        ds = ds.map_batches(_ray_build, batch_size=None, fn_args=([state], self.counter))
        for chunk in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
            if len(chunk["seq"]):
                yield chunk

    def __iter__(self):
        epoch, start = self.epoch, self.next  # where building continues (ahead of what was yielded)
        pending: dict | None = None
        while True:
            window = self.window(epoch, start)
            if epoch or start:
                log.info("data: rank %d continues at epoch %d, example %d of %d; nothing before it is read",
                         self.rank, epoch, start, self.epoch_length)
            chunks = self._local_chunks if self.runner == "local" else self._ray_chunks
            for chunk in chunks(window):
                chunk["seq"] = window.epoch[chunk["seq"]] * self.epoch_length + window.position[chunk["seq"]]
                pending = chunk if pending is None else {k: np.concatenate([pending[k], chunk[k]]) for k in chunk}
                while len(pending["seq"]) >= self.batch_size:
                    batch = {k: v[: self.batch_size] for k, v in pending.items()}
                    pending = {k: v[self.batch_size:] for k, v in pending.items()}
                    last = int(batch.pop("seq")[-1])
                    self.epoch, self.next = self._normalised(last // self.epoch_length, last % self.epoch_length + 1)
                    yield {k: torch.from_numpy(np.array(v)) for k, v in batch.items()}  # own, writable copies
            epoch, start = self._normalised(int(window.epoch[-1]), int(window.position[-1]) + 1)

"""Ray Data streaming of training examples from clip shards (ARCHITECTURE: Ray only at the edges).

    shards (checked against their manifests) -> ray.data.read_webdataset(decoder=None), one row per clip
    -> flat_map: own per-sample decode + example building (sa0.data.examples); a sample that fails
       to decode or breaks the contract yields nothing and is counted by the SkipCounter actor
    -> in Ray Train workers: get_dataset_shard(...).iter_torch_batches(...)

Sampling randomness comes from (seed, clip key, epoch, draw index): reproducible, different every
epoch, independent of which worker builds it. The epoch and the trainer step come from a
TrainingProgress actor: ExampleStream sets the epoch before each pass starts (so every task of
that pass reads it), and rank 0 reports the step, which only sets the phase-1 temperature (read
at most `refresh_s` late, plus the prefetch depth). Order is preserved, so ExampleStream's
position (epoch, batch) resumes a run exactly where it stopped: on resume it fast-forwards through
the already-trained batches of that epoch, logging how many, instead of replaying or skipping data.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sa0.data.examples import ExampleConfig, build_example
from sa0.data.sampling import temperature_at
from sa0.data.schema import ClipError
from sa0.data.shards import MANIFEST, ShardError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """shard_dirs: directories written by make_shards; examples_per_clip: draws per clip per pass;
    total_steps: training length (for the temperature anneal); seed."""

    shard_dirs: tuple[str, ...] = ()
    example: ExampleConfig = field(default_factory=ExampleConfig)
    examples_per_clip: int = 4
    total_steps: int = 200_000
    seed: int = 0

    def __post_init__(self):
        if self.examples_per_clip < 1:
            raise ValueError(f"DataConfig.examples_per_clip must be >= 1, got {self.examples_per_clip}")
        if self.total_steps < 1:
            raise ValueError(f"DataConfig.total_steps must be >= 1, got {self.total_steps}")


def shard_paths(shard_dirs) -> list[str]:
    """All shard files of the given directories, after checking each against its manifest.

    A missing manifest, a missing file or a size that differs from the manifest (truncation) is
    refused up front: Ray Data's reader would otherwise fail the whole dataset mid-run.
    """
    paths, problems = [], []
    for directory in map(Path, shard_dirs):
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            problems.append(f"{directory}: no {MANIFEST} (write shards with jobs/make_shards.py)")
            continue
        for shard in json.loads(manifest_path.read_text())["shards"]:
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


def _actor_classes():
    import ray

    @ray.remote(num_cpus=0)
    class SkipCounter:
        """Counts samples that could not be decoded, with their reasons (a data-health metric)."""

        def __init__(self):
            self.reasons: list[str] = []

        def add(self, reason: str) -> None:
            self.reasons.append(reason)

        def count(self) -> int:
            return len(self.reasons)

        def all(self) -> list[str]:
            return list(self.reasons)

    @ray.remote(num_cpus=0)
    class TrainingProgress:
        """The trainer's current step and the data epoch, shared with the example builders."""

        def __init__(self):
            self.step, self.epoch = 0, 0

        def set_step(self, step: int) -> None:
            self.step = int(step)

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def get(self) -> tuple[int, int]:
            return self.step, self.epoch

    return SkipCounter, TrainingProgress


def make_actors():
    """-> (SkipCounter handle, TrainingProgress handle); call after ray.init()."""
    skip_cls, progress_cls = _actor_classes()
    return skip_cls.remote(), progress_cls.remote()


class _ExampleFn:
    """flat_map body: one clip row -> examples_per_clip examples (or none, counted, if it is bad)."""

    def __init__(self, cfg: DataConfig, counter, progress, refresh_s: float = 1.0):
        self.cfg, self.counter, self.progress, self.refresh_s = cfg, counter, progress, refresh_s
        self._state, self._read_at = (0, 0), -1e9

    def _progress(self) -> tuple[int, int]:
        """(step, epoch), refreshed at most every refresh_s."""
        if self.progress is not None and time.monotonic() - self._read_at > self.refresh_s:
            import ray

            self._state, self._read_at = ray.get(self.progress.get.remote()), time.monotonic()
        return self._state

    def __call__(self, row: dict) -> list[dict]:
        sample = {k: v for k, v in row.items() if isinstance(v, (bytes, bytearray)) or k == "__key__"}
        key, source = str(row.get("__key__")), str(row.get("__url__", "<shard>"))
        step, epoch = self._progress()
        temperature = temperature_at(step, self.cfg.total_steps, self.cfg.example.sampler)
        examples = []
        for draw in range(self.cfg.examples_per_clip):
            rng = np.random.default_rng([self.cfg.seed, zlib.crc32(key.encode()), epoch, draw])
            try:
                examples.append(build_example(sample, source, rng, temperature, self.cfg.example))
            except (ShardError, ClipError, ValueError) as exc:
                log.warning("skipping sample '%s' of %s: %s", key, source, exc)
                if self.counter is not None:
                    self.counter.add.remote(f"{source} '{key}': {exc}")
                return []
        return examples


def example_dataset(cfg: DataConfig, counter=None, progress=None):
    """A ray.data.Dataset of examples (dicts of fixed-shape numpy arrays) from cfg.shard_dirs."""
    import ray

    paths = shard_paths(cfg.shard_dirs)
    raw = ray.data.read_webdataset(paths, decoder=None, include_paths=False)
    raw.context.execution_options.preserve_order = True
    return raw.flat_map(_ExampleFn(cfg, counter, progress))


class ExampleStream:
    """Batches epoch after epoch from a Ray Data iterator (a dataset shard in a Train worker, or a
    Dataset), with a resumable position: state_dict() = {"epoch", "batch"} (batches done in that
    epoch). Put it in checkpoints; a stream built with that position continues with the next batch.
    """

    def __init__(self, source, batch_size: int, progress=None, position: dict | None = None):
        self.source, self.batch_size, self.progress = source, batch_size, progress
        position = position or {}
        self.epoch, self.batch = int(position.get("epoch", 0)), int(position.get("batch", 0))

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def __iter__(self):
        while True:
            if self.progress is not None:
                import ray

                ray.get(self.progress.set_epoch.remote(self.epoch))
            skip = self.batch
            if skip:
                log.info("resuming data at epoch %d: fast-forwarding %d batches already trained on", self.epoch, skip)
            for index, batch in enumerate(self.source.iter_torch_batches(batch_size=self.batch_size, drop_last=True)):
                if index < skip:
                    continue
                self.batch = index + 1
                yield batch
            self.epoch, self.batch = self.epoch + 1, 0

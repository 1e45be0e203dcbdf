"""Which examples a training rank builds, in which order: a pure function of (manifests, seed, epoch).

An epoch is a list of example *descriptors* (clip, draw). It is decided before any data is read:
  1. shard order: a permutation of all shards drawn from (seed, epoch); clips in a shard stay in
     order (a reader moves forward through each shard);
  2. each clip contributes `examples_per_clip` descriptors (draw 0..n-1);
  3. a bounded local shuffle buffer of `shuffle_buffer` descriptors (from the same seed) mixes clips
     of neighbouring shards, so a batch does not hold four draws of one clip. A descriptor is a few
     integers, so a large buffer costs almost nothing (it never holds decoded frames);
  4. rank r of W takes descriptors r, r + W, ...; every rank gets the same count (the last
     n mod W of the epoch are left out), so all ranks cross epoch boundaries together.

Because the order does not depend on the data, a rank's position is one integer (the next
descriptor of its epoch): resuming slices the plan there and reads nothing before it. Each
descriptor also carries the sampler temperature for the step it will be trained at (its position
/ batch size; exact while no sample is skipped), so the same position always gives the same
examples. Example randomness is seeded by (seed, crc32(clip key), epoch, draw).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from sa0.data.reader import clip_records
from sa0.data.sampling import SamplerConfig, temperature_at


@dataclass(frozen=True)
class ClipTable:
    """Every clip of the shard directories, as arrays: shard (N,) index into `paths`; index and meta
    byte ranges (N, 2) each; crc (N,) of the clip key; timesteps, cameras (N,); clip ranges of
    each shard, shard_starts (S + 1,)."""

    paths: tuple[str, ...]
    shard: np.ndarray
    index: np.ndarray
    meta: np.ndarray
    crc: np.ndarray
    keys: tuple[str, ...]
    shard_starts: np.ndarray

    @classmethod
    def from_dirs(cls, shard_dirs) -> "ClipTable":
        from sa0.data.shards import ShardError

        rows = clip_records(shard_dirs)
        if not rows:
            raise ShardError(f"no clips in {list(map(str, shard_dirs))}")
        paths = tuple(dict.fromkeys(path for path, _ in rows))
        where = {p: i for i, p in enumerate(paths)}
        shard = np.array([where[p] for p, _ in rows], np.int32)
        return cls(paths=paths, shard=shard,
                   index=np.array([r["index"] for _, r in rows], np.int64),
                   meta=np.array([r["meta"] for _, r in rows], np.int64),
                   crc=np.array([zlib.crc32(r["key"].encode()) for _, r in rows], np.int64),
                   keys=tuple(r["key"] for _, r in rows),
                   shard_starts=np.searchsorted(shard, np.arange(len(paths) + 1)).astype(np.int64))

    def __len__(self) -> int:
        return len(self.shard)

    def record(self, clip: int) -> dict:
        """The manifest-style record ShardReader.index() takes."""
        return {"key": self.keys[clip], "index": self.index[clip].tolist(), "meta": self.meta[clip].tolist()}


@dataclass(frozen=True, kw_only=True)
class EpochPlan:
    """Descriptors in stream order: clip, draw, temperature, and where each sits: epoch and
    position within that epoch (all (n,)). One epoch of one rank, or a window of several."""

    clip: np.ndarray
    draw: np.ndarray
    temperature: np.ndarray
    epoch: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.clip)

    def __getitem__(self, sl: slice) -> "EpochPlan":
        return EpochPlan(**{k: getattr(self, k)[sl] for k in ("clip", "draw", "temperature", "epoch", "position")})

    @staticmethod
    def concat(plans: list["EpochPlan"]) -> "EpochPlan":
        return EpochPlan(**{k: np.concatenate([getattr(p, k) for p in plans])
                            for k in ("clip", "draw", "temperature", "epoch", "position")})


def buffered_shuffle(n: int, buffer: int, rng: np.random.Generator) -> np.ndarray:
    """The order a shuffle buffer of `buffer` slots emits items 0..n-1 in: fill the buffer, then each
    arriving item replaces (and emits) a random slot; at the end the rest leave in random order."""
    if buffer <= 1 or n <= 1:
        return np.arange(n)
    buffer = min(buffer, n)
    slots = np.arange(buffer)
    picks = rng.integers(0, buffer, size=n - buffer)
    out = np.empty(n, np.int64)
    for i, j in enumerate(picks):
        out[i] = slots[j]
        slots[j] = buffer + i
    out[n - buffer:] = rng.permutation(slots)
    return out


def epoch_order(table: ClipTable, epoch: int, seed: int, examples_per_clip: int, shuffle_buffer: int,
                shuffle_shards: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """All descriptors of an epoch in order (before the rank split): (clip (n,), draw (n,))."""
    rng = np.random.default_rng([seed, epoch, 0x5A0])
    num_shards = len(table.paths)
    order = rng.permutation(num_shards) if shuffle_shards else np.arange(num_shards)
    starts = table.shard_starts
    clips = np.concatenate([np.arange(starts[s], starts[s + 1]) for s in order])
    clip = np.repeat(clips, examples_per_clip)
    draw = np.tile(np.arange(examples_per_clip), len(clips))
    perm = buffered_shuffle(len(clip), shuffle_buffer, rng)
    return clip[perm], draw[perm]


def rank_plan(table: ClipTable, epoch: int, *, seed: int, examples_per_clip: int, shuffle_buffer: int,
              rank: int, world: int, batch_size: int, total_steps: int, sampler: SamplerConfig,
              shuffle_shards: bool = True) -> EpochPlan:
    """Rank `rank` of `world`'s descriptors for `epoch` (equal counts on every rank)."""
    clip, draw = epoch_order(table, epoch, seed, examples_per_clip, shuffle_buffer, shuffle_shards)
    per_rank = len(clip) // world
    if per_rank == 0:
        from sa0.data.shards import ShardError

        raise ShardError(f"{len(table)} clips x {examples_per_clip} examples per clip = {len(clip)} examples per "
                         f"epoch, fewer than the {world} ranks reading them")
    mine = slice(rank, rank + per_rank * world, world)
    consumed = epoch * per_rank + np.arange(per_rank)  # examples this rank was planned to take before each
    temperature = temperature_at(consumed // batch_size, total_steps, sampler).astype(np.float32)
    return EpochPlan(clip=clip[mine], draw=draw[mine].astype(np.int64), temperature=temperature,
                     epoch=np.full(per_rank, epoch, np.int64), position=np.arange(per_rank, dtype=np.int64))

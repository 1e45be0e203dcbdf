"""Planned epochs without Ray: shuffling reproducible from (seed, epoch), rank splits, exact resume
that reads nothing before its position, per-example bytes independent of clip length and camera
count, and the samplers' statistics unchanged when fed from the shard index."""

from itertools import islice

import numpy as np
import pytest

from sa0.data.examples import ExampleConfig, choose_frames
from sa0.data.pipeline import DataConfig, ExampleStream
from sa0.data.plan import ClipTable, buffered_shuffle, epoch_order, rank_plan
from sa0.data.sampling import SamplerConfig, view_directions
from sa0.data.shards import write_shards
from tests.data.clips import indexed, tiny_clip


def _dataset(tmp_path, num_clips=12, timesteps=3, cameras=1, size=12, shard_bytes=1 << 12):
    clips = [tiny_clip(timesteps=timesteps, cameras=cameras, height=size, width=size, subject=f"s{i:03d}", seed=i)
             for i in range(num_clips)]
    write_shards(clips, tmp_path, max_shard_bytes=shard_bytes)
    return tmp_path


def _cfg(directory, **kw):
    example = ExampleConfig(phase=kw.pop("phase", 1), image_size=8, sampler=SamplerConfig(max_sources=2))
    return DataConfig(shard_dirs=(str(directory),), example=example, **{
        "examples_per_clip": 2, "shuffle_buffer": 8, "total_steps": 100, "descriptors_per_dataset": 7, **kw})


def test_buffered_shuffle_is_a_bounded_permutation():
    rng = np.random.default_rng(0)
    order = buffered_shuffle(500, 16, rng)
    assert sorted(order) == list(range(500)) and list(order) != list(range(500))
    position = np.empty(500, int)
    position[order] = np.arange(500)
    assert (position >= np.arange(500) - 16).all()  # an item never leaves before it has arrived
    assert list(buffered_shuffle(50, 1, rng)) == list(range(50))


def test_epochs_visit_clips_in_different_orders_reproducibly(tmp_path):
    table = ClipTable.from_dirs([_dataset(tmp_path)])
    assert len(table.paths) > 3  # several shards, so the shard order itself is shuffled
    orders = {e: epoch_order(table, e, seed=0, examples_per_clip=2, shuffle_buffer=8) for e in (0, 1)}
    again = epoch_order(table, 1, seed=0, examples_per_clip=2, shuffle_buffer=8)
    np.testing.assert_array_equal(orders[1][0], again[0])
    np.testing.assert_array_equal(orders[1][1], again[1])
    assert list(orders[0][0]) != list(orders[1][0])
    for clip, draw in orders.values():  # every (clip, draw) exactly once per epoch
        assert sorted(zip(clip.tolist(), draw.tolist())) == [(c, d) for c in range(len(table)) for d in (0, 1)]
    other_seed = epoch_order(table, 1, seed=1, examples_per_clip=2, shuffle_buffer=8)[0]
    assert list(other_seed) != list(orders[1][0])


def test_ranks_get_disjoint_equal_shares(tmp_path):
    table = ClipTable.from_dirs([_dataset(tmp_path, num_clips=11)])
    kw = dict(seed=3, examples_per_clip=2, shuffle_buffer=8, world=3, batch_size=2, total_steps=100,
              sampler=SamplerConfig())
    plans = [rank_plan(table, 0, rank=r, **kw) for r in range(3)]
    assert {len(p) for p in plans} == {22 // 3}
    pairs = [set(zip(p.clip.tolist(), p.draw.tolist())) for p in plans]
    assert not (pairs[0] & pairs[1]) and not (pairs[1] & pairs[2]) and not (pairs[0] & pairs[2])


def _fingerprints(batches):
    return [b["tgt_image"].numpy().tobytes() + b["src_mask"].numpy().tobytes() for b in batches]


def test_resume_yields_the_uninterrupted_batches_without_building_the_skipped_ones(tmp_path):
    cfg = _cfg(_dataset(tmp_path, num_clips=5))  # 10 examples per epoch -> 5 batches of 2
    full = _fingerprints(islice(ExampleStream(cfg, 2, runner="local"), 12))
    first = ExampleStream(cfg, 2, runner="local")
    head = _fingerprints(islice(first, 7))  # into epoch 1
    position = first.state_dict()
    assert position == {"epoch": 1, "next": 4}
    resumed = ExampleStream(cfg, 2, runner="local", position=position)
    tail = _fingerprints(islice(resumed, 5))
    assert head + tail == full
    assert full[:5] != full[5:10]  # a new epoch draws new examples in a new order
    assert resumed.local_builder.built[0] == 0 and resumed.local_builder.built[1] == 10 - 4  # nothing before it


def test_resume_on_other_ranks_and_after_skipped_samples(tmp_path):
    from tests.data.clips import corrupt_member

    directory = _dataset(tmp_path, num_clips=7)
    corrupt_member(directory, "s003", "f00001_c00.png")
    for rank in (0, 1):
        cfg = _cfg(directory)
        full = _fingerprints(islice(ExampleStream(cfg, 2, rank=rank, world=2, runner="local"), 9))
        first = ExampleStream(cfg, 2, rank=rank, world=2, runner="local")
        head = _fingerprints(islice(first, 4))
        tail = _fingerprints(islice(ExampleStream(cfg, 2, rank=rank, world=2, runner="local",
                                                  position=first.state_dict()), 5))
        assert head + tail == full


@pytest.mark.parametrize("timesteps, cameras", [(120, 1), (30, 8)])
def test_bytes_per_example_do_not_grow_with_clip_length_or_cameras(tmp_path, timesteps, cameras):
    """Bytes read per example, over the bytes of the frames the example uses, for a short clip and
    a long (or many-camera) one: a whole-clip read would cost T x C / (K + 1) times more."""
    ratios = {}
    for name, (t, c) in {"short": (6, 1), "long": (timesteps, cameras)}.items():
        directory = _dataset(tmp_path / name, num_clips=3, timesteps=t, cameras=c, size=48, shard_bytes=256 << 20)
        cfg = _cfg(directory, phase=1 if c == 1 else 2, examples_per_clip=4)
        stream = ExampleStream(cfg, 1, runner="local")
        list(islice(stream, 12))
        builder = stream.local_builder
        builder.reader.bytes_read = 0  # what the 12 examples cost, without what was built ahead of them
        builder._indices.clear()
        list(builder.build(stream.plan(0), range(12)))
        plan = stream.plan(0)
        used = 0
        for i in range(12):
            index = builder._index(int(plan.clip[i]))
            sources, target = choose_frames(index, builder.rng(plan, i), float(plan.temperature[i]), cfg.example)
            used += sum(int(index.offsets[f][:, 1].sum()) for f in dict.fromkeys(sources + [target]))
        ratios[name] = builder.reader.bytes_read / used
    assert ratios["short"] < 1.5 and ratios["long"] < 1.5, ratios
    assert ratios["long"] < 1.3 * ratios["short"], ratios


def test_phase1_source_choice_from_the_index_follows_the_softmax(tmp_path):
    clip = tiny_clip(timesteps=5, cameras=1)
    _, index = indexed([clip], tmp_path)
    index = index[clip.meta.key]
    cfg = ExampleConfig(phase=1, sampler=SamplerConfig(max_sources=2))
    temperature = 0.7
    counts = np.zeros((5, 5))
    for seed in range(6000):
        sources, target = choose_frames(index, np.random.default_rng(seed), temperature, cfg)
        counts[target[0], sources[0][0]] += 1
    d = view_directions(clip.viewmats, clip.flame.global_rot)[:, 0]
    for target in range(5):  # the softmax, computed here from the clip itself
        others = [t for t in range(5) if t != target]
        expr = np.linalg.norm(clip.flame.expression[others] - clip.flame.expression[target], axis=-1)
        logits = ((1 - d[others] @ d[target] / np.linalg.norm(d[others], axis=-1) / np.linalg.norm(d[target]))
                  + expr / expr.mean()) / temperature
        p = np.exp(logits - logits.max())
        observed = counts[target, others] / counts[target].sum()
        np.testing.assert_allclose(observed, p / p.sum(), atol=0.04)


def test_phase2_mix_from_the_index_is_75_25(tmp_path):
    clip = tiny_clip(timesteps=6, cameras=8)
    _, index = indexed([clip], tmp_path)
    cfg = ExampleConfig(phase=2, sampler=SamplerConfig(max_sources=3))
    same_time = sum(len({t for t, _ in s + [tgt]}) == 1 for s, tgt in
                    (choose_frames(index[clip.meta.key], np.random.default_rng(i), 1.0, cfg) for i in range(4000)))
    assert 0.73 < same_time / 4000 < 0.77


def test_batches_do_not_depend_on_how_many_epochs_one_dataset_covers(tmp_path):
    directory = _dataset(tmp_path, num_clips=5)
    streams = [ExampleStream(_cfg(directory, descriptors_per_dataset=n), 3, runner="local") for n in (1, 7, 100)]
    first, *others = [_fingerprints(islice(s, 11)) for s in streams]  # 10 per epoch, batches of 3 span epochs
    assert all(o == first for o in others)
    assert len({s.state_dict()["epoch"] for s in streams}) == 1


def test_a_stream_builds_nothing_past_the_last_training_step(tmp_path):
    cfg = _cfg(_dataset(tmp_path, num_clips=5), total_steps=3, descriptors_per_dataset=4096, descriptors_per_task=1)
    stream = ExampleStream(cfg, 2, runner="local")
    assert len(list(islice(stream, 3))) == 3
    assert sum(stream.local_builder.built.values()) <= 3 * 2 + 2  # the steps' examples and one batch of slack

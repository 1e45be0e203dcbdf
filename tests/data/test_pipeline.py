"""Ray Data streaming of examples: bad samples skipped and counted, shards checked up front,
and a 2-worker Ray Train loop consuming K-source batches."""

import json
from pathlib import Path

import pytest

from sa0.data.examples import ExampleConfig
from sa0.data.pipeline import DataConfig, example_dataset, make_actors, shard_paths
from sa0.data.sampling import SamplerConfig
from sa0.data.shards import ShardError, write_shards
from tests.data.clips import corrupt_member, tiny_clip
from tests.ray_local import local_ray

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    with local_ray(num_cpus=4, env_vars={"PYTHONPATH": str(Path.cwd())}) as ray:
        yield ray


def _shards(tmp_path, num_clips=6, timesteps=2, corrupt=None):
    clips = [tiny_clip(timesteps=timesteps, cameras=1, height=12, width=12, subject=f"s{i:02d}", seed=i)
             for i in range(num_clips)]
    write_shards(clips, tmp_path, max_shard_bytes=1 << 12)
    if corrupt is not None:  # replace one image of one clip by garbage, keeping the manifest in step
        corrupt_member(tmp_path, corrupt, "f00001_c00.png")
    return tmp_path


def _config(tmp_path, **kw):
    example = ExampleConfig(phase=1, image_size=8, sampler=SamplerConfig(max_sources=1))
    return DataConfig(shard_dirs=(str(tmp_path),), example=example, examples_per_clip=2, total_steps=100, **kw)


def test_undecodable_image_skips_exactly_that_sample(ray_session, tmp_path):
    _shards(tmp_path, corrupt="tiny__s03__c0")
    counter, progress = make_actors()
    ds = example_dataset(_config(tmp_path), counter, progress)
    rows = ds.take_all()
    assert len(rows) == 5 * 2  # every other clip's two examples arrive
    assert ray_session.get(counter.count.remote()) == 1
    (reason,) = ray_session.get(counter.all.remote())
    assert "tiny__s03__c0" in reason and "f00001_c00.png" in reason
    assert rows[0]["src_images"].shape == (1, 8, 8, 3)


def test_truncated_shard_is_refused_before_streaming(tmp_path):
    _shards(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    path = tmp_path / manifest["shards"][1]["file"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ShardError, match=r"shard-000001.tar: 100 bytes, manifest says"):
        shard_paths([tmp_path])


def _train_loop(config):
    import ray.train

    shard = ray.train.get_dataset_shard("train")
    count, k_seen = 0, set()
    for batch in shard.iter_torch_batches(batch_size=2, drop_last=False):
        assert batch["src_images"].shape[1:] == (2, 8, 8, 3)
        count += batch["tgt_image"].shape[0]
        k_seen.update(batch["src_mask"].sum(1).tolist())
    ctx = ray.train.get_context()
    out = Path(config["out"]) / f"rank{ctx.get_world_rank()}.json"
    out.write_text(json.dumps({"examples": count, "k": sorted(k_seen)}))
    ray.train.report({"examples": count})


@pytest.mark.slow
def test_two_worker_train_loop_receives_k_source_examples(ray_session, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    shards = _shards(tmp_path / "shards", num_clips=8, timesteps=4)
    cfg = DataConfig(shard_dirs=(str(shards),), example=ExampleConfig(image_size=8, sampler=SamplerConfig(max_sources=2)),
                     examples_per_clip=3, total_steps=100)
    out = tmp_path / "out"
    out.mkdir()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"out": str(out)},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="sa0-data-test", storage_path=str(tmp_path / "runs")),
        datasets={"train": example_dataset(cfg)},
    )
    trainer.fit()
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    assert len(reports) == 2
    assert sum(r["examples"] for r in reports) == 8 * 3  # every example delivered exactly once
    assert all(r["examples"] > 0 for r in reports)
    assert set().union(*(r["k"] for r in reports)) <= {1, 2}


def test_stream_resumes_without_replaying_or_skipping(ray_session, tmp_path):
    from itertools import islice

    from sa0.data.pipeline import ExampleStream

    _shards(tmp_path, num_clips=5, timesteps=3)
    cfg = DataConfig(shard_dirs=(str(tmp_path),), example=ExampleConfig(image_size=8, sampler=SamplerConfig(max_sources=2)),
                     examples_per_clip=2, total_steps=100)

    def fingerprints(batches):
        return [bytes(b["tgt_image"].numpy().tobytes()) + bytes(b["src_mask"].numpy().tobytes()) for b in batches]

    _, progress = make_actors()
    full = fingerprints(islice(ExampleStream(example_dataset(cfg, progress=progress), 2, progress), 8))
    _, progress = make_actors()
    first = ExampleStream(example_dataset(cfg, progress=progress), 2, progress)
    head_part = fingerprints(islice(first, 3))
    position = first.state_dict()
    assert position == {"epoch": 0, "batch": 3}
    _, progress = make_actors()
    resumed = ExampleStream(example_dataset(cfg, progress=progress), 2, progress, position=position)
    tail_part = fingerprints(islice(resumed, 5))
    assert head_part + tail_part == full  # 10 examples per epoch -> 5 batches; crosses into epoch 1
    assert full[:5] != full[5:]  # a new epoch draws new examples

"""Ray Data streaming of planned examples: the Ray runner yields exactly what the local twin
yields (across epochs, from a resumed position, with a bad sample skipped and counted), shards are
checked up front, and two Ray Train workers each stream their own disjoint share."""

import json
from itertools import islice
from pathlib import Path

import pytest

from sa0.data.examples import ExampleConfig
from sa0.data.pipeline import DataConfig, ExampleStream, make_skip_counter, shard_paths
from sa0.data.sampling import SamplerConfig
from sa0.data.shards import ShardError, write_shards
from tests.data.clips import corrupt_member, tiny_clip
from tests.ray_local import local_ray


@pytest.fixture(scope="module")
def ray_session():
    with local_ray(num_cpus=4, env_vars={"PYTHONPATH": str(Path.cwd())}) as ray:
        yield ray


def _shards(tmp_path, num_clips=6, timesteps=3, corrupt=None):
    clips = [tiny_clip(timesteps=timesteps, cameras=1, height=12, width=12, subject=f"s{i:02d}", seed=i)
             for i in range(num_clips)]
    write_shards(clips, tmp_path, max_shard_bytes=1 << 12)
    if corrupt is not None:
        corrupt_member(tmp_path, corrupt, "f00001_c00.png")
    return tmp_path


def _config(tmp_path, **kw):
    example = ExampleConfig(phase=1, image_size=8, sampler=SamplerConfig(max_sources=2))
    return DataConfig(shard_dirs=(str(tmp_path),), example=example, examples_per_clip=2, total_steps=100,
                      shuffle_buffer=6, descriptors_per_task=3, descriptors_per_dataset=20, **kw)


def _fingerprints(batches):
    return [b["tgt_image"].numpy().tobytes() + b["src_mask"].numpy().tobytes() + b["src_images"].numpy().tobytes()
            for b in batches]


@pytest.mark.ray
def test_ray_runner_equals_the_local_twin_and_counts_a_bad_sample(ray_session, tmp_path):
    cfg = _config(_shards(tmp_path, corrupt="s03"))  # 6 clips x 2 draws, 2 of them unbuildable
    local = ExampleStream(cfg, 2, runner="local")
    expected = _fingerprints(islice(local, 8))  # 5 batches per epoch: crosses into epoch 1
    counter = make_skip_counter()
    ray_stream = ExampleStream(cfg, 2, runner="ray", counter=counter)
    assert _fingerprints(islice(ray_stream, 8)) == expected
    assert ray_stream.state_dict() == local.state_dict()
    reasons = ray_session.get(counter.all.remote())
    assert len(reasons) >= 2 and all("s03" in r and "f00001_c00.png" in r for r in reasons)
    resumed = ExampleStream(cfg, 2, runner="ray", position={"epoch": 0, "next": 6})
    local_resumed = ExampleStream(cfg, 2, runner="local", position={"epoch": 0, "next": 6})
    assert _fingerprints(islice(resumed, 4)) == _fingerprints(islice(local_resumed, 4))


def test_truncated_or_old_shards_are_refused_before_streaming(tmp_path):
    _shards(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    path = tmp_path / manifest["shards"][1]["file"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ShardError, match=r"shard-000001.tar: 100 bytes, manifest says"):
        shard_paths([tmp_path])
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "schema_version": 1}))
    with pytest.raises(ShardError, match="make_shards.py upgrade"):
        shard_paths([tmp_path])


def _train_loop(config):
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    stream = ExampleStream(config["cfg"], 2, rank=rank, world=world)
    seen, k_seen = [], set()
    for batch in islice(stream, config["batches"]):
        assert batch["src_images"].shape[1:] == (2, 8, 8, 3)
        seen.extend(batch["tgt_image"].numpy().reshape(2, -1).sum(1).tolist())
        k_seen.update(batch["src_mask"].sum(1).tolist())
    out = Path(config["out"]) / f"rank{rank}.json"
    out.write_text(json.dumps({"targets": seen, "k": sorted(k_seen), "position": stream.state_dict()}))
    ray.train.report({"examples": len(seen)})


@pytest.mark.ray
@pytest.mark.slow
def test_two_train_workers_stream_disjoint_equal_shares(ray_session, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    shards = _shards(tmp_path / "shards", num_clips=8, timesteps=4)
    cfg = DataConfig(shard_dirs=(str(shards),), example=ExampleConfig(image_size=8, sampler=SamplerConfig(max_sources=2)),
                     examples_per_clip=3, total_steps=100)
    out = tmp_path / "out"
    out.mkdir()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"out": str(out), "cfg": cfg, "batches": 6},  # 8 x 3 / 2 ranks = 12 = 6 batches of 2
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(name="sa0-data-test", storage_path=str(tmp_path / "runs")),
    )
    trainer.fit()
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]
    assert [len(r["targets"]) for r in reports] == [12, 12]
    assert [r["position"] for r in reports] == [{"epoch": 1, "next": 0}] * 2
    expected = [ExampleStream(cfg, 2, rank=r, world=2, runner="local") for r in (0, 1)]
    for report, local in zip(reports, expected):  # each rank got exactly its planned share
        twin = [v for b in islice(local, 6) for v in b["tgt_image"].numpy().reshape(2, -1).sum(1).tolist()]
        assert report["targets"] == twin
    assert set().union(*(r["k"] for r in reports)) <= {1, 2}

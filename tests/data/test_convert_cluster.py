"""Conversion on a simulated 2-node Ray cluster gives the same manifest (and shard bytes) as a
local one."""

import json

import pytest

from sa0.data.convert.run import ConvertConfig, convert_dataset
from sa0.data.shards import MANIFEST
from tests.data.test_convert_job import _sources

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_two_node_cluster_conversion_equals_the_local_one(tmp_path, monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    sources = _sources(tmp_path / "src", names=("subjA", "subjB", "subjC", "subjD"))
    cfg = lambda out: ConvertConfig(format="vhap", sources=tuple(sources), out=str(tmp_path / out))  # noqa: E731
    local = convert_dataset(cfg("local"), progress=False)  # starts and stops its own local Ray
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")}
        assert len(nodes) == 2
        remote = convert_dataset(cfg("cluster"), progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert remote["clips"] == local["clips"] == 4 and remote["problems"] == local["problems"]
    ours, theirs = ((tmp_path / d / MANIFEST).read_text() for d in ("local", "cluster"))
    assert json.loads(ours) == json.loads(theirs)
    for shard in json.loads(ours)["shards"]:
        assert (tmp_path / "local" / shard["file"]).read_bytes() == (tmp_path / "cluster" / shard["file"]).read_bytes()

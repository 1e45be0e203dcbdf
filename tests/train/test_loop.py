"""Distributed generator training: 2 CPU workers, DeepSpeed ZeRO-2, checkpoint with data position
(RANDOMLY INITIALISED encoder; structure, not quality)."""

import json
import os
from pathlib import Path

import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.examples import ExampleConfig
from sa0.data.pipeline import DataConfig
from sa0.data.sampling import SamplerConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model
from sa0.model import ModelConfig
from sa0.train.loop import LOOP_STATE, RunSpec, TrainConfig, fit_generator
from sa0.train.step import LossConfig

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    ray = pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")),
             runtime_env={"env_vars": {"DS_ACCELERATOR": "cpu"}})
    try:
        yield ray
    finally:
        ray.shutdown()


def test_random_init_encoder_two_workers_zero2_train_and_checkpoint(ray_session, tmp_path, synthetic_dir):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=16))
    write_shards(synthetic_clips(head, "mono", 3, 1, 6, 1, 64, DOMAINS["studio"], seed=3), tmp_path / "shards")
    spec = RunSpec(
        train=TrainConfig(steps=12, batch_size=2, lr=2e-3, checkpoint_every=6, log_every=3, num_workers=2,
                          run_name="zero2", storage_path=str(tmp_path / "runs"),
                          mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        model=ModelConfig(unet_channels=(8, 16), dpt_channels=8, out_channels=8, residual_hidden=8),
        loss=LossConfig(jacobian=0.0),
        flame=FlameConfig(model_dir=str(synthetic_dir)),
        layout=LayoutConfig(uv_resolution=16),
        data=DataConfig(shard_dirs=(str(tmp_path / "shards"),),
                        example=ExampleConfig(image_size=64, sampler=SamplerConfig(max_sources=2)),
                        examples_per_clip=20, total_steps=12),
    )
    result = fit_generator(spec)
    assert result.error is None
    assert result.metrics["step"] == 12
    with result.checkpoint.as_directory() as directory:
        state = json.loads((Path(directory) / LOOP_STATE.format(rank=0)).read_text())
        assert (Path(directory) / LOOP_STATE.format(rank=1)).is_file()  # each rank keeps its own position
        files = [p.name for p in Path(directory).rglob("*") if p.is_file()]
    assert state["step"] == 12 and state["data"]["batch"] > 0 and state["mlflow_run_id"]
    assert sum("zero_pp_rank_0" in f for f in files) and sum("zero_pp_rank_1" in f for f in files)  # both ZeRO shards

    # The same run name again (as after a killed driver), with a longer target: it resumes at step 12.
    longer = RunSpec(**{**spec.__dict__, "train": TrainConfig(**{**spec.train.__dict__, "steps": 15})})
    resumed = fit_generator(longer)
    assert resumed.error is None and resumed.metrics["step"] == 15
    steps_seen = resumed.metrics_dataframe["step"].tolist()  # the run's history across both drivers
    assert steps_seen == sorted(set(steps_seen)) and steps_seen[-1] == 15, steps_seen  # no step repeated

    # MLflow: one run for the job, continued by the resumed driver, each logged step once.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=spec.train.mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("sa0-generator").experiment_id])
    assert len(runs) == 1
    history = [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")]
    assert history == sorted(set(history)) and history[-1] == 15 and 3 in history, history
    assert runs[0].data.params["train.zero_stage"] == "2"

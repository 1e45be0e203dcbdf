"""Recipes resolve to valid jobs, and bad configurations fail with a clear error before any Ray work."""

import importlib.util
from pathlib import Path

import pytest

from sa0.config import apply_overrides
from sa0.train.recipes import RECIPES, TrainConfig, check_resources, recipe, validate_job

JOB = Path(__file__).resolve().parents[2] / "jobs" / "train_generator.py"


def _job_main():
    spec = importlib.util.spec_from_file_location("train_generator_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_is_valid_and_follows_method_section_3(name):
    job = recipe(name)
    validate_job(job)
    assert job.phase1.optim.optimizer == "adam" and job.phase1.optim.schedule == "constant_then_linear"
    assert job.phase2.optim.optimizer == "adamw" and job.phase2.optim.schedule == "cosine"
    assert job.phase2.optim.layer_decay == 0.65 and job.phase2.loss.l2_sp == 1e-3 and job.phase2.bf16
    assert job.phase2.data.example.sampler.cross_camera_prob == 0.75 and job.train.grad_clip == 5.0
    if name == "proof":  # the CPU proof: a CNN encoder trained from scratch, the visibility pool
        assert job.model.encoder == "cnn" and not job.model.freeze_encoder and job.model.pool == "visible"
    elif name != "demo":
        assert job.phase1.steps == 200_000 and job.phase1.optim.lr == 2.5e-4
        assert job.phase1.batch_size * job.train.num_workers == 48 and job.phase2.batch_size * job.train.num_workers == 12


def test_optional_phase_can_be_switched_off():
    job = apply_overrides(recipe("demo"), ["phase2=none", "phase1.steps=3"])
    assert job.phase2 is None and [n for n, _ in job.phases()] == [1]


@pytest.mark.parametrize("overrides, message", [
    (["phase1.loss.nope=1"], "unknown key 'phase1.loss.nope'"),
    (["phase1.loss.box=-1"], "LossConfig.box must be >= 0, got -1.0"),
    (["phase2.data.example.sampler.max_sources=5"], r"max_sources \(K\) must be in 1..4"),
    (["model.max_sources=0"], r"ModelConfig.max_sources \(K\) must be in 1..4"),
    (["phase1.loss.phase=2"], "phase1.loss.phase and phase1.data.example.phase must be 1"),
    (["train.zero_stage=3"], "train.zero_stage must be 0, 1 or 2"),
])
def test_bad_config_is_refused_with_the_field_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        validate_job(apply_overrides(recipe("demo"), overrides))


def test_more_workers_than_resources_is_refused():
    with pytest.raises(ValueError, match=r"train.num_workers=8 x train.cpus_per_worker=1 = 8 CPUs, but here has 2"):
        check_resources(TrainConfig(num_workers=8, cpus_per_worker=1.0), 2, 0, "here")
    with pytest.raises(ValueError, match="8 GPU workers, but here has 4 GPU"):
        check_resources(TrainConfig(num_workers=8, use_gpu="true"), 64, 4, "here")
    with pytest.raises(ValueError, match="leaves none for Ray Data"):
        check_resources(TrainConfig(num_workers=2, cpus_per_worker=1.0), 2, 0, "here")
    check_resources(TrainConfig(num_workers=2, cpus_per_worker=0.5), 2, 0, "here")
    check_resources(TrainConfig(num_workers=64, check_resources=False), 2, 0, "here")


@pytest.mark.parametrize("args, message", [
    (["--set", "phase1.loss.l1=-0.5"], "LossConfig.l1 must be >= 0"),
    (["--set", "phase1.data.example.sampler.max_sources=7"], "max_sources"),
    (["--set", "bogus=1"], "unknown key 'bogus'"),
    (["--set", "train.num_workers=64"], "train.num_workers=64"),
])
def test_job_cli_rejects_bad_config_before_starting_ray(args, message, capsys, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _job_main()(["--cache-dir", str(tmp_path / "cache"), "--storage", str(tmp_path / "runs"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not ray.is_initialized() and not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


def test_job_cli_prints_the_resolved_config(capsys, tmp_path):
    import json

    with pytest.raises(SystemExit) as exit_info:
        _job_main()(["--print-config", "--run-name", "x", "--storage", str(tmp_path), "--set", "phase1.steps=7"])
    assert exit_info.value.code == 0
    config = json.loads(capsys.readouterr().out)
    assert config["phase1"]["steps"] == 7 and config["train"]["run_name"] == "x"
    assert config["phase1"]["data"]["total_steps"] == 7, "the phase's data stream must follow its steps"
    assert config["train"]["storage_path"] == str(tmp_path) and config["train"]["mlflow_uri"].startswith("sqlite:///")

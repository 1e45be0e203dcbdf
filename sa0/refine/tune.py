"""Ray Tune sweep over the anti-spike weights (METHOD §4), on a few validation subjects.

Searched: aspect-penalty weight, its log-aspect budget tau, the scale-freeze length (as a fraction
of the run) and the per-Gaussian log-scale spread bound. Each trial refines every validation
subject in turn, reporting after each logged step `score` = -loss - penalty * [maxAR > bound]
(ASHA stops trials whose maxAR runs away early), and at the end `score` = mean held-out PSNR -
penalty * [final maxAR > bound]. Trials are logged to MLflow. The experiment lives under
storage_path/name; running again with the same name restores it (Tuner.restore) and finishes
what was left.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sa0.config import FlameConfig, LayoutConfig
from sa0.refine.batched import refine_subject
from sa0.refine.refine import RefineConfig
from sa0.refine.subjects import load_subject_clips, train_test

TUNED = ("aspect_weight", "aspect_tau", "freeze_fraction", "log_scale_spread")


def search_space():
    from ray import tune

    return {
        "aspect_weight": tune.loguniform(0.05, 2.0),
        "aspect_tau": tune.uniform(math.log(2.0), math.log(8.0)),
        "freeze_fraction": tune.choice([0.0, 0.025, 0.05, 0.1]),
        "log_scale_spread": tune.uniform(math.log(4.0), math.log(16.0)),
    }


def apply(base: RefineConfig, config: dict) -> RefineConfig:
    """A RefineConfig with a trial's values (freeze_fraction -> scale_freeze_steps)."""
    return dataclasses.replace(
        base, aspect_weight=float(config["aspect_weight"]), aspect_tau=float(config["aspect_tau"]),
        scale_freeze_steps=int(round(config["freeze_fraction"] * base.steps)),
        log_scale_spread=float(config["log_scale_spread"]))


def overrides(base: RefineConfig, config: dict) -> str:
    """The trial's configuration as refine_batch.py --set arguments."""
    cfg = apply(base, config)
    return " ".join(f"--set refine.{k}={getattr(cfg, k)}" for k in ("aspect_weight", "aspect_tau", "scale_freeze_steps",
                                                              "log_scale_spread"))


def _trial(config, data, flame, layout, base, max_ar_bound, penalty):
    from ray import tune

    from sa0.head import load_head_model

    head = load_head_model(flame, layout)
    cfg = apply(base, config)
    psnrs, max_ars = [], []
    for train, test in data:
        def report(record):
            over = record["max_ar"] > max_ar_bound
            tune.report({"score": -record["loss"] - penalty * over, "loss": record["loss"], "max_ar": record["max_ar"]})

        result = refine_subject(head, train, cfg, test=test, on_log=report)
        psnrs.append(result.metrics["final"]["psnr"])
        max_ars.append(result.metrics["max_ar"])
    worst = max(max_ars)
    tune.report({"score": float(np.mean(psnrs)) - penalty * (worst > max_ar_bound), "psnr": float(np.mean(psnrs)),
                 "max_ar": worst, "final": 1})


def tune_antispike(subjects: list[str], shard_dirs, flame: FlameConfig, layout: LayoutConfig, base: RefineConfig,
                   storage_path: str, name: str = "antispike", num_samples: int = 8, max_ar_bound: float = 10.0,
                   penalty: float = 100.0, mlflow_uri: str | None = None, seed: int = 0):
    """Run (or resume) the sweep; returns (best config dict, best metrics dict, ResultGrid)."""
    import os

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    data = [train_test(load_subject_clips(s, shard_dirs)) for s in subjects]
    trainable = tune.with_parameters(_trial, data=data, flame=flame, layout=layout, base=base,
                                     max_ar_bound=max_ar_bound, penalty=penalty)
    trainable = tune.with_resources(trainable, {"cpu": 1})
    path = os.path.join(os.path.abspath(storage_path), name)
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        callbacks = []
        if mlflow_uri:
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            callbacks.append(MLflowLoggerCallback(tracking_uri=mlflow_uri, experiment_name=f"sa0-tune-{name}",
                                                  save_artifact=False))
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(),
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=num_samples,
                                        scheduler=ASHAScheduler(grace_period=2, reduction_factor=2),
                                        search_alg=None, max_concurrent_trials=None),
            run_config=tune.RunConfig(name=name, storage_path=os.path.abspath(storage_path), callbacks=callbacks),
        )
    results = tuner.fit()
    best = results.get_best_result(metric="score", mode="max", scope="last")
    return best.config, best.metrics, results

"""Generator training on CPU: DeepSpeed ZeRO-0 vs ZeRO-2 at 2 workers, side by side.

    python benchmarks/bm_train_step.py [--json] [--steps 40] [--rounds 2]

Runs the real phase-1 loop (sa0.train.on_ray.fit_phase: TorchTrainer, DeepSpeed inside each worker,
Ray Data streaming synthetic mono shards) with the tiny demo model (RANDOMLY INITIALISED encoder)
for both ZeRO stages, alternating stages over `rounds` so machine noise hits both alike. Rank 0's
logged intervals (read back from MLflow) give per stage: samples/s (median over the intervals, the
first interval of each run dropped as warm-up), the share of step time spent waiting for data, and per-rank optimiser-state MiB (Adam's
moments; plus ZeRO's fp32 master partition, listed separately). Targets: ZeRO-2 optimiser state
<= 0.55x ZeRO-0 per rank, ZeRO-2 step time <= 1.2x ZeRO-0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from sa0.config import FlameConfig, LayoutConfig, apply_overrides
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.experiments import Tracker
from sa0.flame.synthetic import write_synthetic_flame
from sa0.head import load_head_model
from sa0.train.on_ray import fit_phase
from sa0.train.loop import PhaseRun
from sa0.train.recipes import recipe


def _job(tmp: Path, flame_dir: str, shards: Path, stage: int, steps: int, name: str):
    return apply_overrides(recipe("demo"), [
        "phase2=none", f"train.zero_stage={stage}", f"train.run_name={name}", f"train.storage_path={tmp / 'runs'}",
        f"train.mlflow_uri=sqlite:///{tmp / 'mlflow.db'}", "train.use_gpu=false", f"flame.model_dir={flame_dir}", f"phase1.steps={steps}",
        f"train.checkpoint_every={steps}", "train.log_every=5", f"phase1.data.shard_dirs={shards}"])


def _logged(uri: str, run_id: str) -> dict[str, list[float]]:
    """The run's logged intervals per metric, the first (warm-up) interval dropped."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    keys = ("samples_per_s", "data_wait_frac", "optimizer_state_mib", "zero_master_mib")
    history = {k: sorted(client.get_metric_history(run_id, f"phase1/{k}"), key=lambda m: m.step) for k in keys}
    return {k: [m.value for m in v[1:]] for k, v in history.items()}


def run(steps: int, rounds: int) -> dict:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="bmtrain") as tmp:
        tmp = Path(tmp)
        flame_dir = str(write_synthetic_flame(tmp / "flame", seed=0))
        head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=64))
        write_shards(synthetic_clips(head, "mono", 6, 1, 12, 1, 128, DOMAINS["studio"], seed=1), tmp / "mono")
        ray.init(include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp / "ray"))
        per_stage = {0: [], 2: []}
        try:
            for r in range(rounds):
                for stage in ((0, 2) if r % 2 == 0 else (2, 0)):
                    job = _job(tmp, flame_dir, tmp / "mono", stage, steps, f"zero{stage}-{r}")
                    tracker = Tracker("bm_train_step", job.train.mlflow_uri)
                    run_id = tracker.start(job.train.run_name, {})
                    result = fit_phase(PhaseRun(job, 1, mlflow_run_id=run_id), tmp / "runs" / job.train.run_name)
                    tracker.end()
                    if result.error is not None:
                        raise RuntimeError(f"ZeRO-{stage} run failed: {result.error}")
                    per_stage[stage].append(_logged(job.train.mlflow_uri, run_id))
        finally:
            ray.shutdown()
    out = {"steps_per_run": steps, "rounds": rounds, "workers": 2, "batch_per_worker": recipe("demo").phase1.batch_size}
    for stage, frames in per_stage.items():
        pooled = lambda key: [v for f in frames for v in f[key]]  # noqa: E731
        out[f"zero{stage}"] = {
            "samples_per_s": statistics.median(pooled("samples_per_s")),
            "data_wait_share": statistics.median(pooled("data_wait_frac")),
            "optimizer_state_mib_per_rank": frames[0]["optimizer_state_mib"][-1],
            "zero_master_mib_per_rank": frames[0]["zero_master_mib"][-1],
        }
    z0, z2 = out["zero0"], out["zero2"]
    out["state_ratio_zero2_over_zero0"] = z2["optimizer_state_mib_per_rank"] / z0["optimizer_state_mib_per_rank"]
    out["state_plus_master_ratio"] = ((z2["optimizer_state_mib_per_rank"] + z2["zero_master_mib_per_rank"])
                                      / z0["optimizer_state_mib_per_rank"])
    out["step_time_ratio_zero2_over_zero0"] = z0["samples_per_s"] / z2["samples_per_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    out = run(args.steps, args.rounds)
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"tiny generator, 2 CPU workers x batch {out['batch_per_worker']}, {args.steps} steps x {args.rounds} rounds")
    for stage in (0, 2):
        s = out[f"zero{stage}"]
        print(f"  ZeRO-{stage}: {s['samples_per_s']:.2f} samples/s, data wait {100 * s['data_wait_share']:.0f}% of step "
              f"time, optimiser state {s['optimizer_state_mib_per_rank']:.2f} MiB/rank "
              f"(+ fp32 master partition {s['zero_master_mib_per_rank']:.2f} MiB)")
    print(f"  ZeRO-2 / ZeRO-0 optimiser state per rank: {out['state_ratio_zero2_over_zero0']:.3f}x (target <= 0.55x); "
          f"with ZeRO's fp32 master partition {out['state_plus_master_ratio']:.3f}x")
    print(f"  ZeRO-2 / ZeRO-0 step time: {out['step_time_ratio_zero2_over_zero0']:.3f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()

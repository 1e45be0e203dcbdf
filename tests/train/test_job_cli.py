"""jobs/train_generator.py against a real local Ray cluster (`ray start --head`): `ray job submit`
runs both phases; a killed driver's rerun resumes; a new run name starts fresh (RANDOMLY
INITIALISED encoder; mechanics, not quality). The cluster is stopped by PID, never `ray stop`."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model
from sa0.train.checkpoint import load_generator

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _own_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="ignore"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def cluster():
    """A local head node in its own temp dir; yields (env for clients, GCS address, dashboard URL)."""
    temp = tempfile.mkdtemp(dir="/tmp", prefix="sa0h")
    gcs, dash, client, agent_listen, agent_grpc, runtime_env, metrics = _free_ports(7)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    cmd = [str(BIN / "ray"), "start", "--head", f"--temp-dir={temp}", "--num-cpus=4", f"--port={gcs}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_listen}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
           f"--metrics-export-port={metrics}", "--disable-usage-stats"]
    started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield env, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dash}"
    finally:
        for pid in _own_processes(temp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def data(synthetic_dir, tmp_path_factory):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))
    root = tmp_path_factory.mktemp("jobdata")
    write_shards(synthetic_clips(head, "mono", 2, 1, 6, 1, 64, DOMAINS["studio"], seed=5), root / "mono")
    write_shards(synthetic_clips(head, "multiview", 1, 1, 3, 4, 64, DOMAINS["studio"], seed=6), root / "multiview")
    return root


def _args(synthetic_dir, data, root, name, *extra):
    small = ["layout.uv_resolution=32", "model.image_size=56", "model.unet_channels=16,24", "train.log_every=2",
             "phase1.data.example.image_size=64", "phase2.data.example.image_size=64", "phase1.loss.jacobian=0",
             "phase1.data.example.sampler.max_sources=2", "phase2.data.example.sampler.max_sources=2", *extra]
    return ["jobs/train_generator.py", "--run-name", name, "--storage", str(root / "runs"),
            "--mlflow-uri", f"sqlite:///{root / 'mlflow.db'}", "--flame-dir", str(synthetic_dir),
            "--phase1-shards", str(data / "mono"), "--phase2-shards", str(data / "multiview"),
            *[a for item in small for a in ("--set", item)]]


def test_ray_job_submit_runs_both_phases(cluster, synthetic_dir, data, tmp_path):
    env, _, dashboard = cluster
    args = _args(synthetic_dir, data, tmp_path, "submitted", "phase1.steps=6", "phase2.steps=4",
                 "train.checkpoint_every=3")
    done = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir", str(ROOT), "--",
                           "python", *args], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "succeeded" in done.stdout and "done: generator" in done.stdout
    # A clean terminal: rank 0's progress line once per logged step (log_every, checkpoints),
    # none of Ray Train's per-report lines, no worker output
    progress = [line for line in done.stdout.splitlines() if line.startswith("[phase1] step ")]
    assert [line.split()[2] for line in progress] == ["2/6", "3/6", "4/6", "6/6"], done.stdout[-3000:]  # as logged
    assert "Reporting training result" not in done.stdout + done.stderr
    assert "RayTrainWorker pid=" not in done.stdout + done.stderr
    _, meta1 = load_generator(tmp_path / "runs" / "submitted" / "generator_phase1")
    state2, meta2 = load_generator(tmp_path / "runs" / "submitted" / "generator_phase2")
    assert (meta1["phase"], meta1["step"], meta2["phase"], meta2["step"]) == (1, 6, 2, 4)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("sa0-generator").experiment_id])[0]
    assert run.info.status == "FINISHED"
    l2sp = [m.value for m in client.get_metric_history(run.info.run_id, "phase2/l2_sp")]
    assert l2sp and all(v > 0 for v in l2sp)  # phase 2 is anchored to the phase-1 export and moved away from it
    assert [m.step for m in client.get_metric_history(run.info.run_id, "phase1/l1")] == [2, 3, 4, 6]


def _checkpoint_committed(run_dir: Path) -> bool:
    snapshot = run_dir / "phase1" / "checkpoint_manager_snapshot.json"
    return snapshot.is_file() and "checkpoint_" in snapshot.read_text()


def test_killed_driver_rerun_resumes_and_new_run_name_starts_fresh(cluster, synthetic_dir, data, tmp_path):
    env, address, _ = cluster
    args = _args(synthetic_dir, data, tmp_path, "killed", "phase2=none", "phase1.steps=30", "train.checkpoint_every=5")
    command = [sys.executable, *args, "--address", address]
    driver = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "runs" / "killed"
    deadline = time.monotonic() + 300
    while not _checkpoint_committed(run_dir) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert driver.poll() is None, "the driver finished before it could be killed"
    driver.kill()  # SIGKILL: no cleanup; Ray tears down the job's actors
    driver.wait()
    assert not (run_dir / "generator_phase1").exists()

    rerun = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    _, meta = load_generator(run_dir / "generator_phase1")
    segments = meta["segments"]
    assert len(segments) == 2 and segments[0][0] == 1 and segments[-1][1] == 30, segments
    assert segments[1][0] == segments[0][1] + 1 and segments[0][1] % 5 == 0, segments  # resumed at a checkpoint
    assert json.loads((run_dir / "job.json").read_text())["finished_phases"] == [1]

    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "already finished" in again.stdout  # nothing left to do

    fresh = _args(synthetic_dir, data, tmp_path, "fresh", "phase2=none", "phase1.steps=3", "train.checkpoint_every=5")
    new = subprocess.run([sys.executable, *fresh, "--address", address], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert new.returncode == 0, new.stderr[-3000:]
    assert load_generator(tmp_path / "runs" / "fresh" / "generator_phase1")[1]["segments"] == [[1, 3]]

"""benchmarks/bm_generator.py at its test size (a few minutes on 2 CPU cores, fixed seeds): the proof
run trains a generator that reads its sources on identities it never saw."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("mean_avatar_psnr", "zero_shot_psnr_k1", "zero_shot_psnr_k2", "zero_shot_psnr_k3", "zero_shot_psnr_k4",
        "phase2_anchor_drop_db", "phase2_no_anchor_drop_db", "personalise_500_gap_db", "minutes")


@pytest.mark.slow
@pytest.mark.ray
def test_short_proof_run_beats_the_mean_avatar_on_held_out_identities(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/bm_generator.py"), "--size", "test", "--json",
                           "--no-mlflow"], cwd=tmp_path, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    report = json.loads("\n".join(lines[lines.index("{"):]))
    for key in KEYS:
        assert isinstance(report[key], float), key
    # measured at this size on the 2-core CPU machine (400 + 40 steps, 4.7 min): mean avatar 21.87 dB, K = 1 29.51,
    # K = 4 30.50; phase 2 with the recipe's anchor, cross-time mix and replay -0.26 dB, without anchor and mix
    # +0.33 (benchmarks/results/generator_cpu_202612.md has the full size); the margin asserted is about half
    assert report["zero_shot_psnr_k1"] >= report["mean_avatar_psnr"] + 3.5
    assert report["zero_shot_psnr_k4"] > report["zero_shot_psnr_k1"]
    assert report["phase2_anchor_drop_db"] < report["phase2_no_anchor_drop_db"] - 0.25
    curve = {row["steps"]: row for row in report["personalise"]}
    assert curve[100]["generator_init_psnr"] > curve[100]["neutral_init_psnr"]  # the generator's start is better
    assert report["minutes"] < 15

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
    # measured at this size on the 2-core CPU machine (400 + 40 steps, 4.5 min; monocular sources spread over the
    # clip): mean avatar 21.85 dB, K = 1 30.39, K = 4 31.81; phase 2 with the recipe's anchor, cross-time mix and
    # replay -0.28 dB, without anchor and mix +0.43 (benchmarks/results/generator_cpu_202612.md has the full size);
    # the margin asserted is about half
    assert report["zero_shot_psnr_k1"] >= report["mean_avatar_psnr"] + 3.5
    assert report["zero_shot_psnr_k4"] > report["zero_shot_psnr_k1"]
    assert report["phase2_anchor_drop_db"] < report["phase2_no_anchor_drop_db"] - 0.25
    curve = {row["steps"]: row for row in report["personalise"]}
    assert curve[100]["generator_init_psnr"] > curve[100]["neutral_init_psnr"]  # the generator's start is better
    # novel views (cameras at wider yaws than the two trained on); at this size the generator's start beats the
    # neutral one on the training views only (36.34 vs 35.36 dB; at 40 / 60 degrees 31.10 / 28.42 vs 32.66 / 30.78:
    # the full size's generator wins everywhere), and 100 steps from it gain everywhere (44.00 / 36.28 / 31.62)
    start, short = report["personalise_novel"][:2]
    assert start["steps"] == 1 and short["steps"] == 100 and set(start["generator"]) == {"train", "40 deg", "60 deg"}
    assert start["generator"]["train"] > start["neutral"]["train"] + 0.3, start
    assert all(short["generator"][view] > start["generator"][view] + 1 for view in start["generator"]), (start, short)
    assert report["minutes"] < 15

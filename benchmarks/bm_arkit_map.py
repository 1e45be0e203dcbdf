"""How well ARKit's 52 blendshapes map onto a head without ARKit expressions (sa0.drive.arkit).

    python benchmarks/bm_arkit_map.py [--json] [--flame-dir DIR ...]

For each head (by default the synthetic head, and the ICT head fitted onto itself: the check that
the fit recovers a map that is known; add your licensed FLAME with --flame-dir), the map is fitted
from the ICT head and scored on the MediaPipe landmarks the two heads share, in millimetres of the
target head: per ARKit shape at weight 1, and for random takes (each shape on with probability
0.15, at a random weight) through the linear map. `explained` = 1 - residual energy / asked energy.
Prints the worst shapes; --json prints everything.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sa0.config import FlameConfig, LayoutConfig  # noqa: E402
from sa0.drive.arkit import fit_arkit_map  # noqa: E402
from sa0.flame.synthetic import write_synthetic_flame  # noqa: E402
from sa0.head import load_head_model  # noqa: E402
from sa0.heads import head_name  # noqa: E402
from sa0.heads.ict import IctFacts, ict_dir  # noqa: E402


def _head(model_dir):
    return load_head_model(FlameConfig(model_dir=str(model_dir)), LayoutConfig(uv_resolution=8))


def measure(model_dirs: list[Path]) -> dict:
    reference, facts = _head(ict_dir()), IctFacts.read()
    out = {}
    for model_dir in model_dirs:
        start = time.perf_counter()
        name = head_name(model_dir)
        mapping = fit_arkit_map(_head(model_dir), reference, facts, name)
        out[name] = dict(mapping.report, seconds=round(time.perf_counter() - start, 2))
    return out


def _print(results: dict) -> None:
    for name, r in results.items():
        shapes, combos = r["shapes"], r["combinations"]
        print(f"{name}: {r['shared_landmarks']} shared landmarks, fitted in {r['seconds']:.1f} s")
        print(f"  per shape:    RMS error {shapes['rms_mm']:.3f} mm of {shapes['asked_rms_mm']:.3f} mm asked "
              f"({100 * shapes['explained']:.3f} % explained)")
        print(f"  random takes: RMS error {combos['rms_mm']:.3f} mm of {combos['asked_rms_mm']:.3f} mm asked "
              f"({100 * combos['explained']:.3f} % explained)")
        worst = sorted(shapes["per_shape"].items(), key=lambda kv: -kv[1][0])[:5]
        print("  worst shapes: " + ", ".join(f"{n} {e:.2f}/{a:.2f} mm" for n, (e, a) in worst))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--flame-dir", action="append", default=[], help="also fit this FLAME-format head")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_flame(tmp)
        results = measure([Path(tmp), ict_dir()] + [Path(d) for d in args.flame_dir])
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        _print(results)


if __name__ == "__main__":
    main()

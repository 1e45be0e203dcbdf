"""Standard formats out: file size per format, what a round trip keeps, and (--peers) how Babylon.js and
Spark draw them against sa0's own render, at UV 128 and UV 256.

    python benchmarks/bm_export.py [--json] [--quick] [--peers] [--avatar OUT/<s>/avatar.npz]

Without --avatar it makes its own: a synthetic subject (sa0's synthetic head), refined 300 steps on a
256^2 clip at each UV resolution (UV 128: ~14K Gaussians, UV 256: ~54K). --avatar measures a given
avatar instead (its own UV resolution; its shards must be where the package says). Sizes grow
linearly with the Gaussian count; the ratios are what the formats do to the same Gaussians.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _make_avatar(root: Path, uv: int, steps: int, size: int) -> Path:
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.data.shards import write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.flame.synthetic import write_synthetic_flame
    from sa0.head import load_head_model
    from sa0.refine.refine import RefineConfig
    from sa0.refine.subjects import run_subject

    flame = FlameConfig(model_dir=str(write_synthetic_flame(root / "head", seed=0)))
    layout = LayoutConfig(uv_resolution=uv)
    write_shards(synthetic_clips(load_head_model(flame, layout), "mono", 1, 1, 6, 1, size, DOMAINS["studio"], seed=5),
                 root / "shards")
    row = run_subject("subj0000", [str(root / "shards")], root / "out", flame, layout,
                      RefineConfig(steps=steps, eval_every=0, images=0))
    if row.status != "done":
        raise RuntimeError(f"refinement failed: {row.reason}")
    return root / "out" / "subj0000" / "avatar.npz"


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.nn.functional.normalize(a.double(), dim=-1), torch.nn.functional.normalize(b.double(), dim=-1)
    return float(torch.rad2deg(2 * torch.acos((a * b).sum(-1).abs().clamp(max=1))).max())


def measure(avatar: Path, workdir: Path, peers: bool) -> dict:
    from sa0.export.package import load_package, package_head
    from sa0.export.splats import FORMATS, posed_gaussians, read_splats, write_splats
    from sa0.refine.subjects import driver_clip

    package = load_package(avatar)
    motion = driver_clip(package.meta["subject"], package.meta["shards"])
    frame = package.meta.get("reference_frame", 0)
    row: dict = {"avatar": str(avatar), "uv_resolution": package.uv_resolution, "gaussians": len(package.face_idx)}
    with package_head(package) as head:
        (g,) = posed_gaussians(package, head, motion, [frame])
        for fmt in FORMATS:
            path = write_splats(g, workdir / f"a.{fmt}")
            back = read_splats(path)
            row[fmt] = {"bytes": path.stat().st_size, "max_position_error_mm": 1e3 * float((back.means - g.means).abs().max()),
                        "max_rotation_error_deg": _angle_deg(back.quats, g.quats),
                        "max_log_scale_error": float((back.scales.log() - g.scales.log()).abs().max()),
                        "max_colour_error": float((back.colors - g.colors).abs().max())}
        row["ply_over_spz"] = row["ply"]["bytes"] / row["spz"]["bytes"]
        if peers:
            from sa0.export.peers import compare_readers
            from sa0.export.serve import headless_chromium

            with headless_chromium() as browser:
                got = compare_readers(package, head, motion, frame, browser, workdir)
            row["peers_psnr_db"] = {r: got[r]["psnr"] for r in ("babylon", "spark")}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="UV 128 only, 100 steps")
    parser.add_argument("--peers", action="store_true", help="also draw with Babylon.js and Spark (npm, Chromium)")
    parser.add_argument("--avatar", default=None)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.avatar:
            rows.append(measure(Path(args.avatar), Path(tmp), args.peers))
        for uv in ([] if args.avatar else [128] if args.quick else [128, 256]):
            work = Path(tmp) / f"uv{uv}"
            avatar = _make_avatar(work, uv, 100 if args.quick else 300, 256)
            rows.append(measure(avatar, work, args.peers))
    if args.json:
        print(json.dumps({"rows": rows, "torch_threads": torch.get_num_threads()}, indent=1))
        return 0
    print(f"{'UV':>4} {'Gaussians':>9} {'glb MiB':>8} {'spz MiB':>8} {'ply MiB':>8} {'ply/spz':>7} "
          f"{'spz pos mm':>10} {'spz rot deg':>11} {'babylon dB':>10} {'spark dB':>9}")
    for r in rows:
        peers = r.get("peers_psnr_db", {})
        print(f"{r['uv_resolution']:>4} {r['gaussians']:>9} {r['glb']['bytes'] / 2**20:>8.2f} "
              f"{r['spz']['bytes'] / 2**20:>8.2f} {r['ply']['bytes'] / 2**20:>8.2f} {r['ply_over_spz']:>7.1f} "
              f"{r['spz']['max_position_error_mm']:>10.3f} {r['spz']['max_rotation_error_deg']:>11.2f} "
              f"{peers.get('babylon', float('nan')):>10.1f} {peers.get('spark', float('nan')):>9.1f}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())

"""Make, and check, WebDataset shards of clips.

    python jobs/make_shards.py synthetic --kind mono|multiview --subjects N --frames T [--views C]
        [--res R] [--domain studio|outdoor|lowkey] [--clips-per-subject K] [--test-subjects M]
        [--seed S] [--uv-resolution U] [--flame-dir DIR] --out DIR
    python jobs/make_shards.py convert --format gagavatar|vhap|imavatar --src DIR [DIR ...] --out DIR
        [--address RAY] [--strict] [--units-per-task N] [--dataset NAME] [--domain NAME]
    python jobs/make_shards.py validate DIR
    python jobs/make_shards.py upgrade OLD_DIR --out NEW_DIR

`synthetic` renders clips of random subjects with sa0's renderer (a synthetic FLAME-format head
when no FLAME directory is given) and writes shards plus manifest.json. `convert` reads tracker
outputs (one directory per subject / sequence for vhap and imavatar, one tracker output directory
for gagavatar) into shards as parallel Ray tasks on a local or remote cluster; a rerun continues
where a stopped one left off; bad frames and clips are skipped and listed in
OUT/conversion_report.json (--strict: the first problem stops it). `validate` checks every shard
and exits non-zero when anything is wrong, naming the file and the problem. `upgrade` rewrites
shards of an older sa0 (schema 1) in the current layout.
"""

from __future__ import annotations

import argparse
import os
import sys

from tqdm import tqdm

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.convert import FORMATS
from sa0.data.reader import validate_shards
from sa0.data.schema import ClipError
from sa0.data.shards import ShardError, write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.flame.io import FLAME_DIR_ENV
from sa0.head import load_head_model
from sa0.heads import SYNTHETIC_NAME, chosen_head


def _synthetic(args) -> int:
    with chosen_head(args.flame_dir, default=SYNTHETIC_NAME) as (flame_dir, _):
        head = load_head_model(FlameConfig(model_dir=flame_dir), LayoutConfig(uv_resolution=args.uv_resolution))
        total = args.subjects * args.clips_per_subject
        clips = synthetic_clips(head, args.kind, args.subjects, args.clips_per_subject, args.frames, args.views,
                                args.res, DOMAINS[args.domain], seed=args.seed, test_subjects=args.test_subjects,
                                stream=True)
        clips = tqdm(clips, total=total, desc="rendering clips", unit="clip")
        manifest = write_shards(clips, args.out, max_shard_bytes=args.max_shard_mb << 20)
    print(f"wrote {manifest['clips']} clips ({manifest['frames']} frames, {len(manifest['subjects'])} subjects) "
          f"in {len(manifest['shards'])} shard(s) to {args.out}")
    return 0


def _convert(args) -> int:
    from sa0.data.convert.run import ConversionError, ConvertConfig, convert_dataset

    cfg = ConvertConfig(format=args.format, sources=tuple(args.src), out=args.out, dataset=args.dataset,
                        domain=args.domain, strict=args.strict, max_shard_bytes=args.max_shard_mb << 20,
                        units_per_task=args.units_per_task)
    try:
        report = convert_dataset(cfg, address=args.address)
    except (ConversionError, ClipError, ShardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report["tasks_reused"]:
        print(f"{report['tasks_reused']} task(s) finished by an earlier run were kept; {report['tasks_run']} ran now")
    for problem in report["problems"][:10]:
        print(f"warning: {problem['problem']}", file=sys.stderr)
    more = len(report["problems"]) - 10
    print(f"wrote {report['clips']} clips ({report['frames']} frames) in {report['shards']} shard(s) to {args.out}; "
          f"{len(report['problems'])} problem(s), {report['clips_skipped']} clip(s) skipped"
          + (f" ({more} more problems)" if more > 0 else "")
          + f"; details in {os.path.join(args.out, 'conversion_report.json')}")
    return 1 if report["problems"] else 0


def _upgrade(args) -> int:
    from sa0.data.convert.schema1 import read_schema1

    clips = tqdm(read_schema1(args.dir), desc="rewriting clips", unit="clip")
    try:
        manifest = write_shards(clips, args.out, max_shard_bytes=args.max_shard_mb << 20)
    except (ClipError, ShardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['clips']} clips ({manifest['frames']} frames) in {len(manifest['shards'])} shard(s) "
          f"to {args.out}")
    return 0


def _validate(args) -> int:
    report = validate_shards(args.dir)
    bad = {name: problems for name, problems in report.items() if problems}
    for name, problems in report.items():
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for problem in problems:
            print(f"     {problem}")
    print(f"{len(report) - len(bad)} ok, {len(bad)} with problems")
    return 1 if bad else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthetic", help="render synthetic clips into shards")
    syn.add_argument("--kind", choices=("mono", "multiview"), required=True)
    syn.add_argument("--subjects", type=int, required=True)
    syn.add_argument("--frames", type=int, required=True, help="timesteps per clip")
    syn.add_argument("--views", type=int, default=4, help="cameras per clip (multiview)")
    syn.add_argument("--res", type=int, default=256, help="image size in pixels (square)")
    syn.add_argument("--domain", choices=sorted(DOMAINS), default="studio")
    syn.add_argument("--clips-per-subject", type=int, default=1)
    syn.add_argument("--test-subjects", type=int, default=0, help="the last M subjects get split 'test'")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--uv-resolution", type=int, default=128)
    syn.add_argument("--flame-dir", default=None, help=f"head: a FLAME directory, or ict / synthetic (default "
                     f"${FLAME_DIR_ENV}, else the synthetic head)")
    syn.add_argument("--max-shard-mb", type=int, default=256)
    syn.add_argument("--out", required=True)
    conv = sub.add_parser("convert", help="convert tracker outputs into shards")
    conv.add_argument("--format", choices=sorted(FORMATS), required=True)
    conv.add_argument("--src", nargs="+", required=True, help="tracker output directories")
    conv.add_argument("--out", required=True)
    conv.add_argument("--dataset", default=None, help="dataset name in clip keys (default per format)")
    conv.add_argument("--domain", default=None, help="domain tag (default: the dataset name)")
    conv.add_argument("--max-shard-mb", type=int, default=256)
    conv.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray on this machine)")
    conv.add_argument("--strict", action="store_true", help="stop at the first bad frame or clip")
    conv.add_argument("--units-per-task", type=int, default=1, help="clips converted by one Ray task")
    val = sub.add_parser("validate", help="check every shard in a directory")
    val.add_argument("dir")
    upg = sub.add_parser("upgrade", help="rewrite schema-1 shards (sa0 before 0.2) in the current layout")
    upg.add_argument("dir")
    upg.add_argument("--out", required=True)
    upg.add_argument("--max-shard-mb", type=int, default=256)
    args = parser.parse_args(argv)
    for name in ("subjects", "frames", "views", "res", "clips_per_subject", "units_per_task", "max_shard_mb"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return {"synthetic": _synthetic, "convert": _convert, "validate": _validate, "upgrade": _upgrade}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

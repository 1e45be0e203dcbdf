"""Make, and check, WebDataset shards of clips.

    python jobs/make_shards.py synthetic --kind mono|multiview --subjects N --frames T [--views C]
        [--res R] [--domain studio|outdoor|lowkey] [--clips-per-subject K] [--test-subjects M]
        [--seed S] [--flame-dir DIR] --out DIR
    python jobs/make_shards.py convert --format gagavatar|vhap|imavatar --src DIR [DIR ...] --out DIR
        [--address RAY] [--strict] [--units-per-task N] [--dataset NAME] [--domain NAME]
    python jobs/make_shards.py validate DIR
    python jobs/make_shards.py upgrade OLD_DIR --out NEW_DIR

`synthetic` renders clips of random subjects with sa0's renderer (a synthetic FLAME-format head
when no FLAME directory is given) and writes shards plus manifest.json. `convert` reads tracker
outputs (one directory per subject / sequence for vhap and imavatar, one tracker output directory
for gagavatar) into shards as parallel Ray tasks on a local or remote cluster; a rerun continues
where a stopped one left off; bad frames and clips are skipped and listed in
OUT/conversion_report.json (--strict: the first problem stops it); a split with no frames beside
converted ones is a note, not a problem. `validate` checks every shard and exits non-zero when
anything is wrong, naming the file and the problem. `upgrade` rewrites shards of an older sa0
(schema 1) in the current layout.
"""

import dataclasses
import sys

from sa0.cli import Flag, JobSpec, Use, parse_commands
from sa0.data.convert import FORMATS
from sa0.data.job import ConvertJob, ShardDirJob, SyntheticJob, run_convert, run_synthetic, run_upgrade, run_validate
from sa0.data.synthetic import DOMAINS

DOMAIN = Flag(("--domain",), "domain", "domain tag in the clip keys (synthetic: its lighting and background, one of "
              f"{', '.join(sorted(DOMAINS))}; convert: default the dataset name)")
SHARD_DIR = Flag(("dir",), "dir", "shard directory")
SHARD_MB = Flag(("--max-shard-mb",), "max_shard_mb", "largest shard file in MiB")
SYNTHETIC = JobSpec(
    doc="Render synthetic clips into shards.", recipes={"default": SyntheticJob},
    shared={"out": "out", "head": "flame.model_dir", "subjects": Use("subjects", help="how many random subjects"),
            "uv_resolution": Use("uv_resolution", help="the renderer's Gaussian layout")},
    required=("out",),
    flags=(Flag(("--kind",), "kind", "mono or multiview", choices=("mono", "multiview")),
           Flag(("--frames",), "frames", "timesteps per clip"),
           Flag(("--views",), "views", "cameras per clip (multiview)"),
           Flag(("--res",), "res", "image side in pixels"),
           DOMAIN,
           Flag(("--clips-per-subject",), "clips_per_subject", "clips per subject"),
           Flag(("--test-subjects",), "test_subjects", "the last M subjects get split 'test'"),
           Flag(("--seed",), "seed", "random seed"),
           SHARD_MB))
CONVERT = JobSpec(
    doc="Convert tracker outputs into shards (Ray tasks; a rerun continues).", recipes={"default": ConvertJob},
    shared={"out": "convert.out", "address": "address",
            "format": Use("convert.format", help=f"tracker output format: {', '.join(sorted(FORMATS))}")},
    required=("convert.sources", "convert.out"),
    flags=(
           Flag(("--src",), "convert.sources", "tracker output directories", nargs="+", path=True, metavar="DIR"),
           Flag(("--dataset",), "convert.dataset", "dataset name in clip keys (default per format)"),
           dataclasses.replace(DOMAIN, key="convert.domain"),
           Flag(("--strict",), "convert.strict", "stop at the first bad frame or clip", switch=True),
           Flag(("--units-per-task",), "convert.units_per_task", "clips converted by one Ray task"),
           SHARD_MB))
VALIDATE = JobSpec(doc="Check every shard in a directory.", recipes={"default": ShardDirJob},
                   flags=(SHARD_DIR,), required=("dir",))
UPGRADE = JobSpec(doc="Rewrite schema-1 shards (sa0 before 0.2) in the current layout.",
                  recipes={"default": ShardDirJob}, shared={"out": "out"}, required=("dir", "out"),
                  flags=(SHARD_DIR, SHARD_MB))
COMMANDS = {"synthetic": SYNTHETIC, "convert": CONVERT, "validate": VALIDATE, "upgrade": UPGRADE}
RUN = {"synthetic": run_synthetic, "convert": run_convert, "validate": run_validate, "upgrade": run_upgrade}


def main(argv=None) -> int:
    command, job = parse_commands(__doc__, COMMANDS, argv)
    return RUN[command](job)


if __name__ == "__main__":
    sys.exit(main())

"""The shard jobs (jobs/make_shards.py synthetic | convert | validate | upgrade): configs and runs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace

from sa0.config import FlameConfig
from sa0.data.convert.run import ConvertConfig

MIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class SyntheticJob:
    """Render clips of random subjects on a head (flame.model_dir: None = $SA0_FLAME_DIR, else the
    synthetic head). kind: mono | multiview; views: cameras per clip (multiview); res: image side;
    test_subjects: the last M subjects get split 'test'. uv_resolution: the layout the renderer's
    Gaussians use (the data records FLAME parameters, not Gaussians)."""

    kind: str = "mono"
    subjects: int = 2
    frames: int = 30
    views: int = 4
    res: int = 256
    domain: str = "studio"
    clips_per_subject: int = 1
    test_subjects: int = 0
    seed: int = 0
    uv_resolution: int = 128
    flame: FlameConfig = field(default_factory=FlameConfig)
    max_shard_mb: int = 256
    out: str = ""

    def __post_init__(self):
        from sa0.data.synthetic import DOMAINS

        if self.kind not in ("mono", "multiview"):
            raise ValueError(f"kind must be mono or multiview, got {self.kind!r}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {self.domain!r}")
        for name in ("subjects", "frames", "views", "res", "clips_per_subject", "max_shard_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.test_subjects <= self.subjects:
            raise ValueError(f"test_subjects must be in 0..subjects ({self.subjects}), got {self.test_subjects}")


@dataclass(frozen=True, kw_only=True)
class ConvertJob:
    """Tracker outputs -> shards as Ray tasks (convert: sa0.data.convert.run.ConvertConfig; its
    max_shard_bytes is set from max_shard_mb). address: None = a local Ray."""

    convert: ConvertConfig = field(default_factory=ConvertConfig)
    max_shard_mb: int = 256
    address: str | None = None

    def __post_init__(self):
        if self.max_shard_mb < 1:
            raise ValueError(f"max_shard_mb must be >= 1, got {self.max_shard_mb}")


@dataclass(frozen=True, kw_only=True)
class ShardDirJob:
    """validate: check every shard of `dir`; upgrade: rewrite schema-1 shards of `dir` into `out`."""

    dir: str = ""
    out: str = ""
    max_shard_mb: int = 256


def run_synthetic(job: SyntheticJob) -> int:
    from tqdm import tqdm

    from sa0.config import LayoutConfig
    from sa0.data.shards import write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model
    from sa0.heads import SYNTHETIC_NAME, chosen_head

    with chosen_head(job.flame.model_dir, default=SYNTHETIC_NAME) as (flame_dir, _):
        head = load_head_model(replace(job.flame, model_dir=flame_dir),
                               LayoutConfig(uv_resolution=job.uv_resolution))
        clips = synthetic_clips(head, job.kind, job.subjects, job.clips_per_subject, job.frames, job.views, job.res,
                                DOMAINS[job.domain], seed=job.seed, test_subjects=job.test_subjects, stream=True)
        clips = tqdm(clips, total=job.subjects * job.clips_per_subject, desc="rendering clips", unit="clip")
        manifest = write_shards(clips, job.out, max_shard_bytes=job.max_shard_mb * MIB)
    print(f"wrote {manifest['clips']} clips ({manifest['frames']} frames, {len(manifest['subjects'])} subjects) "
          f"in {len(manifest['shards'])} shard(s) to {job.out}")
    return 0


def run_convert(job: ConvertJob) -> int:
    """Convert; print problems (exit 1) and notes (exit 0: parts left out on purpose)."""
    from sa0.data.convert.run import ConversionError, convert_dataset
    from sa0.data.schema import ClipError
    from sa0.data.shards import ShardError

    cfg = replace(job.convert, max_shard_bytes=job.max_shard_mb * MIB)
    try:
        report = convert_dataset(cfg, address=job.address)
    except (ConversionError, ClipError, ShardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report["tasks_reused"]:
        print(f"{report['tasks_reused']} task(s) finished by an earlier run were kept; {report['tasks_run']} ran now")
    for note in report["notes"]:
        print(f"note: {note}")
    for problem in report["problems"][:10]:
        print(f"warning: {problem['problem']}", file=sys.stderr)
    more = len(report["problems"]) - 10
    print(f"wrote {report['clips']} clips ({report['frames']} frames) in {report['shards']} shard(s) to {cfg.out}; "
          f"{len(report['problems'])} problem(s), {report['clips_skipped']} clip(s) skipped"
          + (f" ({more} more problems)" if more > 0 else "")
          + f"; details in {os.path.join(cfg.out, 'conversion_report.json')}")
    return 1 if report["problems"] or not report["clips"] else 0


def run_validate(job: ShardDirJob) -> int:
    from sa0.data.reader import validate_shards

    report = validate_shards(job.dir)
    bad = {name: problems for name, problems in report.items() if problems}
    for name, problems in report.items():
        print(f"{'FAIL' if problems else 'ok  '} {name}")
        for problem in problems:
            print(f"     {problem}")
    print(f"{len(report) - len(bad)} ok, {len(bad)} with problems")
    return 1 if bad else 0


def run_upgrade(job: ShardDirJob) -> int:
    from tqdm import tqdm

    from sa0.data.convert.schema1 import read_schema1
    from sa0.data.schema import ClipError
    from sa0.data.shards import ShardError, write_shards

    clips = tqdm(read_schema1(job.dir), desc="rewriting clips", unit="clip")
    try:
        manifest = write_shards(clips, job.out, max_shard_bytes=job.max_shard_mb * MIB)
    except (ClipError, ShardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['clips']} clips ({manifest['frames']} frames) in {len(manifest['shards'])} shard(s) "
          f"to {job.out}")
    return 0

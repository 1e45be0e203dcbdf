"""Load subjects' clips from shards and refine them in one batch (the unit a fan-out task executes)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.reader import ShardReader, clip_records
from sa0.data.schema import Clip, ClipError, ClipMeta
from sa0.data.shards import ShardError
from sa0.faults import maybe_crash
from sa0.head import HeadModel, load_head_model
from sa0.model.inference import load_trained_generator
from sa0.refine.batched import Observer, Subject, refine_subjects
from sa0.refine.outputs import add_extras, is_complete, lacks_extras, write_subject_outputs
from sa0.refine.refine import RefineConfig


class BadInput(ValueError):
    """The subject's data cannot be refined (missing, malformed); not worth retrying."""


def resolve_shard_dirs(shard_dirs=None, root: str = "data") -> list[str]:
    """The shard directories a job reads: the given ones (each must hold a manifest.json), or
    every directory under `root` that holds one; BadInput saying what to do when there are none."""
    if shard_dirs is None:
        shard_dirs = [str(p.parent) for p in sorted(Path(root).glob("**/manifest.json"))]
        if not shard_dirs:
            raise BadInput(f"--shards: no shard directories under ./{root} (none holds a manifest.json); pass --shards "
                           "DIR or make some, e.g. python jobs/make_shards.py synthetic --kind mono --subjects 2 "
                           f"--frames 30 --res 128 --out {root}/demo")
    missing = [str(d) for d in shard_dirs if not (Path(d) / "manifest.json").is_file()]
    if missing:
        raise BadInput(f"--shards: {', '.join(missing)} holds no manifest.json (not a make_shards.py output)")
    return [str(d) for d in shard_dirs]


def parse_subjects(value: str) -> list[str]:
    """--subjects: a text file with one subject id per line (# comments), or, when no such file
    exists, the ids themselves separated by commas ("me" or "alice,bob")."""
    path = Path(value)
    if path.is_file():
        subjects = [s for s in (line.split("#")[0].strip() for line in path.read_text().splitlines()) if s]
        if not subjects:
            raise BadInput(f"--subjects: {path} lists no subjects")
        return subjects
    if "/" in value or "\\" in value or value.endswith((".txt", ".lst")):
        raise BadInput(f"--subjects: {path} does not exist")
    subjects = [s.strip() for s in value.split(",") if s.strip()]
    if not subjects:
        raise BadInput(f"--subjects: {value!r} names no subject")
    return subjects


def subject_of(subject: str) -> str:
    """A subject id as clip keys spell it (the manifests' second key field)."""
    return ClipMeta(subject, "c", "d", "x", "train").key.split("__")[1]


def load_subject_clips(subject: str, shard_dirs, records: list | None = None) -> list[Clip]:
    """Every clip of `subject` in the shard directories; records: their clip_records, if already read."""
    want = subject_of(subject)
    if records is None:
        try:
            records = clip_records(shard_dirs)
        except ShardError as exc:
            raise BadInput(str(exc)) from exc
    reader = ShardReader()
    clips = [reader.clip(reader.index(path, record)) for path, record in records
             if record["key"].split("__")[1] == want]
    reader.close()
    if not clips:
        raise BadInput(f"subject '{subject}' not found in {[str(d) for d in shard_dirs]}")
    return clips


def recorded_head(subjects: list[str] | None, shard_dirs) -> str | None:
    """The head the subjects' (None: all) clips were made with (meta extras "head"; None when no clip says,
    as in shards of older sa0 versions). Subjects with no clip are left to the refinement to report;
    subjects made with different heads are BadInput (one job refines with one head)."""
    every = subjects is None
    try:
        records = clip_records(shard_dirs)
    except ShardError as exc:
        raise BadInput(str(exc)) from exc
    want = set() if every else {subject_of(s) for s in subjects}
    reader, heads = ShardReader(), {}
    for path, record in records:
        subject = record["key"].split("__")[1]
        if (every or subject in want) and subject not in heads:
            heads[subject] = (reader.index(path, record).meta.get("extras") or {}).get("head")
    reader.close()
    named = {h for h in heads.values() if h}
    if len(named) > 1:
        raise BadInput("the subjects were made with different heads (" + ", ".join(
            f"{s}: {h or 'unrecorded'}" for s, h in sorted(heads.items())) + "); refine them in separate runs")
    return named.pop() if named else None


def motion_clip(clips: list[Clip]) -> Clip:
    """The clip whose motion plays a subject: its first, train split first, every frame."""
    return min(clips, key=lambda c: c.meta.split != "train")


def driver_clip(subject: str, shard_dirs) -> Clip:
    """The clip that drives an avatar with `subject`'s motion (motion_clip of its clips)."""
    return motion_clip(load_subject_clips(subject, shard_dirs))


def slice_timesteps(clip: Clip, sl: slice | np.ndarray) -> Clip:
    """The clip restricted to the timesteps in `sl`, a slice or an index array (all cameras)."""
    return dataclasses.replace(
        clip, images=clip.images[sl], mattes=clip.mattes[sl], viewmats=clip.viewmats[sl], Ks=clip.Ks[sl],
        face_boxes=clip.face_boxes[sl], flame=type(clip.flame)(**{k: v[sl] for k, v in clip.flame.as_dict().items()}))


def select_cameras(clip: Clip, idx: list[int]) -> Clip:
    """The clip seen only by cameras `idx` (every timestep)."""
    return dataclasses.replace(clip, images=clip.images[:, idx], mattes=clip.mattes[:, idx],
                               viewmats=clip.viewmats[:, idx], Ks=clip.Ks[:, idx], face_boxes=clip.face_boxes[:, idx])


def train_test(clips: list[Clip], holdout_fraction: float = 0.2) -> tuple[Clip, Clip]:
    """Test clips (split test/val) if any, else the last `holdout_fraction` of the training clip."""
    train = [c for c in clips if c.meta.split == "train"]
    test = [c for c in clips if c.meta.split != "train"]
    if not train:
        train, test = test[:1], test[1:]
    base = max(train, key=lambda c: c.num_timesteps)
    if test:
        return base, test[0]
    if base.num_timesteps < 3:
        raise BadInput(f"subject '{base.meta.subject}': {base.num_timesteps} frames, need >= 3 to hold some out")
    cut = base.num_timesteps - max(1, int(round(holdout_fraction * base.num_timesteps)))
    return slice_timesteps(base, slice(0, cut)), slice_timesteps(base, slice(cut, None))


@dataclasses.dataclass(frozen=True)
class SubjectRow:
    """One subject's outcome in a batch (a row of the job's table and of its MLflow run): status done |
    skipped (complete output existed) | failed (reason says why), final held-out figures, steps run,
    seconds, and the torch threads its task used."""

    subject: str
    status: str = "failed"
    psnr: float | None = None
    ssim: float | None = None
    max_ar: float | None = None
    steps: int = 0
    seconds: float = 0.0
    reason: str = ""
    threads: int | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def figures(self) -> dict[str, float]:
        """The numeric results that are known (for MLflow)."""
        return {k: getattr(self, k) for k in ("psnr", "ssim", "max_ar", "steps", "seconds")
                if getattr(self, k) is not None}


def skipped_row(subject: str, out_dir) -> SubjectRow:
    """The row of a subject whose complete output exists (from its metrics.json)."""
    metrics = json.loads((Path(out_dir) / subject / "metrics.json").read_text())
    final = metrics.get("final", {})
    return SubjectRow(subject, "skipped", final.get("psnr"), final.get("ssim"), metrics.get("max_ar"),
                      metrics.get("steps", 0), reason="complete output exists")


def checkpoint_dir(out_dir) -> Path:
    """Where a refinement's per-subject checkpoints live while it runs (removed once written)."""
    return Path(out_dir) / ".checkpoints"


def run_subjects(subjects: list[str], shard_dirs, out_dir, flame: FlameConfig, layout: LayoutConfig,
                 refine: RefineConfig, generator_dir: str | None = None, observer: Observer | None = None,
                 checkpoint_every: int = 1000, web: bool = False, export: tuple[str, ...] = ()) -> list[SubjectRow]:
    """Refine the subjects in one batched loop (sa0.refine.batched); -> a status row per subject.

    A subject whose complete output exists is skipped; one whose data is bad, or whose loss turns
    non-finite, fails alone with its reason. Each subject resumes from its own checkpoint under
    OUT/.checkpoints if an earlier attempt left one. generator_dir: an exported generator to start
    from (None: flat discs). web: also write each subject's viewer (OUT/<subject>/web/); export:
    formats of the reference frame (avatar.glb, ...); both are added to complete subjects too."""
    start = time.perf_counter()
    rows: dict[str, SubjectRow] = {}
    batch, records, heads, motions = [], None, [], {}
    origin = {"shards": [str(Path(d).absolute()) for d in shard_dirs],
              "generator": str(Path(generator_dir).absolute()) if generator_dir else None}

    def cpu_head() -> HeadModel:  # built once, when first needed (outputs are written from this CPU copy)
        if not heads:
            heads.append(load_head_model(flame, layout))
        return heads[0]

    for subject in subjects:
        done = is_complete(Path(out_dir) / subject)
        if done and not lacks_extras(Path(out_dir) / subject, web, export):
            rows[subject] = skipped_row(subject, out_dir)
            continue
        try:
            if records is None:  # the manifests, read once for the whole batch
                records = clip_records(shard_dirs)
            clips = load_subject_clips(subject, shard_dirs, records)
            train, test = train_test(clips)
        except (BadInput, ClipError, ShardError) as exc:
            rows[subject] = SubjectRow(subject, reason=f"bad input: {exc}")
            continue
        motions[subject] = motion_clip(clips)
        if done:  # refined earlier without its viewer or exports: add only those
            add_extras(Path(out_dir) / subject, cpu_head(), motions[subject], web, export)
            rows[subject] = skipped_row(subject, out_dir)
            continue
        batch.append(Subject(subject, train, test))
    if batch:
        head = cpu_head()
        generator = load_trained_generator(generator_dir, head) if generator_dir else None
        on_device = head.to("cuda") if torch.cuda.is_available() else head
        results = refine_subjects(on_device, batch, refine, generator, observer, checkpoint_dir(out_dir),
                                  checkpoint_every)
        for subject, result in zip(batch, results):
            if isinstance(result, str):
                rows[subject.name] = SubjectRow(subject.name, reason=f"diverged: {result}")
                continue
            maybe_crash(subject.name, "before_write")
            write_subject_outputs(out_dir, subject.name, head, subject.train, subject.test, result,
                                  {"torch_threads": torch.get_num_threads(), "batch": len(batch)},
                                  web=motions[subject.name] if web else None, origin=origin, export=export)
            (checkpoint_dir(out_dir) / f"{subject.name}.pt").unlink(missing_ok=True)
            final = result.metrics.get("final", {})
            rows[subject.name] = SubjectRow(subject.name, "done", final.get("psnr"), final.get("ssim"),
                                            result.metrics["max_ar"], refine.steps, time.perf_counter() - start)
    threads = torch.get_num_threads()
    return [dataclasses.replace(rows[s], threads=threads) for s in subjects]


def run_subject(subject: str, shard_dirs, out_dir, flame: FlameConfig, layout: LayoutConfig,
                refine: RefineConfig, generator_dir: str | None = None) -> SubjectRow:
    """run_subjects for one subject."""
    return run_subjects([subject], shard_dirs, out_dir, flame, layout, refine, generator_dir)[0]


def format_table(rows: list[SubjectRow]) -> str:
    head = f"{'subject':<24} {'status':<8} {'PSNR':>7} {'SSIM':>6} {'maxAR':>6} {'steps':>6} {'seconds':>8}  reason"
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: format(v, spec) if isinstance(v, (int, float)) and v is not None else "-"  # noqa: E731
    for r in rows:
        lines.append(f"{r.subject:<24} {r.status:<8} {fmt(r.psnr, '7.2f'):>7} {fmt(r.ssim, '6.3f'):>6} "
                     f"{fmt(r.max_ar, '6.1f'):>6} {r.steps:>6} {fmt(r.seconds, '8.1f'):>8}  {r.reason}")
    return "\n".join(lines)


__all__ = ["BadInput", "format_table", "load_subject_clips", "recorded_head", "run_subject", "run_subjects", "skipped_row",
           "slice_timesteps", "SubjectRow", "train_test"]

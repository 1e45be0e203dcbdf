"""A refined subject's output directory, written atomically (METHOD §4 outputs).

    OUT/<subject>/avatar.npz     animatable package (sa0.export.package)
                 avatar.ply      world-space 3DGS at the reference frame
                 metrics.json    held-out PSNR/SSIM (LPIPS: unavailable offline), maxAR, steps, seconds
                 preview.mp4     held-out (or training) frames: ground truth | render
                 web/            with --web: the browser viewer playing its own motion (sa0.export.web)
                 avatar.glb, avatar.spz   with --export glb,spz: the reference frame in those formats

Everything is written into a temporary sibling directory that is renamed into place at the end,
so a subject directory either does not exist or is complete; `is_complete` checks that.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.export.package import save_package
from sa0.export.ply import export_ply
from sa0.gaussians import bind
from sa0.head import HeadModel
from sa0.heads import head_name
from sa0.refine.refine import RefineResult, _posed, camera_of, frames_of, target_of
from sa0.render.api import render

OUTPUT_FILES = ("avatar.npz", "avatar.ply", "metrics.json", "preview.mp4")


def is_complete(subject_dir) -> bool:
    subject_dir = Path(subject_dir)
    return all((subject_dir / name).is_file() for name in OUTPUT_FILES)


def has_site(subject_dir) -> bool:
    return (Path(subject_dir) / "web" / "avatar.json").is_file()


def export_files(subject_dir, export: tuple[str, ...]) -> list[Path]:
    """OUT/<subject>/avatar.<format> for each format asked for (refine_batch.py --export glb,spz)."""
    return [Path(subject_dir) / f"avatar.{fmt}" for fmt in export]


def lacks_extras(subject_dir, web: bool = False, export: tuple[str, ...] = ()) -> bool:
    """Whether a subject directory lacks a viewer or an export that was asked for."""
    return (web and not has_site(subject_dir)) or any(not p.is_file() for p in export_files(subject_dir, export))


def add_extras(subject_dir, head: HeadModel, motion: Clip, web: bool = False, export: tuple[str, ...] = ()) -> None:
    """Add to a complete subject directory what it lacks: its viewer (playing `motion`), its exports
    (the reference frame, as avatar.npz records it, in each format)."""
    from sa0.export.package import load_package
    from sa0.export.splats import posed_gaussians, write_splats

    subject_dir = Path(subject_dir)
    if web and not has_site(subject_dir):
        write_site(subject_dir, head, motion)
    missing = [p for p in export_files(subject_dir, export) if not p.is_file()]
    if missing:
        package = load_package(subject_dir / "avatar.npz")
        (gaussians,) = posed_gaussians(package, head, motion, [package.meta.get("reference_frame", 0)])
        for path in missing:
            write_splats(gaussians, path)


def write_site(subject_dir, head: HeadModel, clip: Clip) -> Path:
    """SUBJECT/web/: the viewer of SUBJECT/avatar.npz playing `clip`'s motion from its camera 0."""
    from sa0.export.package import load_package
    from sa0.export.web import export_site

    subject_dir = Path(subject_dir)
    return export_site(load_package(subject_dir / "avatar.npz"), head, clip, subject_dir / "web")


def _preview(head: HeadModel, result: RefineResult, clip: Clip, path: Path, fps: int = 10) -> None:
    import imageio.v3 as iio

    verts = _posed(head, clip)
    frames = []
    with torch.no_grad():
        for t, c in frames_of(clip)[:60]:
            out = render(bind(result.local, verts[t], head.faces, head.layout), camera_of(clip, t, c), torch.zeros(3))
            truth = target_of(clip, t, c, torch.zeros(3))
            frames.append((torch.cat((truth[0], out.image[0].clamp(0, 1)), 1) * 255).round().byte().numpy())
    iio.imwrite(path, np.stack(frames), fps=fps, codec="libx264", macro_block_size=1)


def write_subject_outputs(out_dir, subject: str, head: HeadModel, train: Clip, test: Clip | None,
                          result: RefineResult, extra_metrics: dict | None = None, web: Clip | None = None,
                          origin: dict | None = None, export: tuple[str, ...] = ()) -> Path:
    """Write OUT/<subject>/ atomically; returns its path. web: the clip whose motion web/ plays (None:
    no viewer). origin: where the avatar came from (e.g. "shards", "generator"), recorded in the
    package so later jobs need not be told again. export: formats of the reference frame besides
    the PLY (avatar.glb, avatar.spz; sa0.export.splats)."""
    from sa0.export.splats import write_splats

    final = Path(out_dir) / subject
    staging = Path(out_dir) / f".{subject}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        ref = result.reference_frame
        save_package(staging / "avatar.npz", result.local, head.layout, train.flame.shape[ref],
                     {"subject": subject, "reference_frame": ref, "flame_model": str(head.model_dir),
                      "head": head_name(head.model_dir), **(origin or {})})
        with torch.no_grad():
            verts = _posed(head, train)[ref]
            gaussians = bind(result.local, verts, head.faces, head.layout)
        export_ply(gaussians, staging / "avatar.ply")
        for path in export_files(staging, export):
            write_splats(gaussians, path)
        _preview(head, result, test if test is not None else train, staging / "preview.mp4")
        metrics = {**result.metrics, **(extra_metrics or {}), "subject": subject,
                   "lpips_note": "unavailable: LPIPS backbone weights cannot be loaded offline"}
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        if web is not None:
            write_site(staging, head, web)
        if final.exists():  # an incomplete leftover from an older sa0; complete ones are skipped upstream
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final

"""A small avatar and a driver clip where only the jaw moves, for the web viewer's tests."""

import dataclasses
from pathlib import Path

import numpy as np

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.shards import write_shards
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.export.package import save_package
from sa0.flame.synthetic import write_synthetic_flame
from sa0.head import load_head_model
from sa0.heads import head_name
from sa0.refine.reference import neutral_init

FRAMES = 8


def jaw_only(clip):
    """The clip with every FLAME field and camera held at frame 0 except the jaw, which opens
    steadily to 0.35 rad: between two frames only the mouth region changes."""
    t = clip.num_timesteps
    hold = lambda a: np.repeat(a[:1], t, axis=0)  # noqa: E731
    flame = clip.flame
    jaw = np.zeros_like(flame.jaw)
    jaw[:, 0] = np.linspace(0.0, 0.35, t)
    track = dataclasses.replace(flame, shape=hold(flame.shape), expression=hold(flame.expression),
                                global_rot=hold(flame.global_rot), neck=hold(flame.neck), eyes=hold(flame.eyes),
                                translation=hold(flame.translation), jaw=jaw.astype(np.float32))
    return dataclasses.replace(clip, flame=track, viewmats=hold(clip.viewmats), Ks=hold(clip.Ks))


def make_avatar(root: Path, uv: int = 32, res: int = 128, head_dir=None) -> dict:
    """root/flame (synthetic head; or the head in `head_dir`), root/data/demo (shards of one jaw-only
    subject), root/out/avatar.npz (that subject's neutral-init avatar at frame 0) -> paths and the head."""
    flame_dir = head_dir or write_synthetic_flame(root / "flame", seed=0)
    head = load_head_model(FlameConfig(model_dir=str(flame_dir)), LayoutConfig(uv_resolution=uv))
    (clip,) = synthetic_clips(head, "mono", 1, 1, FRAMES, 1, res, DOMAINS["studio"], seed=3)
    clip = jaw_only(clip)
    write_shards([clip], root / "data" / "demo")
    verts = head.pose_track(clip.flame.as_dict())
    (root / "out").mkdir(parents=True, exist_ok=True)
    avatar = save_package(root / "out" / "avatar.npz", neutral_init(head, verts[0], clip, 0), head.layout,
                          clip.flame.shape[0], {"subject": clip.meta.subject, "reference_frame": 0,
                                                             **({"head": head_name(head_dir)} if head_dir else {})})
    return {"flame": flame_dir, "shards": root / "data" / "demo", "avatar": avatar, "head": head, "clip": clip}

"""The clip contract: bad input is rejected with the source, field, frame and value named."""

import dataclasses

import numpy as np
import pytest

from sa0.data.schema import ClipError, validate_clip
from tests.data.clips import tiny_clip


def _with(clip, **changes):
    return dataclasses.replace(clip, **changes)


def _with_flame(clip, **changes):
    return dataclasses.replace(clip, flame=dataclasses.replace(clip.flame, **changes))


def test_valid_clip_passes():
    clip = tiny_clip()
    assert validate_clip(clip, "x.tar") is clip
    assert clip.num_timesteps == 3 and clip.num_cameras == 2 and clip.image_size == (8, 10)
    assert clip.meta.key == "tiny__s01__c0"


def test_nan_in_flame_names_field_frame_and_value():
    clip = tiny_clip()
    expr = clip.flame.expression.copy()
    expr[2, 4] = np.nan
    with pytest.raises(ClipError, match=r"shard-0\.tar: field 'flame.expression' has a non-finite value nan at frame 2"):
        validate_clip(_with_flame(clip, expression=expr), "shard-0.tar")


def test_camera_that_is_not_a_rotation():
    clip = tiny_clip()
    view = clip.viewmats.copy()
    view[1, 1, :3, :3] *= 1.5
    with pytest.raises(ClipError, match=r"'viewmats' at frame 1 camera 1 is not a rotation"):
        validate_clip(_with(clip, viewmats=view), "v.tar")
    mirror = clip.viewmats.copy()
    mirror[0, 0, 0, 0] = -1.0  # orthonormal but a reflection
    with pytest.raises(ClipError, match=r"det = -1"):
        validate_clip(_with(clip, viewmats=mirror), "v.tar")


def test_matte_of_the_wrong_size():
    clip = tiny_clip()
    with pytest.raises(ClipError, match=r"'mattes' must have shape \(3, 2, 8, 10\), got \(3, 2, 8, 9\)"):
        validate_clip(_with(clip, mattes=clip.mattes[..., :9]), "m.tar")


@pytest.mark.parametrize(
    "change,pattern",
    [
        (lambda c: _with(c, images=c.images[:0]), r"'images' must be a non-empty"),
        (lambda c: _with(c, images=c.images.astype(np.float32)), r"'images' has dtype float32"),
        (lambda c: _with(c, images=c.images[..., :1]), r"'images' must have shape"),
        (lambda c: _with_flame(c, eyes=c.flame.eyes[:, :3]), r"'flame.eyes' must have shape \(3, 6\)"),
        (lambda c: _with_flame(c, jaw=c.flame.jaw[:2]), r"'flame.jaw' must have shape \(3, 3\)"),
        (lambda c: _with(c, meta=dataclasses.replace(c.meta, split="training")), r"'split' must be one of"),
        (lambda c: _with(c, meta=dataclasses.replace(c.meta, schema_version=99)), r"'schema_version' is 99"),
        (lambda c: _with(c, face_boxes=c.face_boxes[..., [2, 1, 0, 3]]), r"'face_boxes' at frame 0 camera 0 is empty"),
    ],
)
def test_contract_violations(change, pattern):
    with pytest.raises(ClipError, match=pattern):
        validate_clip(change(tiny_clip()), "bad.tar")


def test_bad_intrinsics():
    clip = tiny_clip()
    K = clip.Ks.copy()
    K[0, 1, 1, 1] = -3.0
    with pytest.raises(ClipError, match=r"'Ks' at frame 0 camera 1 is not a pinhole"):
        validate_clip(_with(clip, Ks=K), "k.tar")

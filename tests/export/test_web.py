"""The web exporter without a browser: what the site holds decodes to the avatar and its posed
motion, and bad input is a clear error from jobs/export_web.py, never a broken site."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sa0.export.package import load_package
from sa0.export.web import SITE_FORMAT, SITE_VERSION, dequantise_motion
from tests.export.web_site import FRAMES, make_avatar

_spec = importlib.util.spec_from_file_location("export_web", Path(__file__).parents[2] / "jobs" / "export_web.py")
export_web = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(export_web)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return make_avatar(tmp_path_factory.mktemp("web"))


def _export(made, out, *extra):
    return export_web.main(["--avatar", str(made["avatar"]), "--shards", str(made["shards"]), "--flame-dir",
                            str(made["flame"]), "--out", str(out), *extra])


def test_the_site_decodes_to_the_avatar_and_its_posed_motion(made, tmp_path):
    assert _export(made, tmp_path / "site") == 0
    site = tmp_path / "site"
    meta = json.loads((site / "avatar.json").read_text())
    head, clip, package = made["head"], made["clip"], load_package(made["avatar"])
    assert (meta["format"], meta["version"]) == (SITE_FORMAT, SITE_VERSION)
    assert meta["gaussians"] == head.num_gaussians and meta["frames"] == FRAMES and meta["faces"] == len(head.faces)
    assert all((site / name).stat().st_size == size for name, size in meta["bytes"].items())
    assert (site / "index.html").is_file() and (site / "viewer.js").is_file()
    texels = np.fromfile(site / "gaussians.bin", np.float32).reshape(-1, 16)
    local = package.local
    np.testing.assert_allclose(texels[:, :3], local.positions.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(texels[:, 3], package.face_idx.astype(np.float32))
    np.testing.assert_allclose(texels[:, 4:8], torch.nn.functional.normalize(local.rotations, dim=-1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(texels[:, 8:11], torch.exp(local.log_scales).numpy(), rtol=1e-6)
    np.testing.assert_allclose(texels[:, 11], torch.sigmoid(local.opacity_logits).numpy(), rtol=1e-6)
    faces = np.fromfile(site / "faces.bin", np.float32).reshape(-1, 4)
    np.testing.assert_array_equal(faces[:, :3].astype(np.int64), head.faces.numpy())
    codes = np.fromfile(site / "motion.bin", np.uint16).reshape(FRAMES, -1, 3)
    posed = head.pose_track(clip.flame.as_dict(), shape=package.shape).numpy()
    low, high = meta["bbox"]
    step = (np.asarray(high) - np.asarray(low)) / 65535
    assert np.abs(dequantise_motion(codes, low, high) - posed).max() <= step.max()  # half a step, plus float error
    np.testing.assert_allclose(meta["cameras"][3]["viewmat"], clip.viewmats[3, 0].reshape(-1), rtol=1e-6)


def test_a_package_of_another_version_is_refused_naming_file_and_version(made, tmp_path, capsys):
    with np.load(made["avatar"]) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta_json"]))
    arrays["meta_json"] = np.array(json.dumps({**meta, "version": 99}))
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    assert export_web.main(["--avatar", str(old), "--shards", str(made["shards"]), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "old.npz" in err and "version 99" in err
    assert not (tmp_path / "site").exists()


def test_a_missing_avatar_shards_or_camera_is_a_clear_error(made, tmp_path, capsys):
    cases = [(["--avatar", str(tmp_path / "nope.npz")], "nope.npz: no such file"),
             (["--avatar", str(made["avatar"]), "--shards", str(tmp_path)], "holds no manifest.json"),
             (["--avatar", str(made["avatar"]), "--shards", str(made["shards"]), "--flame-dir", str(made["flame"]),
               "--camera", "3"], "camera 3 does not exist")]
    for args, message in cases:
        assert export_web.main([*args, "--out", str(tmp_path / "site")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "site").exists()

"""The standard formats out (.glb with KHR_gaussian_splatting, .spz, .ply): each read back by sa0 to the
same Gaussians within the format's stated quantisation; the files say what the specs require; the
export job's bad inputs are refused with nothing written."""

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sa0.export.gltf import EXTENSION, GltfError, encode_glb, read_glb
from sa0.export.splats import format_of, read_splats, write_splats
from sa0.export.spz import SpzError, decode_spz, encode_spz
from sa0.types import Gaussians

ROOT = Path(__file__).resolve().parents[2]


def _gaussians(n=2000, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(means=torch.randn(n, 3, generator=g) * 0.1,
                     quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
                     scales=torch.exp(torch.empty(n, 3).uniform_(-9, -2, generator=g)),
                     opacities=torch.rand(n, generator=g), colors=torch.rand(n, 3, generator=g))


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    dot = (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1).abs()
    return torch.rad2deg(2 * torch.acos(dot.clamp(max=1)))


def test_glb_round_trip_is_exact_and_the_file_says_what_the_extension_requires(tmp_path):
    g = _gaussians()
    path = write_splats(g, tmp_path / "a.glb")
    back = read_splats(path)
    for name in ("means", "scales", "opacities"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name))
    torch.testing.assert_close(back.colors, g.colors, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.quats, g.quats)
    data = path.read_bytes()
    magic, version, _length = struct.unpack_from("<III", data)
    assert (magic, version) == (0x46546C67, 2)  # "glTF", container version 2
    size, kind = struct.unpack_from("<II", data, 12)
    doc = json.loads(data[20:20 + size])
    assert kind == 0x4E4F534A and doc["extensionsUsed"] == [EXTENSION] and doc["asset"]["version"] == "2.0"
    (primitive,) = doc["meshes"][0]["primitives"]
    assert primitive["mode"] == 0 and primitive["extensions"][EXTENSION] == {"kernel": "ellipse",
                                                                             "colorSpace": "srgb_rec709_display"}
    assert {"POSITION", f"{EXTENSION}:ROTATION", f"{EXTENSION}:SCALE", f"{EXTENSION}:OPACITY",
            f"{EXTENSION}:SH_DEGREE_0_COEF_0"} <= set(primitive["attributes"])
    position = doc["accessors"][primitive["attributes"]["POSITION"]]
    assert np.allclose(position["min"], g.means.min(0).values) and np.allclose(position["max"], g.means.max(0).values)


@pytest.mark.parametrize("version, max_degrees", [(3, 0.3), (2, 15.0)])
def test_spz_round_trip_keeps_the_stated_quantisation(version, max_degrees):
    g = _gaussians(20_000)
    back = decode_spz(encode_spz(g, version=version))
    assert (back.means - g.means).abs().max() <= 0.5 / 4096 + 1e-7  # 24-bit fixed point, 12 fractional bits
    assert (back.opacities - g.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.colors - g.colors).abs().max() <= 0.5 / (255 * 0.15) * 0.2820948 + 1e-6
    assert (back.scales.log() - g.scales.log()).abs().max() <= 0.5 / 16 + 1e-5
    assert _angle_deg(back.quats, g.quats).max() < max_degrees


def test_spz_header_and_layout_follow_the_format():
    g = _gaussians(100)
    raw = gzip.decompress(encode_spz(g))
    magic, version, count, degree, bits, flags, reserved = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, version, count, degree, bits, flags, reserved) == (0x5053474E, 3, 100, 0, 12, 0, 0)
    assert len(raw) == 16 + 100 * (9 + 1 + 3 + 3 + 4)
    first = raw[16:19]
    x = int.from_bytes(first, "little", signed=True) / 4096
    assert abs(x - float(g.means[0, 0])) <= 0.5 / 4096 + 1e-7




def test_bad_files_and_formats_are_named(tmp_path):
    with pytest.raises(ValueError, match="format 'obj'"):
        format_of(tmp_path / "a.obj")
    with pytest.raises(SpzError, match="not a gzip stream"):
        decode_spz(b"nope", "x.spz")
    with pytest.raises(SpzError, match="magic"):
        decode_spz(gzip.compress(struct.pack("<IIIBBBB", 1, 3, 0, 0, 12, 0, 0)), "x.spz")
    with pytest.raises(SpzError, match="SPZ version 4"):
        decode_spz(gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 4, 0, 0, 12, 0, 0)), "x.spz")
    with pytest.raises(SpzError, match="expected"):
        decode_spz(gzip.compress(gzip.decompress(encode_spz(_gaussians(10)))[:-7]), "x.spz")  # truncated
    (tmp_path / "bad.glb").write_bytes(b"not a glb")
    with pytest.raises(GltfError, match="bad.glb"):
        read_glb(tmp_path / "bad.glb")
    assert encode_glb(_gaussians(5))[:4] == b"glTF"


@pytest.fixture(scope="module")
def avatar(tmp_path_factory, synthetic_dir):
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.data.shards import write_shards
    from sa0.data.synthetic import DOMAINS, synthetic_clips
    from sa0.head import load_head_model
    from sa0.refine.refine import RefineConfig
    from sa0.refine.subjects import run_subject

    root = tmp_path_factory.mktemp("export")
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=128))
    write_shards(synthetic_clips(head, "mono", 1, 1, 5, 1, 96, DOMAINS["studio"], seed=4), root / "shards")
    row = run_subject("subj0000", [str(root / "shards")], root / "out", FlameConfig(model_dir=str(synthetic_dir)),
                      LayoutConfig(uv_resolution=128), RefineConfig(steps=60, eval_every=0, images=0))
    assert row.status == "done"
    return root / "out" / "subj0000" / "avatar.npz"


def _export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "jobs" / "export.py"), *map(str, args)], capture_output=True,
                          text=True)


def test_the_export_job_writes_a_frame_and_a_sequence(avatar, tmp_path):
    done = _export("--avatar", avatar, "--format", "spz", "--out", tmp_path / "a.spz")
    assert done.returncode == 0, done.stderr[-1500:]
    assert "frame 2" in done.stdout or "frame" in done.stdout
    assert len(read_splats(tmp_path / "a.spz").means) > 100
    done = _export("--avatar", avatar, "--format", "glb", "--sequence", "--out", tmp_path / "seq")
    assert done.returncode == 0, done.stderr[-1500:]
    meta = json.loads((tmp_path / "seq" / "sequence.json").read_text())
    assert meta["count"] == 5 and meta["fps"] == 25 and [f["time"] for f in meta["frames"]][:2] == [0, 0.04]
    first, last = (read_splats(tmp_path / "seq" / meta["frames"][i]["file"]).means for i in (0, -1))
    assert (first - last).abs().max() > 1e-4  # the motion moves the head


def test_the_export_job_refuses_bad_input_and_writes_nothing(avatar, tmp_path):
    out = tmp_path / "x.glb"
    done = _export("--avatar", avatar, "--frame", 99, "--out", out)
    assert done.returncode == 2 and "--frame 99" in done.stderr and "frames 0..4" in done.stderr
    done = _export("--avatar", avatar, "--format", "obj", "--out", out)
    assert done.returncode == 2 and "format must be one of glb, spz, ply" in done.stderr
    with np.load(avatar) as data:
        arrays = dict(data)
    arrays["meta_json"] = np.array(json.dumps({**json.loads(str(arrays["meta_json"])), "version": 99}))
    np.savez(tmp_path / "old.npz", **arrays)
    done = _export("--avatar", tmp_path / "old.npz", "--out", out)
    assert done.returncode == 2 and "version 99" in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_an_avatars_spz_is_over_5x_smaller_than_its_ply(avatar, tmp_path):
    """Random numbers do not compress; a refined avatar does (its Gaussians sit on a smooth surface)."""
    for fmt in ("ply", "spz"):
        done = _export("--avatar", avatar, "--format", fmt, "--out", tmp_path / f"a.{fmt}")
        assert done.returncode == 0, done.stderr[-1500:]
    ply, spz = (tmp_path / "a.ply").stat().st_size, (tmp_path / "a.spz").stat().st_size
    assert ply > 5 * spz, (ply, spz)
    torch.testing.assert_close(read_splats(tmp_path / "a.spz").means, read_splats(tmp_path / "a.ply").means,
                               atol=0.5 / 4096 + 1e-7, rtol=0)

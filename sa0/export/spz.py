"""Niantic's SPZ (MIT), versions 3 (written by default) and 2: one gzip stream holding a 16-byte
header and, attribute by attribute for every splat, positions, alphas, colours, scales, rotations
(no higher harmonics: sa0's Gaussians carry degree-0 colour only).

Layout (little-endian), as the format's README and its reference reader define it:

  header     magic 0x5053474e ("NGSP"), version, N (uint32 each); SH degree 0, fractional bits,
             flags (bit 0: antialiased), reserved 0 (uint8 each)
  positions  N x 3 signed 24-bit fixed point, `fractional_bits` (12: 1/4096 m steps, +-2 km)
  alphas     N bytes, sigmoid(opacity) x 255
  colours    N x 3 bytes, the degree-0 harmonic f_dc as 0.5 + 0.15 f_dc (x 255)
  scales     N x 3 bytes, (log scale + 10) x 16
  rotations  version 3: N x 4 bytes, "smallest three" (see _rotations_v3); version 2: N x 3 bytes,
             the unit quaternion's x, y, z (w >= 0, rebuilt by the reader) as q x 127.5 + 127.5

Version 2 is the one the glTF compression draft (KHR_gaussian_splatting_compression_spz_2) pins;
version 3 keeps rotations far better (measured on random unit quaternions: 0.23 deg worst, against
12 deg for version 2, whose rebuilt w is poor when w is small). Spark reads both.

Quantisation (what a round trip keeps): positions 0.12 mm, opacity 1/510, colour 0.0037 (about
one 8-bit level), log-scales 1/32 (3 % of the scale), rotations 0.23 deg (version 3).

Coordinates: SPZ stores RUB (x right, y up, z toward the viewer; OpenGL and three.js). sa0's world
is the head model's (FLAME's: x to the subject's left, i.e. the viewer's right when facing it, y up,
z out of the face toward the viewer): the same axes, so nothing is converted.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from sa0.fsutil import write_bytes_atomic
from sa0.types import Gaussians

MAGIC, VERSION, VERSIONS = 0x5053474E, 3, (2, 3)
FRACTIONAL_BITS = 12
COLOR_SCALE = 0.15
SH_C0 = 0.28209479177387814
_HEADER = struct.Struct("<IIIBBBB")


class SpzError(ValueError):
    """A file that is not an SPZ this reader understands (naming the file and the field)."""


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _rotations_v2(quats: np.ndarray) -> np.ndarray:
    """(N, 4) unit wxyz -> (N, 3) bytes: x, y, z of the quaternion with w >= 0."""
    quats = np.where(quats[:, :1] < 0, -quats, quats)
    return _u8(quats[:, 1:] * 127.5 + 127.5)


def _rotations_v3(quats: np.ndarray) -> np.ndarray:
    """(N, 4) unit wxyz -> (N, 4) bytes: "smallest three" in one little-endian uint32: the index of the
    largest |component| of (x, y, z, w) in the top 2 bits, then the other three in x, y, z, w order,
    10 bits each: a sign bit (set when the component's sign differs from the largest's) over a
    9-bit magnitude in units of sqrt(1/2) / 511."""
    xyzw = quats[:, [1, 2, 3, 0]]
    largest = np.abs(xyzw).argmax(-1)
    flip = np.take_along_axis(xyzw, largest[:, None], 1) < 0
    packed = largest.astype(np.uint32)
    for i in range(4):
        other = largest != i
        negative = (xyzw[:, i] < 0) != flip[:, 0]
        magnitude = np.minimum(np.floor(511 * np.abs(xyzw[:, i]) / np.sqrt(0.5) + 0.5), 511).astype(np.uint32)
        field = (negative.astype(np.uint32) << 9) | magnitude
        packed = np.where(other, (packed << 10) | field, packed)
    return packed.astype("<u4").view(np.uint8).reshape(-1, 4)


def _decode_v3(data: np.ndarray) -> np.ndarray:
    packed = data.reshape(-1, 4).copy().view("<u4")[:, 0].astype(np.int64)
    largest = packed >> 30
    xyzw = np.zeros((len(packed), 4))
    for i in (3, 2, 1, 0):
        other = largest != i
        value = np.sqrt(0.5) * (packed & 511) / 511 * np.where((packed >> 9) & 1, -1.0, 1.0)
        xyzw[:, i] = np.where(other, value, 0.0)
        packed = np.where(other, packed >> 10, packed)
    rest = np.sqrt(np.clip(1.0 - (xyzw ** 2).sum(-1), 0.0, None))
    np.put_along_axis(xyzw, largest[:, None], rest[:, None], 1)
    return xyzw[:, [3, 0, 1, 2]]


def encode_spz(gaussians: Gaussians, fractional_bits: int = FRACTIONAL_BITS, version: int = VERSION) -> bytes:
    """Unbatched RGB Gaussians (sa0's world) -> the bytes of a .spz (version 2 or 3)."""
    if version not in VERSIONS:
        raise ValueError(f"SPZ version {version}: sa0 writes versions {VERSIONS}")
    if gaussians.is_batched or gaussians.colors.shape[-1] != 3:
        raise ValueError(f"SPZ needs unbatched RGB Gaussians, got colours {tuple(gaussians.colors.shape)}")
    g = {k: v.detach().cpu().double().numpy() for k, v in vars(gaussians).items()}
    n = len(g["means"])
    fixed = np.round(g["means"] * (1 << fractional_bits)).astype(np.int64)
    if np.abs(fixed).max(initial=0) >= 1 << 23:
        raise ValueError(f"positions beyond +-{(1 << 23) / (1 << fractional_bits):.0f} m do not fit SPZ's 24 bits")
    positions = (fixed & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(n, 3, 4)[..., :3]
    f_dc = (g["colors"] - 0.5) / SH_C0
    quats = g["quats"] / np.linalg.norm(g["quats"], axis=-1, keepdims=True)
    rotations = _rotations_v2(quats) if version == 2 else _rotations_v3(quats)
    body = b"".join(a.tobytes() for a in (
        positions, _u8(g["opacities"] * 255), _u8((0.5 + COLOR_SCALE * f_dc) * 255),
        _u8((np.log(np.maximum(g["scales"], 1e-30)) + 10) * 16), rotations))
    header = _HEADER.pack(MAGIC, version, n, 0, fractional_bits, 0, 0)
    return gzip.compress(header + body, mtime=0)


def write_spz(gaussians: Gaussians, path) -> Path:
    """Write a .spz atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encode_spz(gaussians))
    return path


def decode_spz(data: bytes, where: str = "spz") -> Gaussians:
    """The bytes of a version-2 .spz (degree-0 or higher harmonics; the higher ones are skipped)."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise SpzError(f"{where}: not a gzip stream ({exc})") from None
    if len(raw) < _HEADER.size:
        raise SpzError(f"{where}: {len(raw)} bytes, shorter than the 16-byte header")
    magic, version, n, degree, bits, _flags, _ = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise SpzError(f"{where}: magic {magic:#x}, expected {MAGIC:#x} (NGSP)")
    if version not in VERSIONS:
        raise SpzError(f"{where}: SPZ version {version}; sa0 reads versions {VERSIONS}")
    sizes = {"positions": 9 * n, "alphas": n, "colors": 3 * n, "scales": 3 * n, "rotations": (version + 1) * n}
    expected = _HEADER.size + sum(sizes.values()) + 3 * n * ((degree + 1) ** 2 - 1)
    if len(raw) != expected:
        raise SpzError(f"{where}: {len(raw)} bytes after decompression, expected {expected} for {n} splats of "
                       f"harmonic degree {degree}")
    parts, at = {}, _HEADER.size
    for name, size in sizes.items():
        parts[name] = np.frombuffer(raw, np.uint8, size, at)
        at += size
    p = parts["positions"].reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    if version == 2:
        xyz = parts["rotations"].reshape(n, 3) / 127.5 - 1.0
        quats = np.concatenate((np.sqrt(np.clip(1.0 - (xyz ** 2).sum(-1, keepdims=True), 0.0, None)), xyz), -1)
    else:
        quats = _decode_v3(parts["rotations"])
    f_dc = (parts["colors"].reshape(n, 3) / 255.0 - 0.5) / COLOR_SCALE
    to = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731  (a writable copy)
    return Gaussians(means=to(fixed / (1 << bits)), quats=to(quats),
                     scales=to(np.exp(parts["scales"].reshape(n, 3) / 16.0 - 10.0)),
                     opacities=to(parts["alphas"] / 255.0), colors=to(f_dc * SH_C0 + 0.5))


def read_spz(path) -> Gaussians:
    return decode_spz(Path(path).read_bytes(), str(path))

"""docs/format.md's binding, written out in numpy from the document alone, equals sa0's bind(): an
engine plugin written against the document poses the Gaussians exactly as sa0 does."""

import numpy as np
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.gaussians import bind, init_local_gaussians
from sa0.head import load_head_model
from sa0.types import LocalGaussians


def _quat_of(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions w, x, y, z (w >= 0), by the trace method."""
    w = np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.copysign(np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2, m[..., 1, 0] - m[..., 0, 1])
    return np.stack((w, x, y, z), -1)


def _hamilton(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack((aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw), -1)


def _document_binding(p, q_local, log_s, face_idx, v, faces):
    tri = v[faces[face_idx]]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    a0 = e1 / np.linalg.norm(e1, axis=-1, keepdims=True)
    n = np.cross(e1, e2)
    a1 = n / np.linalg.norm(n, axis=-1, keepdims=True)
    a2 = np.cross(a0, a1)
    rot = np.stack((a0, a1, a2), -1)
    centre = tri.mean(1)
    scale = 0.5 * (np.linalg.norm(e1, axis=-1) + np.abs((a2 * e2).sum(-1)))
    mean = (rot @ p[..., None])[..., 0] * scale[:, None] + centre
    q = _hamilton(_quat_of(rot), q_local / np.linalg.norm(q_local, axis=-1, keepdims=True))
    return mean, q, np.exp(log_s) * scale[:, None]


def test_the_documented_binding_equals_bind(synthetic_dir):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))
    rest = head.flame.v_template
    local = init_local_gaussians(rest, head.faces, head.layout)
    g = torch.Generator().manual_seed(0)
    local = LocalGaussians(local.positions + 0.2 * torch.randn(local.positions.shape, generator=g),
                           torch.nn.functional.normalize(torch.randn(local.rotations.shape, generator=g), dim=-1),
                           local.log_scales, local.colors, local.opacity_logits)
    posed = rest + 0.003 * torch.randn(rest.shape, generator=g, dtype=rest.dtype)  # any deformation
    ours = bind(local, posed, head.faces, head.layout)
    mean, q, s = _document_binding(*(t.double().numpy() for t in (local.positions, local.rotations, local.log_scales)),
                                   head.layout.face_idx.numpy(), posed.double().numpy(), head.faces.numpy())
    np.testing.assert_allclose(ours.means.double().numpy(), mean, atol=1e-6)
    np.testing.assert_allclose(ours.scales.double().numpy(), s, rtol=1e-5)
    same = np.abs((ours.quats.double().numpy() * q).sum(-1))  # q and -q are one rotation
    np.testing.assert_allclose(same, 1.0, atol=1e-5)

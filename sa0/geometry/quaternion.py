"""Unit quaternions in (w, x, y, z) order with the Hamilton product.

All functions broadcast over leading dimensions and are differentiable.
"""

from __future__ import annotations

import torch

_EPS = 1e-12


def quat_normalize(q: torch.Tensor) -> torch.Tensor:
    """Normalise (..., 4) quaternions; a zero quaternion becomes the identity (1, 0, 0, 0)."""
    norm_sq = (q * q).sum(-1, keepdim=True)
    identity = torch.zeros_like(q)
    identity[..., 0] = 1.0
    safe = torch.where(norm_sq > _EPS, q, identity)
    return safe * torch.rsqrt((safe * safe).sum(-1, keepdim=True))


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a (x) b of (..., 4) wxyz quaternions: rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) wxyz quaternions (normalised here) -> (..., 3, 3) rotation matrices."""
    w, x, y, z = quat_normalize(q).unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) proper rotation matrices -> (..., 4) unit wxyz quaternions with w >= 0.

    Shepperd's method: four candidate formulas, each well conditioned where its component is
    the largest; the best-conditioned one is picked per matrix, so gradients stay finite.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * (w^2, x^2, y^2, z^2), clamped so the square root below stays differentiable.
    four_sq = torch.stack(
        (
            1 + m00 + m11 + m22,
            1 + m00 - m11 - m22,
            1 - m00 + m11 - m22,
            1 - m00 - m11 + m22,
        ),
        dim=-1,
    )
    root = torch.sqrt(four_sq.clamp_min(1e-8))  # 2 * |component|
    candidates = torch.stack(
        (
            torch.stack((root[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, root[..., 1] ** 2, m10 + m01, m02 + m20), -1),
            torch.stack((m02 - m20, m10 + m01, root[..., 2] ** 2, m21 + m12), -1),
            torch.stack((m10 - m01, m02 + m20, m21 + m12, root[..., 3] ** 2), -1),
        ),
        dim=-2,
    ) / (2.0 * root[..., :, None])
    best = four_sq.argmax(dim=-1)
    index = best[..., None, None].expand(best.shape + (1, 4))
    q = torch.gather(candidates, -2, index).squeeze(-2)
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0)
    return quat_normalize(q)

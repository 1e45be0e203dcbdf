"""EWA projection of 3D Gaussians to the image plane (3DGS; shared by every CPU backend).

Camera model: pinhole, OpenCV world-to-camera (sa0.geometry.camera). Semantics follow gsplat's
`fully_fused_projection`: the Jacobian is evaluated at the mean clamped to 1.3x the field of view,
eps2d is added to the 2D covariance, and the screen extent per axis is E * sqrt(cov_axis) with the
opacity-aware E = min(3.33, sqrt(2 ln(255 o))): every pixel where a Gaussian's alpha reaches the
1/255 threshold lies inside its box, so binning into tiles changes no pixel. (A plain 3-sigma box
would cut off alphas up to 0.011 o.) Entries with radii == 0 are culled (behind the near plane,
beyond far, below 1/255 opacity, or off-screen); their other outputs are finite but meaningless.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sa0.geometry.quaternion import quat_to_matrix

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_EXTENT = 3.33


@dataclass(frozen=True)
class Projected:
    """Per camera b and Gaussian n: means2d (B, N, 2) px, cov2d (B, N, 3) (xx, xy, yy),
    conics (B, N, 3) (xx, xy, yy) of the inverse, depths (B, N), radii (B, N, 2) int32."""

    means2d: torch.Tensor
    cov2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        return (self.radii > 0).all(-1)


@torch.no_grad()
def _radii(xx, yy, means2d, z, in_depth, opacities, width: int, height: int) -> torch.Tensor:
    """(.., N, 2) int32 pixel half-extents of each Gaussian's footprint; 0 where it is culled (outside
    the depth range, below the alpha threshold everywhere, off screen or degenerate)."""
    if opacities is None:
        extent = torch.full_like(z, MAX_EXTENT)
        visible = torch.ones_like(in_depth)
    else:
        o = opacities.detach().expand(z.shape)
        visible = o >= ALPHA_THRESHOLD
        extent = torch.sqrt(2.0 * torch.log(o.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp(max=MAX_EXTENT)
    rx = torch.ceil(extent * xx.detach().clamp_min(0).sqrt())
    ry = torch.ceil(extent * yy.detach().clamp_min(0).sqrt())
    mx, my = means2d.detach().unbind(-1)
    on_screen = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
    keep = in_depth & visible & on_screen & (rx > 0) & (ry > 0)
    return (torch.stack((rx, ry), -1) * keep[..., None]).to(torch.int32)


def project(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor | None,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
) -> Projected:
    """Project N Gaussians (means (N, 3) or (B, N, 3), ...) into B cameras.

    opacities None gives the fixed 3.33-sigma extent (gsplat's reference without opacities).
    """
    rot_view, trans = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]  # (B, 1, 3, 3), (B, 1, 3)
    p_cam = (rot_view @ means[..., None])[..., 0] + trans  # (B, N, 3)
    x, y, z = p_cam.unbind(-1)
    in_depth = (z > near) & (z < far)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))
    fx, fy = Ks[:, None, 0, 0], Ks[:, None, 1, 1]
    cx, cy = Ks[:, None, 0, 2], Ks[:, None, 1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    u = torch.maximum(torch.minimum(x / z_safe, (width - cx) / fx + 0.3 * tan_x), -(cx / fx + 0.3 * tan_x))
    v = torch.maximum(torch.minimum(y / z_safe, (height - cy) / fy + 0.3 * tan_y), -(cy / fy + 0.3 * tan_y))
    zero = torch.zeros_like(z)
    jac = torch.stack(
        (fx / z_safe, zero, -fx * u / z_safe, zero, fy / z_safe, -fy * v / z_safe), -1
    ).reshape(z.shape + (2, 3))
    # Sigma_2D = (J W R S)(J W R S)^T with W the view rotation, R S the Gaussian's axes.
    axes = quat_to_matrix(quats) * scales[..., None, :]  # (.., N, 3, 3)
    m = jac @ rot_view @ axes  # (B, N, 2, 3)
    cov = m @ m.transpose(-1, -2)
    xx, xy, yy = cov[..., 0, 0] + eps2d, cov[..., 0, 1], cov[..., 1, 1] + eps2d
    det = (xx * yy - xy * xy).clamp_min(1e-10)
    conics = torch.stack((yy / det, -xy / det, xx / det), -1)
    means2d = torch.stack((fx * x / z_safe + cx, fy * y / z_safe + cy), -1)

    radii = _radii(xx, yy, means2d, z, in_depth, opacities, width, height)
    return Projected(
        means2d=means2d,
        cov2d=torch.stack((xx, xy, yy), -1),
        conics=conics,
        depths=z,
        radii=radii,
    )


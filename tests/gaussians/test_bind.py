"""Binding invariants (METHOD §1): rigid motions and uniform scaling carry the Gaussians along."""

import pytest
import torch
from scipy.spatial.transform import Rotation

from sa0.gaussians import bind, face_frames, init_local_gaussians, texel_points
from sa0.geometry import quat_to_matrix
from sa0.types import LocalGaussians


@pytest.fixture
def local(mesh, layout64):
    verts, faces = mesh
    g = torch.Generator().manual_seed(0)
    n = layout64.num_gaussians
    base = init_local_gaussians(verts, faces, layout64)
    return LocalGaussians(
        positions=base.positions + 0.1 * torch.randn(n, 3, generator=g, dtype=verts.dtype),
        rotations=torch.randn(n, 4, generator=g, dtype=verts.dtype),
        log_scales=base.log_scales,
        colors=torch.rand(n, 5, generator=g, dtype=verts.dtype),
        opacity_logits=torch.randn(n, generator=g, dtype=verts.dtype),
    )


def test_rigid_motion_moves_gaussians_rigidly(mesh, layout64, local):
    verts, faces = mesh
    rot = torch.from_numpy(Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix())
    shift = torch.tensor([0.1, -0.2, 0.3], dtype=verts.dtype)
    before = bind(local, verts, faces, layout64)
    after = bind(local, verts @ rot.T + shift, faces, layout64)
    torch.testing.assert_close(after.means, before.means @ rot.T + shift)
    torch.testing.assert_close(quat_to_matrix(after.quats), rot @ quat_to_matrix(before.quats))
    torch.testing.assert_close(after.scales, before.scales)
    torch.testing.assert_close(after.opacities, before.opacities)
    torch.testing.assert_close(after.colors, before.colors)


def test_uniform_scaling_scales_means_and_scales(mesh, layout64, local):
    verts, faces = mesh
    before = bind(local, verts, faces, layout64)
    after = bind(local, 2.5 * verts, faces, layout64)
    torch.testing.assert_close(after.means, 2.5 * before.means)
    torch.testing.assert_close(after.scales, 2.5 * before.scales)
    torch.testing.assert_close(quat_to_matrix(after.quats), quat_to_matrix(before.quats))


def test_zero_local_offset_sits_on_the_face_centroid(mesh, layout64, local):
    verts, faces = mesh
    zero = LocalGaussians(torch.zeros_like(local.positions), local.rotations, local.log_scales,
                          local.colors, local.opacity_logits)
    g = bind(zero, verts, faces, layout64)
    _, centres, _ = face_frames(verts, faces)
    torch.testing.assert_close(g.means, centres[layout64.face_idx])


def test_initialised_gaussians_sit_on_texel_points_as_flat_discs(mesh, layout64):
    verts, faces = mesh
    g = bind(init_local_gaussians(verts, faces, layout64), verts, faces, layout64)
    torch.testing.assert_close(g.means, texel_points(verts, faces, layout64))
    assert (g.scales[:, 1] < g.scales[:, 0]).all()  # thin along the face normal
    assert torch.allclose(g.opacities, torch.full_like(g.opacities, 0.9))


def test_batched_vertices_give_batched_gaussians_and_gradients(mesh, layout64, local):
    verts, faces = mesh
    batch = torch.stack((verts, verts * 1.1)).requires_grad_(True)
    positions = local.positions.clone().requires_grad_(True)
    moved = LocalGaussians(positions, local.rotations, local.log_scales, local.colors, local.opacity_logits)
    g = bind(moved, batch, faces, layout64)
    assert g.means.shape == (2, layout64.num_gaussians, 3) and g.colors.shape == (2, layout64.num_gaussians, 5)
    (g.means.sum() + g.quats.sum() + g.scales.sum()).backward()
    assert torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0
    assert positions.grad.abs().sum() > 0


def test_count_mismatch_is_reported(mesh, layout64, local):
    verts, faces = mesh
    short = LocalGaussians(local.positions[:-1], local.rotations[:-1], local.log_scales[:-1],
                           local.colors[:-1], local.opacity_logits[:-1])
    with pytest.raises(ValueError, match="layout has"):
        bind(short, verts, faces, layout64)

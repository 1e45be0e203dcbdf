"""UV texel layout: validity, barycentrics, determinism."""

import numpy as np
import pytest
import torch

from sa0.gaussians import build_uv_layout, texel_points


def test_every_valid_texel_centre_lies_in_its_uv_triangle(uv, layout64):
    vt, ft = uv
    r = layout64.resolution
    centre_u = (layout64.cols.numpy() + 0.5) / r
    centre_v = 1.0 - (layout64.rows.numpy() + 0.5) / r
    corners = vt[ft[layout64.face_idx.numpy()]]  # (N, 3, 2)
    recon = (layout64.bary.numpy()[..., None] * corners).sum(1)
    np.testing.assert_allclose(recon[:, 0], centre_u, atol=1e-6)
    np.testing.assert_allclose(recon[:, 1], centre_v, atol=1e-6)
    assert (layout64.bary >= 0).all()
    torch.testing.assert_close(layout64.bary.sum(-1), torch.ones(layout64.num_gaussians, dtype=torch.float64))


def test_index_map_and_mask_agree(layout64):
    idx = layout64.index_map[layout64.rows, layout64.cols]
    torch.testing.assert_close(idx, torch.arange(layout64.num_gaussians))
    assert int(layout64.mask.sum()) == layout64.num_gaussians


def test_unit_square_of_two_triangles_covers_every_texel():
    vt = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    ft = np.array([[0, 1, 2], [0, 2, 3]])
    layout = build_uv_layout(vt, ft, 16)
    assert layout.num_gaussians == 256
    one = build_uv_layout(vt, ft[:1], 16)  # a single triangle: the lower-right half
    assert 16 * 15 / 2 <= one.num_gaussians <= 16 * 17 / 2
    on_diagonal = layout.cols == layout.resolution - 1 - layout.rows  # texel centres with u == v
    assert on_diagonal.sum() == 16 and (layout.face_idx[on_diagonal] == 0).all()  # lowest face wins


def test_count_grows_with_resolution_and_is_deterministic(uv):
    counts = [build_uv_layout(*uv, r).num_gaussians for r in (32, 64, 128)]
    assert counts[0] < counts[1] < counts[2]
    assert 3.5 < counts[2] / counts[1] < 4.5
    again = build_uv_layout(*uv, 64)
    assert again.num_gaussians == counts[1]


def test_bad_resolution():
    with pytest.raises(ValueError, match="resolution"):
        build_uv_layout(np.zeros((3, 2)), np.zeros((1, 3), dtype=int), 1)


def test_texel_points_lie_on_their_faces(mesh, layout64):
    verts, faces = mesh
    pts = texel_points(verts, faces, layout64)
    tri = verts[faces[layout64.face_idx]]
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    dist = ((pts - tri[:, 0]) * torch.nn.functional.normalize(normal, dim=-1)).sum(-1)
    assert dist.abs().max() < 1e-12
    batched = texel_points(verts.expand(2, -1, -1), faces, layout64)
    torch.testing.assert_close(batched[1], pts)

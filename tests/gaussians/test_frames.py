"""Per-face frames: orthonormal, right-handed, safe on degenerate faces, METHOD §1 scale."""

import torch

from sa0.gaussians import face_frames


def test_frames_are_rotations_with_normal_as_second_axis(mesh):
    verts, faces = mesh
    rot, centre, scale = face_frames(verts, faces)
    eye = torch.eye(3, dtype=verts.dtype).expand_as(rot)
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(len(faces), dtype=verts.dtype))
    v = verts[faces]
    normal = torch.nn.functional.normalize(torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1), dim=-1)
    torch.testing.assert_close(rot[..., 1], normal)
    torch.testing.assert_close(centre, v.mean(1))
    assert (scale > 0).all()


def test_scale_of_a_right_triangle():
    verts = torch.tensor([[0.0, 0, 0], [2.0, 0, 0], [0.0, 1.0, 0]])
    rot, centre, scale = face_frames(verts, torch.tensor([[0, 1, 2]]))
    # |v1 - v0| = 2; the height of v2 over the first edge, along a2, is 1.
    assert torch.isclose(scale, torch.tensor([1.5])).all()
    torch.testing.assert_close(rot[0, :, 0], torch.tensor([1.0, 0, 0]))
    torch.testing.assert_close(rot[0, :, 1], torch.tensor([0.0, 0, 1]))


def test_degenerate_faces_get_finite_orthonormal_frames_and_gradients():
    verts = torch.tensor(
        [[0.0, 0, 0], [0.0, 0, 0], [0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [0.0, 0, 1]], requires_grad=True
    )
    faces = torch.tensor([[0, 1, 2], [0, 3, 4], [3, 3, 5]])  # point, collinear, repeated vertex
    rot, centre, scale = face_frames(verts, faces)
    assert torch.isfinite(rot).all() and torch.isfinite(scale).all()
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, torch.eye(3).expand(3, 3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(3))
    (rot.sum() + scale.sum() + centre.sum()).backward()
    assert torch.isfinite(verts.grad).all()

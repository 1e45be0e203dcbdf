"""The mesh rasteriser (ground truth for the novel-view benchmark) against a per-pixel loop."""

import numpy as np
import pytest

from sa0.render.mesh import interpolate, rasterize, sample_texture, textured

K = np.array([[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]])
VIEW = np.eye(4)


def brute_force(verts, faces, view, K, h, w):
    """Every pixel x every face: inside test on the projected triangle, nearest perspective depth."""
    cam = verts @ view[:3, :3].T + view[:3, 3]
    pix = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    face = np.full((h, w), -1)
    depth = np.full((h, w), np.inf)
    for y in range(h):
        for x in range(w):
            p = np.array([x + 0.5, y + 0.5])
            for fi, (a, b, c) in enumerate(faces):
                m = np.array([pix[b] - pix[a], pix[c] - pix[a]]).T
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                u, v = np.linalg.solve(m, p - pix[a])
                bary = np.array([1 - u - v, u, v])
                if (bary < -1e-12).any():
                    continue
                z = 1 / (bary / cam[[a, b, c], 2]).sum()
                if z < depth[y, x]:
                    depth[y, x], face[y, x] = z, fi
    return face, depth


@pytest.fixture
def scene():
    rng = np.random.default_rng(1)
    verts = np.concatenate([rng.uniform([-0.4, -0.3, 1.0], [0.4, 0.3, 2.0], (12, 3))])
    faces = rng.integers(0, 12, (10, 3))
    faces = faces[np.array([len(set(f)) == 3 for f in faces])]
    return verts, faces


def test_matches_a_per_pixel_loop(scene):
    verts, faces = scene
    frags = rasterize(verts, faces, VIEW, K, 24, 32)
    face, depth = brute_force(verts, faces, VIEW, K, 24, 32)
    agree = (frags.face == face)
    assert agree.mean() > 0.99  # pixel centres exactly on a shared edge may go either way
    both = agree & (face >= 0)
    np.testing.assert_allclose(frags.depth[both], depth[both], rtol=1e-9)


def test_barycentrics_are_perspective_correct():
    verts = np.array([[-1.0, -1.0, 2.0], [1.0, -1.0, 4.0], [0.0, 1.0, 3.0]])
    frags = rasterize(verts, np.array([[0, 1, 2]]), VIEW, K, 24, 32)
    points = interpolate(frags, np.array([[0, 1, 2]]), verts)
    m = frags.mask
    assert m.sum() > 50
    cam = points[m]
    pix = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + K[:2, 2]
    ys, xs = np.nonzero(m)
    np.testing.assert_allclose(pix, np.stack((xs + 0.5, ys + 0.5), 1), atol=1e-9)  # the point each pixel sees
    np.testing.assert_allclose(frags.bary[m].sum(1), 1.0)


def test_texture_lookup_and_behind_camera():
    tex = np.zeros((4, 4, 3))
    tex[0, :] = 1.0  # top row (v near 1)
    assert sample_texture(tex, np.array([[0.5, 0.99]]))[0, 0] == pytest.approx(1.0)
    assert sample_texture(tex, np.array([[0.5, 0.01]]))[0, 0] == pytest.approx(0.0)
    verts = np.array([[-1.0, -1.0, -2.0], [1.0, -1.0, -2.0], [0.0, 1.0, -2.0]])
    frags = rasterize(verts, np.array([[0, 1, 2]]), VIEW, K, 24, 32)
    assert not frags.mask.any()
    image = textured(frags, np.zeros((1, 3, 2)), tex, background=0.25)
    assert (image == 0.25).all()

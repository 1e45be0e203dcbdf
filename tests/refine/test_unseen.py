"""Unseen regions: visibility from the training views, the colour fill, the novel-view silhouette term
and its face-only weighting."""

import dataclasses

import numpy as np
import pytest
import torch

from sa0.eval.novel_view import exact_capture, truth_subject
from sa0.gaussians import init_local_gaussians, texel_points
from sa0.refine.refine import RefineConfig, frames_of
from sa0.refine.silhouette import face_vertices, novel_masks, silhouette_loss
from sa0.refine.unseen import fill_unseen_colors, gaussian_visibility
from sa0.types import LocalGaussians


@pytest.fixture(scope="module")
def capture():
    truth = truth_subject(9100, frames=10, size=96, texture_size=256)
    return exact_capture(truth, 48)


def test_visibility_sees_the_face_and_not_the_back_of_the_head(capture):
    head, train = capture.head, capture.train
    verts = head.pose_track(train.flame.as_dict())
    vis = gaussian_visibility(head, verts, train, frames_of(train))
    points = texel_points(head.flame.v_template, head.faces, head.layout)
    back = (points[:, 2] < -0.05) & (points[:, 0].abs() < 0.05)  # the back of the head
    front = (points[:, 2] > 0.09) & (points[:, 1].abs() < 0.04)  # nose, cheeks, brows
    assert back.any() and front.any()
    assert vis[back].max() == 0
    assert vis[front].median() > 0.7
    assert 0.2 < (vis > 0).float().mean() < 0.9


def test_fill_takes_well_seen_neighbours_colours():
    points = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.1, 0, 0], [0.9, 0, 0]])
    colors = torch.tensor([[1.0, 0, 0], [0.0, 0, 1], [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]])
    vis = torch.tensor([0.9, 0.9, 0.0, 0.1])
    filled = fill_unseen_colors(colors, points, vis, below=0.3, neighbours=1)
    torch.testing.assert_close(filled[:2], colors[:2])  # well-seen ones keep theirs
    torch.testing.assert_close(filled[2], colors[0])  # unseen: the nearest well-seen colour
    torch.testing.assert_close(filled[3], colors[1])


def test_silhouette_term_penalises_gaussians_that_spill_out_of_novel_views(capture):
    head, train = capture.head, capture.train
    verts = head.pose_track(train.flame.as_dict())
    masks = novel_masks(head, verts, train, frames_of(train), max_frames=2, size=64)
    assert masks.coverage.shape == (8, 64, 64) and 0.05 < masks.coverage.mean() < 0.6
    local = init_local_gaussians(verts[0], head.faces, head.layout)
    row = {f.name: getattr(local, f.name) for f in dataclasses.fields(LocalGaussians)}
    fat = dict(row, log_scales=row["log_scales"] + 1.0)
    cfg = RefineConfig().render
    losses = [float(silhouette_loss(head, r, verts, masks, step, cfg)) for r in (row, fat) for step in range(8)]
    assert np.mean(losses[8:]) > 2 * np.mean(losses[:8])


def test_face_zone_is_the_front_of_the_face_on_any_pose(capture):
    head = capture.head
    rest = head.flame.v_template
    zone = face_vertices(head, rest)
    x, y, z = rest.unbind(-1)
    nose = int(torch.argmax(z))  # the most forward vertex: the nose tip
    assert zone[nose]
    assert not zone[(z < -0.05).numpy()].any()  # nothing on the back of the head (the mouth interior reaches -0.034)
    assert not zone[(y > y[nose] + 0.12).numpy()].any()  # nor the top of the scalp
    assert 0.05 < zone.mean() < 0.5
    turned = rest @ torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]) + torch.tensor([0.3, -0.1, 2.0])
    assert (face_vertices(head, turned) == zone).mean() > 0.999  # measured from the head's own landmarks


def test_face_only_matte_counts_the_face_and_the_pixels_in_front_of_it(capture):
    head, train = capture.head, capture.train
    verts = head.pose_track(train.flame.as_dict())
    face = novel_masks(head, verts, train, frames_of(train), yaws=(50.0,), max_frames=1, size=64, band=False)
    bald = novel_masks(head, verts, train, frames_of(train), yaws=(50.0,), max_frames=1, size=64, face_only=False)
    torch.testing.assert_close(face.coverage, bald.coverage)
    assert (bald.weight == 1).all()
    inside = face.coverage[0] > 0.99
    assert 0.1 < float(face.weight[0][inside].mean()) < 0.9  # the face counts, the scalp and neck do not
    outside = face.coverage[0] == 0
    cols = torch.nonzero(face.coverage[0].sum(0) > 0)[:, 0]
    left, right = face.weight[0][:, :int(cols.min())], face.weight[0][:, int(cols.max()) + 1:]
    # turned by +50 degrees the face is on one side of the image, the back of the head on the other
    # (beside the face; above and below it the scalp and the neck are nearer)
    back, front = sorted((float(left.mean()), float(right.mean())))
    assert back == 0.0 and front > 0.5
    assert 0.2 < float(face.weight[0][outside].mean()) < 0.8


def test_smoothing_pairs_are_uv_neighbours_and_weigh_the_less_seen(capture):
    from sa0.refine.unseen import smooth_loss, smooth_weights, uv_neighbour_pairs

    layout = capture.head.layout
    pairs = uv_neighbour_pairs(layout)
    rows, cols = layout.rows[pairs], layout.cols[pairs]
    steps = (rows[:, 0] - rows[:, 1]).abs() + (cols[:, 0] - cols[:, 1]).abs()
    assert (steps == 1).all() and len(pairs) > layout.num_gaussians  # each valid texel has ~2 right/down neighbours
    vis = torch.zeros(layout.num_gaussians)
    vis[pairs[0, 0]] = 1.0
    w = smooth_weights(vis, pairs, 0.5)
    assert w[0] == 1.0  # its neighbour is unseen
    colors = torch.rand(layout.num_gaussians, 3)
    assert smooth_loss(torch.full_like(colors, 0.4), pairs, w) == 0
    assert smooth_loss(colors, pairs, w) > 0


def _haloed(clip, pixels: int):
    """The clip with every matte grown by `pixels` (hair and clothes around the whole head)."""
    from scipy.ndimage import binary_dilation

    grown = np.stack([[binary_dilation(m > 127, iterations=pixels) for m in cams] for cams in clip.mattes])
    return dataclasses.replace(clip, mattes=(grown * 255).astype(np.uint8))


def test_bands_measure_how_far_hair_reaches_beyond_the_outline(capture):
    from sa0.refine.silhouette import CRANIUM, NECK

    head, train = capture.head, capture.train
    verts = head.pose_track(train.flame.as_dict())
    frames = frames_of(train)
    bald = novel_masks(head, verts, train, frames, yaws=(50.0,), max_frames=2, size=96)
    hairy = novel_masks(head, verts, _haloed(train, 6), frames, yaws=(50.0,), max_frames=2, size=96)
    depth = float(np.linalg.norm(train.viewmats[0, 0, :3, 3]))
    px = depth / float(train.Ks[0, 0, 0, 0])  # metres per pixel at the head's depth
    assert bald.bands[CRANIUM] < 1.5 * px and bald.bands[NECK] < 1.5 * px  # the truth is bald: soft edges only
    assert 5 * px < hairy.bands[CRANIUM] < 7.5 * px and 5 * px < hairy.bands[NECK] < 7.5 * px
    # beside the back of the head (the image half away from the face), 2-4 pixels off the outline, alpha must be
    # 0 on the bald head; the haloed one leaves ~6 pixels free there
    from scipy.ndimage import distance_transform_edt

    old = novel_masks(head, verts, train, frames, yaws=(50.0,), max_frames=2, size=96, band=False)
    cover = bald.coverage[0].numpy()
    dist = distance_transform_edt(cover == 0)
    ring = (cover == 0) & (dist > 2) & (dist <= 4)  # beyond the bald head's soft edge, inside the halo
    cols = np.nonzero(cover.sum(0) > 0)[0]
    middle = (cols.min() + cols.max()) // 2
    halves = (np.arange(96) < middle, np.arange(96) >= middle)
    back = min(halves, key=lambda h: float(old.weight[0].numpy()[:, h].mean()))
    ring_back = ring & back[None]
    assert ring_back.sum() > 20
    assert float(old.weight[0].numpy()[ring_back].mean()) < 0.1  # before: the back of the head's surroundings free
    assert float(bald.weight[0].numpy()[ring_back].mean()) > 0.9
    assert float(hairy.weight[0].numpy()[ring_back].mean()) < 0.1
    inside = cover > 0.99  # inside the outline the scalp counts now too, the neck still does not
    assert float(old.weight[0][inside].mean()) < float(bald.weight[0][inside].mean()) < 1.0

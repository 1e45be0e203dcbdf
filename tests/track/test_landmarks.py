"""The landmark embedding reader and the landmark-only FLAME layer against the full layer."""

import numpy as np
import pytest
import torch

from sa0.flame import FlameFileError, FlameLayer, load_flame_assets
from sa0.flame.landmarks import (
    LEFT_IRIS,
    RIGHT_IRIS,
    LandmarkLayer,
    landmarks_from_vertices,
    load_mediapipe_embedding,
    with_irises,
)
from sa0.types import FlameParams


def test_landmark_layer_matches_the_full_flame_layer_in_values_and_gradients(flame_dir):
    flame = FlameLayer(load_flame_assets(flame_dir), 40, 20, dtype=torch.float64)
    emb = with_irises(load_mediapipe_embedding(flame_dir), flame)
    fast = LandmarkLayer(flame, emb)
    g = torch.Generator().manual_seed(1)
    widths = ((40, 1.0), (20, 1.0), (3, 0.3), (3, 0.1), (3, 0.2), (6, 0.3), (3, 0.1))
    make = lambda: FlameParams(*(torch.randn(3, n, generator=g, dtype=torch.float64) * s  # noqa: E731
                                 for n, s in widths))
    p = make()
    leaves = [t.requires_grad_() for t in (p.shape, p.expression, p.jaw, p.eyes, p.global_rot)]
    verts, joints = flame.forward_with_joints(p)
    slow = landmarks_from_vertices(verts, flame.faces, emb)
    got, got_joints = fast.forward_with_joints(p)
    torch.testing.assert_close(got, slow, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_joints, joints, rtol=0, atol=1e-12)
    w = torch.randn(got.shape, generator=g, dtype=torch.float64)
    g_fast = torch.autograd.grad((got * w).sum(), leaves)
    g_slow = torch.autograd.grad((slow * w).sum(), leaves)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_a_baked_identity_poses_as_the_full_layers_and_one_pass_gives_landmarks_and_jacobian(flame_dir):
    flame = FlameLayer(load_flame_assets(flame_dir), 40, 20, dtype=torch.float64)
    layer = LandmarkLayer(flame, with_irises(load_mediapipe_embedding(flame_dir), flame))
    g = torch.Generator().manual_seed(4)
    widths = ((40, 1.0), (20, 1.0), (3, 0.3), (3, 0.1), (3, 0.2), (6, 0.3), (3, 0.1))
    p = FlameParams(*(torch.randn(3, n, generator=g, dtype=torch.float64) * s for n, s in widths))
    p = FlameParams(p.shape[:1].expand(3, -1), *(getattr(p, f) for f in ("expression", "global_rot", "neck", "jaw",
                                                                          "eyes", "translation")))
    no_shape = FlameParams(p.shape[:, :0], p.expression, p.global_rot, p.neck, p.jaw, p.eyes, p.translation)
    baked, baked_layer = flame.with_identity(p.shape[0]), layer.with_identity(p.shape[0])
    assert baked.num_shape == baked_layer.num_shape == 0 and flame.num_shape == layer.num_shape == 40  # copies
    torch.testing.assert_close(baked(no_shape), flame(p), rtol=0, atol=1e-12)
    for a, b in zip(baked_layer.forward_with_joints(no_shape), layer.forward_with_joints(p)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    jac = layer.expression_jacobian(p)
    torch.testing.assert_close(baked_layer.expression_jacobian(no_shape), jac, rtol=0, atol=1e-12)
    points, first = layer.forward_and_expression_jacobian(p, rows=2)
    torch.testing.assert_close(points, layer(p), rtol=0, atol=0)
    torch.testing.assert_close(first, jac[:2], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"shape must be \(40,\)"):
        flame.with_identity(torch.zeros(3))


def test_synthetic_embedding_covers_face_features_and_irises_sit_on_the_eyeballs(flame_dir, head, embedding):
    ids = set(embedding.ids.tolist())
    assert {33, 133, 263, 362, 61, 291, 1, 152, 10, RIGHT_IRIS, LEFT_IRIS} <= ids
    with torch.no_grad():
        rest = landmarks_from_vertices(head.flame.v_template[None], head.flame.faces, embedding)[0].numpy()
    at = {i: rest[k] for k, i in enumerate(embedding.ids)}
    assert at[263][0] > at[362][0] > 0 > at[133][0] > at[33][0]  # MediaPipe's left = subject's left = +x
    assert at[10][1] > at[168][1] > at[1][1] > at[13][1] > at[152][1]  # top to bottom
    assert at[1][2] > at[33][2]  # nose in front of the eyes
    for iris, joint in ((LEFT_IRIS, 3), (RIGHT_IRIS, 4)):
        k = list(embedding.ids).index(iris)
        corners = head.flame.faces[embedding.face_idx[k]]
        vertex = corners[int(np.argmax(embedding.bary[k]))]
        assert head.flame.lbs_weights[vertex, joint] > 0.5


def test_embedding_reader_names_file_and_key(tmp_path, flame_dir):
    with pytest.raises(FlameFileError, match="mediapipe_landmark_embedding.npz: not found"):
        load_mediapipe_embedding(tmp_path)
    with np.load(f"{flame_dir}/mediapipe_landmark_embedding.npz") as data:
        good = {k: data[k] for k in data.files}
    np.savez(tmp_path / "mediapipe_landmark_embedding.npz", **{k: v for k, v in good.items() if k != "landmark_indices"})
    with pytest.raises(FlameFileError, match="missing key 'landmark_indices'"):
        load_mediapipe_embedding(tmp_path)
    bad = dict(good, lmk_face_idx=good["lmk_face_idx"] + 10**6)
    np.savez(tmp_path / "mediapipe_landmark_embedding.npz", **bad)
    with pytest.raises(FlameFileError, match="lmk_face_idx' must lie in"):
        load_mediapipe_embedding(tmp_path, num_faces=5000)
    bad = dict(good, landmark_indices=np.full_like(good["landmark_indices"], 500))
    np.savez(tmp_path / "mediapipe_landmark_embedding.npz", **bad)
    with pytest.raises(FlameFileError, match="landmark_indices' must be distinct MediaPipe ids"):
        load_mediapipe_embedding(tmp_path)


def test_moving_a_landmark_layer_copies_it_and_leaves_the_callers_where_it_was(head, embedding):
    """fit_landmarks and the photometric stage take the caller's layer to their device; nn.Module.to
    alone would move the caller's in place (then a CPU pass after a CUDA fit fails). Meta device."""
    import torch

    from sa0.flame.landmarks import LandmarkLayer

    layer = LandmarkLayer(head.flame, embedding)
    assert layer.moved("cpu") is layer
    moved = layer.moved("meta")
    assert moved is not layer and moved.v_template.device.type == "meta"
    assert layer.v_template.device == torch.device("cpu") and layer.shapedirs.device == torch.device("cpu")

"""Example building: fixed shapes, masks, and intrinsics that still project correctly after crop+resize."""

import numpy as np

from sa0.data.examples import ExampleConfig, build_example, crop_resize
from sa0.data.sampling import SamplerConfig
from tests.data.clips import indexed, tiny_clip


def _project(K, point):
    p = K @ point
    return p[:2] / p[2]


def test_crop_resize_keeps_projection_consistent():
    h, w = 60, 100
    image = np.zeros((h, w, 3), dtype=np.uint8)
    K = np.array([[80.0, 0, 47.0], [0, 80.0, 33.0], [0, 0, 1]])
    point = np.array([0.1, -0.05, 1.0])
    u, v = _project(K, point)
    image[int(v), int(u)] = 255  # mark the pixel the point projects into
    out, K2, box = crop_resize(image, K, np.array([30.0, 10.0, 70.0, 50.0]), 30)
    u2, v2 = _project(K2, point)
    # Same continuous location: crop offset 20 px in x, then scale 30/60.
    np.testing.assert_allclose([u2, v2], [(u - 20) * 0.5, v * 0.5], atol=1e-9)
    assert out[int(v2), int(u2)].max() > 0  # the marked pixel landed where the new intrinsics say
    np.testing.assert_allclose(box, [5.0, 5.0, 25.0, 25.0])


def test_phase1_and_phase2_examples_have_fixed_shapes(tmp_path):
    rng = np.random.default_rng(0)
    mono = tiny_clip(timesteps=6, cameras=1, height=20, width=24, subject="mono")
    multi = tiny_clip(timesteps=2, cameras=5, height=20, width=24, subject="multi")
    reader, index = indexed([mono, multi], tmp_path)
    seen_k = set()
    for clip, phase in ((mono, 1), (multi, 2)):
        cfg = ExampleConfig(phase=phase, image_size=16, sampler=SamplerConfig(max_sources=3))
        for _ in range(20):
            ex = build_example(reader, index[clip.meta.key], rng, 1.0, cfg)
            assert ex["src_images"].shape == (3, 16, 16, 3) and ex["src_images"].dtype == np.uint8
            assert ex["tgt_image"].shape == (16, 16, 3) and ex["tgt_matte"].shape == (16, 16)
            assert ex["src_Ks"].shape == (3, 3, 3) and ex["src_flame_expression"].shape == (3, 10)
            assert ex["tgt_flame_eyes"].shape == (6,)
            k = int(ex["src_mask"].sum())
            assert ex["src_mask"][:k].all() and not ex["src_mask"][k:].any()
            seen_k.add(k)
    assert seen_k == {1, 2, 3}


def test_index_path_equals_in_memory_clip_path(tmp_path):
    """The shard reader's example equals example_from_frames on the in-memory clip (same frames)."""
    from sa0.data.examples import choose_frames, example_from_frames

    clip = tiny_clip(timesteps=5, cameras=3, height=20, width=24)
    reader, index = indexed([clip], tmp_path)
    cfg = ExampleConfig(phase=2, image_size=16, sampler=SamplerConfig(max_sources=3))
    for seed in range(5):
        sources, target = choose_frames(index[clip.meta.key], np.random.default_rng(seed), 1.0, cfg)
        ours = build_example(reader, index[clip.meta.key], np.random.default_rng(seed), 1.0, cfg)
        twin = example_from_frames(clip, sources, target, 3, 16)
        assert ours.keys() == twin.keys()
        for k in ours:
            np.testing.assert_array_equal(ours[k], twin[k], err_msg=k)

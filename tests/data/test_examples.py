"""Example building: fixed shapes, masks, and intrinsics that still project correctly after crop+resize."""

import numpy as np

from sa0.data.examples import ExampleConfig, build_example, crop_resize
from sa0.data.sampling import SamplerConfig
from sa0.data.shards import clip_to_sample
from tests.data.clips import tiny_clip


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


def test_phase1_and_phase2_examples_have_fixed_shapes():
    rng = np.random.default_rng(0)
    mono = clip_to_sample(tiny_clip(timesteps=6, cameras=1, height=20, width=24))
    multi = clip_to_sample(tiny_clip(timesteps=2, cameras=5, height=20, width=24))
    seen_k = set()
    for sample, phase in ((mono, 1), (multi, 2)):
        cfg = ExampleConfig(phase=phase, image_size=16, sampler=SamplerConfig(max_sources=3))
        for _ in range(20):
            ex = build_example(sample, "x.tar", rng, 1.0, cfg)
            assert ex["src_images"].shape == (3, 16, 16, 3) and ex["src_images"].dtype == np.uint8
            assert ex["tgt_image"].shape == (16, 16, 3) and ex["tgt_matte"].shape == (16, 16)
            assert ex["src_Ks"].shape == (3, 3, 3) and ex["src_flame_expression"].shape == (3, 10)
            assert ex["tgt_flame_eyes"].shape == (6,)
            k = int(ex["src_mask"].sum())
            assert ex["src_mask"][:k].all() and not ex["src_mask"][k:].any()
            seen_k.add(k)
    assert seen_k == {1, 2, 3}

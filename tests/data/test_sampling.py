"""Source/target samplers: ranges, uniqueness, annealing behaviour, phase-2 mix."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sa0.data.sampling import SamplerConfig, sample_phase1, sample_phase2, temperature_at, view_directions


def test_temperature_anneals_over_the_first_quarter():
    cfg = SamplerConfig()
    assert temperature_at(0, 1000, cfg) == pytest.approx(2.0)
    assert temperature_at(125, 1000, cfg) == pytest.approx(1.25)
    assert temperature_at(250, 1000, cfg) == pytest.approx(0.5)
    assert temperature_at(900, 1000, cfg) == pytest.approx(0.5)


def test_view_directions_follow_camera_and_head():
    view = np.tile(np.eye(4), (2, 1, 1, 1))
    rot = np.array([[0.0, 0.0, 0.0], [0.0, np.pi / 2, 0.0]])
    d = view_directions(view, rot)
    np.testing.assert_allclose(d[0, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(d[1, 0], Rotation.from_rotvec(rot[1]).as_matrix()[:, 2], atol=1e-12)


def _clip_meta(num=40, seed=0):
    rng = np.random.default_rng(seed)
    yaw = np.linspace(-0.8, 0.8, num)
    dirs = np.stack((np.sin(yaw), np.zeros(num), np.cos(yaw)), -1)[:, None]
    expr = rng.normal(size=(num, 10))
    return dirs, expr


def test_phase1_draws_distinct_frames_and_k_in_range():
    dirs, expr = _clip_meta()
    rng = np.random.default_rng(0)
    ks = set()
    for _ in range(300):
        sources, target = sample_phase1(rng, dirs, expr, 1.0, SamplerConfig())
        frames = [t for t, _ in sources] + [target[0]]
        assert len(set(frames)) == len(frames)  # target held out, sources distinct
        ks.add(len(sources))
    assert ks == {1, 2, 3, 4}


def test_low_temperature_prefers_dissimilar_first_sources():
    dirs, expr = _clip_meta()
    cfg = SamplerConfig(expr_weight=0.0)
    gaps = {}
    for temperature in (2.0, 0.05):
        rng = np.random.default_rng(1)
        gap = []
        for _ in range(400):
            sources, target = sample_phase1(rng, dirs, expr, temperature, cfg)
            gap.append(abs(sources[0][0] - target[0]))
        gaps[temperature] = np.mean(gap)
    assert gaps[0.05] > gaps[2.0] + 5  # frames far apart in time here are far apart in view


def test_phase2_mixes_cross_camera_and_cross_time():
    rng = np.random.default_rng(2)
    cross_cam = 0
    for _ in range(1000):
        sources, target = sample_phase2(rng, 10, 16, SamplerConfig())
        frames = sources + [target]
        assert len(set(frames)) == len(frames)
        if len({t for t, _ in frames}) == 1 and len(frames) > 1:
            cross_cam += 1
        else:
            assert len({t for t, _ in frames}) == len(frames)
    assert 0.70 < cross_cam / 1000 < 0.80


def test_small_clips_limit_k_and_refuse_impossible_draws():
    rng = np.random.default_rng(3)
    sources, _ = sample_phase2(rng, 1, 2, SamplerConfig())  # one timestep, two cameras
    assert len(sources) == 1
    with pytest.raises(ValueError, match="at least 2 frames"):
        sample_phase1(rng, np.ones((1, 1, 3)), np.zeros((1, 5)), 1.0, SamplerConfig())
    with pytest.raises(ValueError, match="max_sources"):
        SamplerConfig(max_sources=0)

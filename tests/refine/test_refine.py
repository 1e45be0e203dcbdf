"""Refinement core: reference-frame rule, frozen layout, held-out PSNR gain, aspect penalty effect."""

import numpy as np
import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model
from sa0.refine import RefineConfig, choose_reference_frame, refine_subject
from sa0.refine.subjects import slice_timesteps


def test_reference_frame_rule():
    rng = np.random.default_rng(0)
    jaw = np.array([[0.3, 0, 0], [0.1, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0, 0]])
    assert choose_reference_frame(jaw, rng) == 1  # earliest of the tied minima
    pinned = np.concatenate([np.zeros((3, 3)), np.linspace(0.1, 1.0, 27)[:, None] * [1, 0, 0]])
    picks = {choose_reference_frame(pinned, np.random.default_rng(s)) for s in range(40)}
    assert picks <= {0, 1, 2} and len(picks) > 1  # random among the bottom 10% (3 of 30 frames)


@pytest.fixture(scope="module")
def subject(synthetic_dir):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))
    (clip,) = list(synthetic_clips(head, "mono", 1, 1, 10, 1, 64, DOMAINS["studio"], seed=3))
    return head, slice_timesteps(clip, slice(0, 8)), slice_timesteps(clip, slice(8, 10))


@pytest.mark.slow
def test_refinement_keeps_the_layout_and_raises_held_out_psnr(subject):
    head, train, test = subject
    n, binding = head.num_gaussians, head.layout.face_idx.clone()
    result = refine_subject(head, train, RefineConfig(steps=200, scale_freeze_steps=50, log_every=50), test=test)
    assert result.local.positions.shape == (n, 3) and result.local.colors.shape[0] == n
    assert torch.equal(head.layout.face_idx, binding) and head.num_gaussians == n
    assert result.metrics["final"]["psnr"] > result.metrics["initial"]["psnr"] + 5.0
    assert result.metrics["final"]["ssim"] > result.metrics["initial"]["ssim"]
    assert np.isfinite([h["loss"] for h in result.history]).all()


@pytest.mark.slow
def test_aspect_penalty_holds_max_ar_down(subject):
    """With a deliberately aggressive scale learning rate, Gaussians stretch; the screen-space
    aspect penalty keeps maxAR near its budget, and without it maxAR ends clearly higher."""
    head, train, _ = subject
    base = dict(steps=300, scale_freeze_steps=50, log_every=50, lr_log_scales=0.1, lr_rotations=0.02)
    full = refine_subject(head, train, RefineConfig(**base)).metrics["max_ar"]
    no_aspect = refine_subject(head, train, RefineConfig(use_aspect=False, **base)).metrics["max_ar"]
    assert full < 4.5 and no_aspect > full * 1.3


def test_config_validation():
    with pytest.raises(ValueError, match="log_scale_min < log_scale_max"):
        RefineConfig(log_scale_min=1.0, log_scale_max=0.0)
    with pytest.raises(ValueError, match="lr_colors"):
        RefineConfig(lr_colors=-1.0)


@pytest.mark.slow
def test_ablation_ordering_in_novel_views_no_clamp_far_above_no_aspect_above_full(subject):
    """The paper's ordering (Table 9: no clamp >> no aspect penalty > full), measured as maxAR from
    orbit views the monocular training camera never had. Spikes that grow along the training view
    direction have no projected aspect in training renders, so only the 3D clamp bounds them (and
    sa0's unseen-region prior, switched off here: it holds poorly seen Gaussians near their start).
    Aggressive scale/rotation learning rates make spikes appear within 1,000 steps. The margin is
    machine-dependent (float order of the native kernel's build): no clamp / full measured 1.21-1.45
    over seeds 0-2 at 1,000 and 2,000 steps on an AMD EPYC machine, > 1.4 on the one it was written on."""
    head, train, _ = subject
    base = dict(steps=1000, scale_freeze_steps=100, log_every=100, lr_log_scales=0.1, lr_rotations=0.02,
                unseen_fill_below=0.0, unseen_prior_weight=0.0)  # the paper's mechanism alone (Table 9)
    novel = {name: refine_subject(head, train, RefineConfig(**base, **change)).metrics["max_ar_novel"]
             for name, change in (("full", {}), ("no_clamp", {"use_clamp": False}), ("no_aspect", {"use_aspect": False}))}
    assert novel["no_clamp"] > 1.15 * novel["full"], novel
    assert novel["no_clamp"] > novel["no_aspect"] > novel["full"], novel

"""Refinement starting from an exported generator (RANDOMLY INITIALISED encoder and untrained
weights: these tests check the plumbing and the layout contract, not avatar quality)."""

import numpy as np
import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model
from sa0.model import Generator, ModelConfig
from sa0.model.inference import load_trained_generator, predict_local, predict_locals, spread_sources
from sa0.refine import RefineConfig, refine_subject
from sa0.refine.refine import evaluate
from sa0.refine.subjects import slice_timesteps
from sa0.train.checkpoint import export_generator

TINY = ModelConfig(image_size=56, unet_channels=(8, 16), dpt_channels=8, out_channels=8, residual_hidden=8,
                   max_sources=2)


@pytest.fixture(scope="module")
def setup(synthetic_dir, tmp_path_factory):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))
    torch.manual_seed(0)
    model = Generator(TINY, head)
    with torch.no_grad():  # make the untrained heads produce visibly non-neutral output
        for conv in model.heads.heads.values():
            conv.bias.normal_(0, 0.05)
    from dataclasses import asdict

    path = export_generator(tmp_path_factory.mktemp("gen") / "generator_phase2", model.state_dict(),
                            {"phase": 2, "step": 0, "model": asdict(TINY), "layout": {"uv_resolution": 32},
                             "image_size": 64})
    (clip,) = list(synthetic_clips(head, "mono", 1, 1, 10, 1, 64, DOMAINS["studio"], seed=4))
    return head, path, model, slice_timesteps(clip, slice(0, 8)), slice_timesteps(clip, slice(8, 10))


def test_spread_sources_starts_at_the_reference_and_never_repeats():
    assert spread_sources(10, 3, 1) == [(3, 0)]
    picks = spread_sources(10, 3, 4)
    assert picks[0] == (3, 0) and len(picks) == 4 and len(set(picks)) == 4
    assert spread_sources(2, 0, 4) == [(0, 0), (1, 0)]  # a short clip gives fewer sources


def test_random_init_encoder_export_loads_and_predicts_the_same_as_the_model(setup):
    head, path, model, train, _ = setup
    trained = load_trained_generator(path, head)
    assert trained.image_size == 64 and not trained.model.training
    for name, value in model.state_dict().items():
        assert torch.equal(trained.model.state_dict()[name], value), name
    local = predict_local(trained, train, spread_sources(train.num_timesteps, 2, 2), (2, 0))
    assert local.positions.shape == (head.num_gaussians, 3) and torch.isfinite(local.positions).all()
    assert (local.positions - model.base_positions).abs().max() > 1e-3  # the heads' output, not the rest pose


def test_random_init_encoder_batched_prediction_equals_one_forward_per_target(setup):
    """The fast path (encode the sources once, decode targets in chunks) against its slow twin: one full
    generator forward per target on the example sources + target, as in training."""
    from sa0.data.examples import example_from_frames
    from sa0.model.batch import prepare_batch

    head, path, _, train, _ = setup
    trained = load_trained_generator(path, head)
    sources, targets = [(0, 0), (5, 0)], [(1, 0), (3, 0), (6, 0)]
    fast = predict_locals(trained, train, sources, targets, chunk=2)
    for target, local in zip(targets, fast):
        example = example_from_frames(train, sources, target, TINY.max_sources, trained.image_size)
        batch = {k: torch.from_numpy(np.array(v))[None] for k, v in example.items()}
        with torch.no_grad():
            slow = trained.model(prepare_batch(batch, head).inputs).local
        for name in ("positions", "rotations", "log_scales", "colors", "opacity_logits"):
            torch.testing.assert_close(getattr(local, name), getattr(slow, name)[0], rtol=1e-5, atol=1e-6)
    assert not torch.equal(fast[0].positions, fast[2].positions)  # targets differ in view and expression


def test_random_init_encoder_refinement_starts_from_the_generator_prediction(setup):
    head, path, _, train, test = setup
    trained = load_trained_generator(path, head)
    result = refine_subject(head, train, RefineConfig(steps=2, log_every=1, seed=0), test=test, generator=trained)
    ref = result.reference_frame
    expected = predict_local(trained, train, spread_sources(train.num_timesteps, ref, 2), (ref, 0))
    assert result.metrics["initial"] == evaluate(head, expected, test, RefineConfig().render)
    neutral = refine_subject(head, train, RefineConfig(steps=2, log_every=1, seed=0), test=test)
    assert neutral.metrics["initial"] != result.metrics["initial"]
    assert result.local.positions.shape == (head.num_gaussians, 3)
    # one layout object for both stages: the generator predicts exactly the texels the refiner optimises
    assert trained.model.head.layout is head.layout and type(trained.model.head.layout).__name__ == "UVLayout"


def test_generator_with_another_layout_is_refused(setup, synthetic_dir):
    _, path, _, _, _ = setup
    other = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=16))
    with pytest.raises(ValueError, match="layout.uv_resolution=32.*has 16: build the head at UV resolution 32"):
        load_trained_generator(path, other)

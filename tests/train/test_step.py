"""The single-device generator step: all loss terms named, and the tiny model (RANDOMLY
INITIALISED encoder, frozen) overfits a few synthetic clips."""

import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.data.examples import ExampleConfig, build_example
from sa0.data.sampling import SamplerConfig
from sa0.data.synthetic import DOMAINS, synthetic_clips
from sa0.head import load_head_model
from sa0.model import Generator, ModelConfig
from sa0.train import LossConfig, compute_losses, prepare_batch
from tests.data.clips import indexed


@pytest.fixture(scope="module")
def setup(synthetic_dir, tmp_path_factory):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))
    clips = list(synthetic_clips(head, "mono", 2, 1, 6, 1, 64, DOMAINS["studio"], seed=11))
    reader, index = indexed(clips, tmp_path_factory.mktemp("shards"))
    indices = list(index.values())
    cfg = ExampleConfig(phase=1, image_size=64, sampler=SamplerConfig(max_sources=2))
    import numpy as np

    rng = np.random.default_rng(0)
    examples = [build_example(reader, indices[i % 2], rng, 1.0, cfg) for i in range(4)]
    batch = {k: torch.as_tensor(np.stack([e[k] for e in examples])) for k in examples[0]}
    return head, batch


def _model(head):
    torch.manual_seed(0)
    return Generator(ModelConfig(unet_channels=(16, 24), dpt_channels=16, out_channels=16, residual_hidden=16), head)


def test_all_terms_are_named_and_finite(setup):
    head, batch = setup
    model = _model(head)
    prepared = prepare_batch(batch, head)
    anchor = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    total, terms, shown = compute_losses(model, prepared, LossConfig(phase=2), anchor=anchor)
    assert set(terms) == {"l1", "ms_ssim", "box", "tv_position", "tv_scale", "jacobian", "delta", "l2_sp"}
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    assert terms["l2_sp"] == 0.0 and terms["delta"] == 0.0  # at the anchor; residual head zero at init
    assert shown["image"].shape == (4, 64, 64, 3) and shown["alpha"].shape == (4, 64, 64, 1)
    total.backward()
    assert model.heads.heads["colors"].weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_random_init_encoder_tiny_model_overfits_a_few_clips(setup):
    head, batch = setup
    model = _model(head)
    prepared = prepare_batch(batch, head)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    cfg = LossConfig()
    losses = []
    for _ in range(60):
        total, terms, _ = compute_losses(model, prepared, cfg)
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(terms["l1"])
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_bad_loss_config():
    with pytest.raises(ValueError, match="LossConfig.jacobian must be >= 0"):
        LossConfig(jacobian=-1.0)
    with pytest.raises(ValueError, match="phase"):
        LossConfig(phase=3)


@pytest.mark.gpu
def test_random_init_encoder_generator_step_on_cuda_matches_cpu_and_bf16_stays_close(setup, synthetic_dir):
    """The tiny model (RANDOMLY INITIALISED encoder) on CUDA: fp32 loss terms match the CPU's
    (gsplat vs the native kernel, cuDNN vs CPU convolutions), the bf16-autocast step stays within
    bf16's precision of fp32, and its gradients are finite and reach the trainable heads."""
    head_cpu, batch = setup
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32)).to("cuda")
    cpu_model = _model(head_cpu)
    model = _model(head)
    model.load_state_dict(cpu_model.state_dict())
    model.to("cuda")
    cfg = LossConfig(phase=1)
    _, want, _ = compute_losses(cpu_model, prepare_batch(batch, head_cpu), cfg)
    prepared = prepare_batch(batch, head, "cuda")
    total32, got, _ = compute_losses(model, prepared, cfg)
    for name in ("l1", "ms_ssim", "box"):
        assert abs(got[name] - want[name]) <= 1e-2 * abs(want[name]) + 1e-5, (name, got[name], want[name])
    total16, terms16, shown = compute_losses(model, prepared, cfg, bf16=True)
    assert shown["image"].dtype == torch.float32
    assert abs(total16.item() - total32.item()) <= 5e-2 * abs(total32.item())
    total16.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.heads.heads["colors"].weight.grad.abs().sum() > 0

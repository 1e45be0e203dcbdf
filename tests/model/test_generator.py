"""Generator pieces. Every test here uses a RANDOMLY INITIALISED ViT encoder (no weights can be
downloaded here): they check structure and invariances, not learned quality."""

import math

import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.geometry import look_at
from sa0.head import load_head_model
from sa0.model import Generator, GeneratorInputs, ModelConfig
from sa0.model.heads import harmonic_encoding
from sa0.model.uv import masked_mean, project_points, sample_at, uv_warp
from sa0.gaussians import texel_points


@pytest.fixture(scope="module")
def head(synthetic_dir):
    return load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))


@pytest.fixture(scope="module")
def generator(head):
    torch.manual_seed(0)
    return Generator(ModelConfig(unet_channels=(16, 24), dpt_channels=16, out_channels=16, residual_hidden=16), head).eval()


def _inputs(head, b=2, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    angles = torch.linspace(-0.4, 0.4, b * k)
    eyes = torch.stack((0.7 * torch.sin(angles), torch.full_like(angles, 0.03), 0.7 * torch.cos(angles)), -1)
    view = look_at(eyes, torch.zeros(b * k, 3)).view(b, k, 4, 4)
    Ks = torch.tensor([[220.0, 0, 48], [0, 220.0, 48], [0, 0, 1]]).expand(b, k, 3, 3)
    verts = head.flame.v_template.float().expand(b, k, -1, -1)
    return GeneratorInputs(torch.rand(b, k, 3, 96, 96, generator=g), torch.ones(b, k, dtype=torch.bool), verts, view, Ks,
                           view[:, 0], torch.randn(b, 112, generator=g))


def test_random_init_encoder_permuting_sources_changes_nothing(generator, head):
    x = _inputs(head)
    perm = torch.tensor([2, 0, 1])
    y = GeneratorInputs(x.src_images[:, perm], x.src_mask[:, perm], x.src_verts[:, perm], x.src_viewmats[:, perm],
                        x.src_Ks[:, perm], x.tgt_viewmat, x.tgt_condition)
    with torch.no_grad():
        a, b = generator(x).local, generator(y).local
    for name in ("positions", "rotations", "log_scales", "colors", "opacity_logits"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6)


def test_random_init_encoder_k1_equals_masked_padding(generator, head):
    x = _inputs(head)
    one = GeneratorInputs(x.src_images[:, :1], x.src_mask[:, :1], x.src_verts[:, :1], x.src_viewmats[:, :1],
                          x.src_Ks[:, :1], x.tgt_viewmat, x.tgt_condition)
    padded = GeneratorInputs(x.src_images, torch.tensor([[True, False, False]] * 2), x.src_verts, x.src_viewmats,
                             x.src_Ks, x.tgt_viewmat, x.tgt_condition)
    with torch.no_grad():
        a, b = generator(one).local, generator(padded).local
    torch.testing.assert_close(a.positions, b.positions, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.colors, b.colors, rtol=1e-5, atol=1e-6)


def test_random_init_encoder_residual_head_is_zero_at_init_and_never_touches_opacity(head):
    torch.manual_seed(1)
    gen = Generator(ModelConfig(unet_channels=(16,), dpt_channels=8, out_channels=8, residual_hidden=8), head).eval()
    x = _inputs(head, b=1, k=1)
    other = GeneratorInputs(*list(x.__dict__.values())[:-1], torch.randn(1, 112) * 3)
    with torch.no_grad():
        a, b = gen(x), gen(other)
        assert a.deltas.abs().max() == 0  # zero-initialised: expression has no effect yet
        torch.testing.assert_close(a.local.positions, b.local.positions)
        torch.nn.init.normal_(gen.residual.out.weight, std=0.1)
        c, d = gen(x), gen(other)
    assert (c.local.positions - d.local.positions).abs().max() > 1e-4  # now expression moves Gaussians
    torch.testing.assert_close(c.local.opacity_logits, d.local.opacity_logits)  # but never opacity


def test_uv_warp_samples_where_each_texel_projects(head):
    verts = head.flame.v_template.float()[None]
    view = look_at(torch.tensor([[0.1, 0.02, 0.7]]), torch.zeros(1, 3))
    K = torch.tensor([[[220.0, 0, 48], [0, 220.0, 48], [0, 0, 1]]])
    ys, xs = torch.meshgrid(torch.arange(96.0) + 0.5, torch.arange(96.0) + 0.5, indexing="ij")
    coords = torch.stack((xs, ys))[None]  # a feature map whose values are the pixel coordinates
    warped = uv_warp(coords, torch.zeros(1, 3, 96, 96), verts, head.faces, head.layout, view, K)
    pix = project_points(texel_points(verts, head.faces, head.layout), view, K)[0]
    inside = ((pix > 1) & (pix < 95)).all(-1)
    got = warped[0, :2, head.layout.rows, head.layout.cols].T
    torch.testing.assert_close(got[inside], pix[inside], atol=1e-3, rtol=0)
    assert inside.float().mean() > 0.5


def test_masked_mean_and_sampling_helpers():
    v = torch.randn(2, 3, 4)
    m = torch.tensor([[True, False, True], [False, True, False]])
    torch.testing.assert_close(masked_mean(v, m)[0], (v[0, 0] + v[0, 2]) / 2)
    torch.testing.assert_close(masked_mean(v, m)[1], v[1, 1])
    maps = torch.arange(16.0).view(1, 1, 4, 4)
    centre = sample_at(maps, torch.tensor([[[1.5, 2.5]]]), 4, 4)
    assert centre.item() == pytest.approx(9.0)  # pixel (x=1, y=2)


def test_harmonic_encoding_is_27d():
    d = torch.tensor([[0.0, 0.0, 1.0]])
    enc = harmonic_encoding(d)
    assert enc.shape == (1, 27)
    torch.testing.assert_close(enc[0, :3], d[0])
    assert enc[0, 3 + 2].item() == pytest.approx(math.sin(math.pi), abs=1e-6)


def test_random_init_encoder_is_frozen_and_gradients_reach_the_heads(generator, head):
    gen = generator.train()
    out = gen(_inputs(head, b=1, k=2))
    (out.local.colors.mean() + out.local.log_scales.mean()).backward()
    assert all(p.grad is None for p in gen.encoder.vit.parameters())
    assert gen.heads.heads["colors"].weight.grad.abs().sum() > 0
    assert gen.encoder.dpt.out.weight.grad is not None
    gen.zero_grad(set_to_none=True)
    gen.eval()


def test_bad_inputs_are_reported(generator, head):
    x = _inputs(head, b=1, k=3)
    too_many = GeneratorInputs(*(t.repeat_interleave(2, 1) if t.dim() > 2 and t.shape[1] == 3 else t
                                 for t in (x.src_images, x.src_mask.repeat(1, 2), x.src_verts, x.src_viewmats, x.src_Ks)),
                               x.tgt_viewmat, x.tgt_condition)
    with pytest.raises(ValueError, match="at most 4"):
        generator(too_many)
    with pytest.raises(ValueError, match="112 values"):
        generator(GeneratorInputs(*list(x.__dict__.values())[:-1], torch.zeros(1, 50)))
    with pytest.raises(FileNotFoundError, match="encoder weights not found"):
        Generator(ModelConfig(encoder_weights="/nonexistent/vit.pth"), head)


def test_random_init_encoder_jacobian_penalty_on_the_generator(head):
    from sa0.losses.generator_terms import jacobian_penalty
    from sa0.model.heads import harmonic_encoding, view_direction

    torch.manual_seed(2)
    gen = Generator(ModelConfig(unet_channels=(8,), dpt_channels=8, out_channels=8, residual_hidden=8), head)
    x = _inputs(head, b=1, k=1)
    gamma = harmonic_encoding(view_direction(x.tgt_viewmat)).detach().requires_grad_(True)
    out = gen(x, view_code=gamma)
    assert jacobian_penalty(out.head_maps, gamma).item() > 0  # random heads read the view code
    with torch.no_grad():
        for name in ("positions", "log_scales"):
            gen.heads.heads[name].weight[:, 8:] = 0.0  # geometry blind to the view
    out = gen(x, view_code=gamma)
    assert jacobian_penalty(out.head_maps, gamma).item() == 0.0


def test_encoder_weights_load_from_a_local_file_and_hub_failure_is_explained(tmp_path, monkeypatch):
    """A local weight file (here: a RANDOMLY INITIALISED ViT's own state dict) is loaded as is; a hub
    fetch that cannot reach the internet (simulated, nothing is downloaded) says what to do."""
    import timm

    from sa0.model.encoder import create_vit

    cfg = ModelConfig(image_size=56)
    source = timm.create_model(cfg.encoder, pretrained=False, num_classes=0, img_size=56)
    torch.save(source.state_dict(), tmp_path / "vit.pth")
    loaded = create_vit(ModelConfig(image_size=56, encoder_weights=str(tmp_path / "vit.pth")))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))
    assert not any(p.requires_grad for p in loaded.parameters())  # frozen by default

    def offline(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("Network is unreachable")
        return source

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match="set model.encoder_weights=/path/to/file"):
        create_vit(ModelConfig(image_size=56, encoder_weights="hub"))

"""Optimiser groups (layer-wise LR decay) and the two phases' LR schedules (METHOD §3)."""

import pytest
import torch

from sa0.train.optim import OptimConfig, layer_depth, lr_factor, make_optimizer, make_scheduler, param_groups


def test_phase1_schedule_is_constant_then_linear_to_a_tenth_over_the_last_fifth():
    cfg = OptimConfig.phase1()
    factors = [lr_factor(s, 200_000, cfg) for s in (0, 100_000, 159_999, 160_000, 180_000, 199_999, 200_000)]
    assert factors[:4] == [1.0, 1.0, 1.0, 1.0]
    assert factors[4] == pytest.approx(0.55) and factors[5] == pytest.approx(0.1, abs=1e-4)
    assert factors[6] == pytest.approx(0.1)


def test_phase2_schedule_warms_up_then_follows_a_cosine():
    cfg = OptimConfig.phase2()
    total = 1000
    f = [lr_factor(s, total, cfg) for s in range(total)]
    warmup = 50
    assert f[0] == pytest.approx(1 / warmup) and f[warmup - 1] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:warmup], f[1:warmup]))  # rising warmup
    assert all(a >= b for a, b in zip(f[warmup:], f[warmup + 1:]))  # then non-increasing
    assert f[warmup + (total - warmup) // 2] == pytest.approx(0.5, abs=0.01) and f[-1] < 1e-3
    assert max(lr_factor(s, 4, cfg) for s in range(4)) <= 1.0  # short runs: warmup never exceeds 1


def test_layer_depth_counts_down_from_the_decoder():
    assert layer_depth("unet.down.0.conv1.weight", 12) == 0 and layer_depth("heads.heads.colors.bias", 12) == 0
    assert layer_depth("encoder.dpt.out.weight", 12) == 1 and layer_depth("encoder.vit.norm.weight", 12) == 1
    assert layer_depth("encoder.vit.blocks.11.mlp.fc1.weight", 12) == 2
    assert layer_depth("encoder.vit.blocks.0.mlp.fc1.weight", 12) == 13
    assert layer_depth("encoder.vit.patch_embed.proj.weight", 12) == 13


class _Toy(torch.nn.Module):
    """Named like the generator: encoder.vit.blocks.i, encoder.dpt, unet (no ViT weights involved)."""

    def __init__(self, freeze_vit: bool):
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.vit = torch.nn.Module()
        self.encoder.vit.blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(3))
        self.encoder.vit.patch_embed = torch.nn.Linear(2, 2)
        self.encoder.dpt = torch.nn.Linear(2, 2)
        self.unet = torch.nn.Linear(2, 2)
        if freeze_vit:
            self.encoder.vit.requires_grad_(False)


def test_layer_decay_scales_each_group_and_leaves_frozen_parameters_out():
    cfg = OptimConfig(lr=1.0, layer_decay=0.5)
    groups = {g["name"]: g for g in param_groups(_Toy(freeze_vit=False), cfg)}
    assert {n: g["lr"] for n, g in groups.items()} == {"depth0": 1.0, "depth1": 0.5, "depth2": 0.25, "depth3": 0.125,
                                                        "depth4": 0.0625}
    assert len(groups["depth4"]["params"]) == 4  # block 0 and the patch embedding (weights + biases)
    frozen = param_groups(_Toy(freeze_vit=True), cfg)
    assert [g["name"] for g in frozen] == ["depth0", "depth1"]
    assert sum(len(g["params"]) for g in frozen) == 4


def test_scheduler_drives_every_group_and_adamw_decays_weights():
    model = _Toy(freeze_vit=False)
    cfg = OptimConfig(optimizer="adamw", lr=0.1, weight_decay=0.5, schedule="cosine", layer_decay=0.5,
                      warmup_fraction=0.0, final_ratio=0.0)
    opt = make_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.5
    sched = make_scheduler(opt, 10, cfg)
    for _ in range(5):
        opt.step()
        sched.step()
    ratio = [g["lr"] / (0.1 * 0.5 ** int(g["name"][5:])) for g in opt.param_groups]
    assert ratio == pytest.approx([lr_factor(5, 10, cfg)] * len(ratio))


def test_bad_optim_config():
    with pytest.raises(ValueError, match="OptimConfig.optimizer"):
        OptimConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="OptimConfig.layer_decay"):
        OptimConfig(layer_decay=0.0)
    with pytest.raises(ValueError, match="OptimConfig.lr"):
        OptimConfig(lr=-1.0)

import pytest

from sa0.config import FlameConfig, LayoutConfig, RenderConfig, from_dict, to_dict


def test_round_trip_through_dict():
    cfg = RenderConfig(backend="dense", chunk=16)
    assert from_dict(RenderConfig, to_dict(cfg)) == cfg


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="bakend"):
        from_dict(RenderConfig, {"bakend": "tiled"})


@pytest.mark.parametrize(
    "cls,kwargs,field",
    [
        (RenderConfig, {"backend": "opengl"}, "backend"),
        (RenderConfig, {"alpha_max": 1.0}, "alpha_max"),
        (RenderConfig, {"near": 0.0}, "near"),
        (RenderConfig, {"tile_size": 12}, "tile_size"),
        (LayoutConfig, {"uv_resolution": 4}, "uv_resolution"),
        (FlameConfig, {"num_expression": 101}, "num_expression"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(cls, kwargs, field):
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)


def test_apply_overrides_parses_by_field_type():
    from sa0.config import apply_overrides
    from sa0.refine import RefineConfig

    cfg = apply_overrides(RefineConfig(), ["aspect_weight=0.25", "scale_freeze_steps=100", "use_clamp=false"])
    assert cfg.aspect_weight == 0.25 and cfg.scale_freeze_steps == 100 and cfg.use_clamp is False
    with pytest.raises(ValueError, match="unknown key 'no_such_field'"):
        apply_overrides(RefineConfig(), ["no_such_field=1"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        apply_overrides(RefineConfig(), ["steps"])
    with pytest.raises(ValueError, match="steps must be int"):
        apply_overrides(RefineConfig(), ["steps=many"])
    with pytest.raises(ValueError, match="use_clamp must be true or false"):
        apply_overrides(RefineConfig(), ["use_clamp=maybe"])


def test_nested_overrides_walk_sections_and_parse_tuples_and_optionals():
    from sa0.config import apply_overrides
    from sa0.data.pipeline import DataConfig

    cfg = apply_overrides(DataConfig(), ["shard_dirs=a,b", "example.sampler.max_sources=2", "example.image_size=64"])
    assert cfg.shard_dirs == ("a", "b") and cfg.example.sampler.max_sources == 2 and cfg.example.image_size == 64
    with pytest.raises(ValueError, match="unknown key 'example.sampler.k'"):
        apply_overrides(DataConfig(), ["example.sampler.k=2"])
    with pytest.raises(ValueError, match="example is a section"):
        apply_overrides(DataConfig(), ["example=1"])
    with pytest.raises(ValueError, match="seed is not a config section"):
        apply_overrides(DataConfig(), ["seed.x=1"])
    from sa0.model import ModelConfig

    assert apply_overrides(ModelConfig(encoder_weights="w.pt"), ["encoder_weights=none"]).encoder_weights is None
    assert apply_overrides(ModelConfig(), ["unet_channels=8,16"]).unet_channels == (8, 16)

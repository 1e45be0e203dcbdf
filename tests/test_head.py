"""load_head_model: FLAME layer + UV layout from configs."""

import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame import FlameFileError
from sa0.head import load_head_model


def test_loads_synthetic_head_with_albedo(synthetic_dir):
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir), num_shape=50, num_expression=20),
                           LayoutConfig(uv_resolution=32))
    assert head.flame.num_shape == 50 and head.flame.num_expression == 20
    assert head.num_gaussians == head.layout.num_gaussians > 500
    albedo = head.albedo()
    assert albedo.shape == (head.num_gaussians, 3) and 0 <= albedo.min() and albedo.max() <= 1
    assert int(head.faces.max()) < head.flame.num_vertices


def test_real_flame_without_albedo_and_missing_uv(tmp_path, synthetic_dir):
    (tmp_path / "generic_model.pkl").write_bytes((synthetic_dir / "FLAME_NEUTRAL.pkl").read_bytes())
    with pytest.raises(FlameFileError, match="no FLAME UV asset found"):
        load_head_model(FlameConfig(model_dir=str(tmp_path)))
    (tmp_path / "head_template_mesh.obj").write_text((synthetic_dir / "head_template_mesh.obj").read_text())
    head = load_head_model(FlameConfig(model_dir=str(tmp_path)), LayoutConfig(uv_resolution=16))
    assert head.albedo() is None
    assert torch.isfinite(head.flame.v_template).all()



def test_moving_a_head_copies_it_and_leaves_the_original_where_it_was(synthetic_dir):
    """HeadModel.to returns a head on the device and leaves its source untouched (run_subjects
    refines on a CUDA copy and writes outputs from the CPU head); "meta" stands in for CUDA here."""
    head = load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=16))
    moved = head.to("meta")
    assert moved.faces.device.type == "meta" and next(moved.flame.buffers()).device.type == "meta"
    assert head.faces.device.type == "cpu" and all(b.device.type == "cpu" for b in head.flame.buffers())
    assert head.to("cpu").flame is head.flame  # already there: nothing copied

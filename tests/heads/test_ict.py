"""The ICT-FaceKit head sa0 ships: rebuilt from ICT's OBJ files, posed by its rig, loaded without them."""

import tarfile

import numpy as np
import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.flame.compact import COMPACT_FILE, QUANTUM, read_compact_head
from sa0.head import load_head_model
from sa0.heads import ICT_NAME, head_name
from sa0.heads.ict import IctFacts, ict_dir
from sa0.heads.ict_obj import read_obj_vertices
from sa0.heads.ict_rig import JAW, LEFT_EYE, NUM_KEPT_VERTICES, PARTS, RIGHT_EYE
from sa0.types import FlameParams
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def ict():
    head = load_head_model(FlameConfig(model_dir=str(ict_dir())), LayoutConfig(uv_resolution=64))
    head.flame.double()
    return head


@pytest.fixture(scope="module")
def facts():
    return IctFacts.read()


@pytest.fixture(scope="module")
def face_x_model(tmp_path_factory):
    """ICT's FaceXModel folder, unpacked from ../shared/data/ict-facekit (skipped where that is absent)."""
    archive = shared_data("ict-facekit", "FaceXModel.tar.xz")
    out = tmp_path_factory.mktemp("ict")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return next(out.rglob("generic_neutral_mesh.obj")).parent


def pose(head, **coeffs) -> np.ndarray:
    p = FlameParams.zeros(1, head.flame.num_shape, head.flame.num_expression, dtype=torch.float64)
    for name, value in coeffs.items():
        field, _, index = name.partition("_")
        if index:
            getattr(p, field)[0, int(index)] = value
        else:
            getattr(p, field)[0] = torch.as_tensor(value, dtype=torch.float64)
    with torch.no_grad():
        return head.flame(p)[0].numpy()


def test_the_shipped_head_loads_without_ict_files(ict, facts):
    directory = ict_dir()
    assert (directory / COMPACT_FILE).stat().st_size < 10 * 2**20
    assert "MIT" in (directory / "LICENSE.ICT-FaceKit").read_text() or "Permission is hereby granted" in (
        directory / "LICENSE.ICT-FaceKit").read_text()
    assert head_name(directory) == ICT_NAME
    assert (ict.flame.num_shape, ict.flame.num_expression) == (100, 53)
    assert ict.flame.num_vertices == NUM_KEPT_VERTICES and len(facts.expression_names) == 53
    assert facts.expression_names[facts.expression_names.index("jawOpen")] == "jawOpen"
    assert 0.3 < facts.jaw_open_angle < 0.6  # a full jawOpen is a ~25 degree rotation
    data = read_compact_head(directory / COMPACT_FILE)
    assert data["shapedirs"].shape == (NUM_KEPT_VERTICES, 3, 153) and data["expression_offset"] == 100


@pytest.mark.parametrize("name, coeffs", [
    ("generic_neutral_mesh", {}),
    ("identity000", {"shape_0": 1.0}),
    ("identity057", {"shape_57": 1.0}),
    ("identity099", {"shape_99": 1.0}),
    ("mouthSmile_L", {"expression": "mouthSmile_L"}),
    ("eyeBlink_R", {"expression": "eyeBlink_R"}),
    ("browInnerUp_L", {"expression": "browInnerUp_L"}),
    ("jawLeft", {"expression": "jawLeft"}),
    ("jawOpen", {"expression": "jawOpen", "jaw": True}),
])
def test_every_ict_mesh_is_reproduced_from_its_coefficient(ict, facts, face_x_model, name, coeffs):
    coeffs = dict(coeffs)
    if "expression" in coeffs:
        coeffs[f"expression_{facts.expression_names.index(coeffs.pop('expression'))}"] = 1.0
    if coeffs.pop("jaw", False):  # ARKit's jawOpen = 1: the jaw joint's full angle plus the jawOpen expression
        coeffs["jaw"] = facts.jaw_axis * facts.jaw_open_angle
    truth = read_obj_vertices(face_x_model / f"{name}.obj")[:NUM_KEPT_VERTICES] * 0.01  # cm -> m
    error = np.abs(pose(ict, **coeffs) - truth).max()
    assert error < 1e-5, f"{name}: {error:.2e} m"
    assert error <= QUANTUM  # what int16 steps of 0.01 mm allow (half a step per mode, after posing)


def _moved(a, b):
    return np.linalg.norm(a - b, axis=1) > 1e-7


def test_jaw_and_eyes_move_only_their_parts(ict):
    rest = pose(ict)
    parts = {name: slice(lo, hi) for name, (lo, hi, _, _) in PARTS.items()}
    jaw = _moved(pose(ict, jaw=[0.3, 0.0, 0.0]), rest)
    assert not jaw[parts["eyeball_left"]].any() and not jaw[parts["eyeball_right"]].any()
    assert not jaw[parts["head_neck"]][rest[parts["head_neck"], 1] > 0.05].any()  # cranium
    lower, upper = slice(19247, 21451), slice(17039, 19247)  # ICT's README: teeth 16-31 lower, 0-15 upper
    assert jaw[lower].all() and not jaw[upper].any()
    for side, joint in (("eyeball_left", 3), ("eyeball_right", 4)):
        eyes = [0.0] * 6
        eyes[3 * (joint - LEFT_EYE):3 * (joint - LEFT_EYE) + 3] = [0.0, 0.3, 0.0]
        moved = _moved(pose(ict, eyes=eyes), rest)
        assert moved[parts[side]].mean() > 0.99 and moved.sum() == parts[side].stop - parts[side].start
    assert LEFT_EYE == 3 and RIGHT_EYE == 4 and JAW == 2
    left = rest[parts["eyeball_left"]].mean(0)
    assert left[0] > 0  # the subject's left eye is at +x, as in FLAME


def test_rebuilding_from_ict_files_gives_the_shipped_head(face_x_model, tmp_path):
    from sa0.heads.ict_build import build

    build(face_x_model, tmp_path)
    with np.load(tmp_path / COMPACT_FILE) as new, np.load(ict_dir() / COMPACT_FILE) as shipped:
        for key in ("v_template", "f", "shape_q", "expr_q", "expr_vertex", "weights", "vt", "ft", "J_regressor"):
            np.testing.assert_allclose(new[key], shipped[key], rtol=0, atol=1e-6, err_msg=key)

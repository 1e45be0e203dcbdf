"""ARKit weights onto heads without ARKit expressions: the map sa0 fits from the ICT head, checked
against ICT's own map (fitting ICT onto itself), and driving the synthetic head (FLAME's format)."""

import shutil

import numpy as np
import pytest
import torch

from sa0.config import FlameConfig, LayoutConfig
from sa0.drive.arkit import ARKIT_NAMES, arkit_map_for, fit_arkit_map, head_landmarks, ict_arkit_map
from sa0.drive.sliders import Sliders
from sa0.drive.streams import read_arkit
from sa0.flame.synthetic import write_synthetic_flame
from sa0.head import load_head_model
from sa0.heads import ICT_NAME, SYNTHETIC_NAME
from sa0.heads.ict import IctFacts, ict_dir
from sa0.types import FlameParams
from tests.drive.test_drive import _csv

CHIN, FOREHEAD, UPPER_LIP, LOWER_LIP = 152, 10, 13, 14  # MediaPipe Face Mesh ids
LEFT_CORNER, RIGHT_CORNER = 291, 61  # the mouth's corners, the subject's left and right


def _head(model_dir):
    return load_head_model(FlameConfig(model_dir=str(model_dir)), LayoutConfig(uv_resolution=8))


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    synthetic = tmp_path_factory.mktemp("synthetic")
    write_synthetic_flame(synthetic)
    return _head(ict_dir()), _head(synthetic), synthetic


def _landmarks(head, motion, frame):
    layer = head_landmarks(head)
    p = {k: torch.as_tensor(v[frame:frame + 1], dtype=torch.float64) for k, v in motion.params.items()}
    params = FlameParams(torch.zeros(1, layer.num_shape, dtype=torch.float64), p["expression"], p["global_rot"],
                         p["neck"], p["jaw"], p["eyes"], p["translation"])
    out = layer(params)[0].numpy()
    return {int(i): out[k] for k, i in enumerate(layer.ids)}


def test_fitting_the_ict_head_onto_itself_gives_back_its_own_map(heads):
    ict, _, _ = heads
    facts = IctFacts.read()
    fitted, native = fit_arkit_map(ict, ict, facts, ICT_NAME), ict_arkit_map(facts)
    combos = fitted.report["combinations"]
    assert combos["explained"] > 0.999 and combos["rms_mm"] < 0.1  # measured 0.99996, 0.03 mm
    for name in ("mouthSmileLeft", "eyeBlinkRight", "browInnerUp", "mouthPucker"):
        row = ARKIT_NAMES.index(name)
        np.testing.assert_allclose(fitted.expression[row], native.expression[row], atol=0.1)  # damped: <= 0.07 off
    row = ARKIT_NAMES.index("jawOpen")
    assert abs(fitted.jaw[row, 0] - native.jaw[row, 0]) < 0.1 * abs(native.jaw[row, 0])


def test_arkit_jaw_open_opens_the_mouth_of_a_flame_format_head(heads, tmp_path):
    _, synthetic, _ = heads
    mapping = arkit_map_for(synthetic)
    assert mapping.head == SYNTHETIC_NAME
    assert mapping.report["combinations"]["explained"] > 0.9  # measured 0.944 (the synthetic head is not human)
    take = _csv(tmp_path / "take.csv", [{"JawOpen": 0.0}, {"JawOpen": 1.0}, {"MouthSmileLeft": 1.0}])
    motion = read_arkit(take, mapping)
    assert motion.head == SYNTHETIC_NAME and motion.params["expression"].shape == (3, synthetic.flame.num_expression)
    rest, opened, smile = (_landmarks(synthetic, motion, k) for k in range(3))
    gap = lambda lm: lm[UPPER_LIP][1] - lm[LOWER_LIP][1]  # noqa: E731
    assert gap(opened) - gap(rest) > 0.01  # the lips part by more than 1 cm (measured 24 mm)
    assert opened[CHIN][1] - rest[CHIN][1] < -0.01  # the chin drops (measured 21 mm)
    assert np.abs(opened[FOREHEAD] - rest[FOREHEAD]).max() < 1e-3  # the forehead stays (measured 0.41 mm)
    left, right = (smile[c][1] - rest[c][1] for c in (LEFT_CORNER, RIGHT_CORNER))
    assert left > 0.001 and left > 3 * abs(right)  # a left smile lifts the left corner, not the right


def test_sliders_use_the_fitted_map_on_a_flame_format_head(heads):
    _, synthetic, _ = heads
    sliders = Sliders(synthetic.flame.num_shape, synthetic.flame.num_expression, np.zeros(300), arkit_map_for(synthetic))
    assert [c["name"] for c in sliders.controls][:2] == ["jawOpen", "smile"]
    opened = sliders.params({"jawOpen": 1.0})
    assert float(opened.jaw[0, 0]) > 0.1 and float(opened.expression.abs().sum()) > 0


def test_a_head_without_mediapipe_landmarks_is_refused_naming_the_file(heads, tmp_path):
    _, _, synthetic_dir = heads
    bare = tmp_path / "bare"
    shutil.copytree(synthetic_dir, bare)
    (bare / "mediapipe_landmark_embedding.npz").unlink()
    with pytest.raises(ValueError, match="mediapipe_landmark_embedding.npz: not found"):
        arkit_map_for(_head(bare))

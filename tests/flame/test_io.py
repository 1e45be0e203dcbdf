"""FLAME file loading: chumpy-free unpickling, validation errors that name file, key and value."""

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from sa0.flame.io import (
    FLAME_DIR_ENV,
    FlameFileError,
    find_uv_file,
    load_flame_assets,
    load_pickle_without_chumpy,
    load_uv,
)
from sa0.flame.synthetic import MODEL_KEYS, build_synthetic_head


@pytest.fixture(scope="module")
def head():
    return build_synthetic_head(seed=3)


def _model_dict(head):
    return {k: head[k] for k in MODEL_KEYS}


def _write(path, data):
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    return path


class _FakeCh:
    """Pickles exactly as chumpy's Ch does: default object protocol, state = __dict__ without
    the weak-reference caches (chumpy/ch.py __getstate__), value under 'x'."""

    def __init__(self, x):
        self.x = np.asarray(x, dtype=np.float64)
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False

    def __getstate__(self):
        return dict(self.__dict__)


class _FakeSelect(_FakeCh):
    """A chumpy expression node (not a plain array): its state has no 'x'."""

    def __getstate__(self):
        return {"a": self.x, "idxs": np.arange(3)}


def _pickle_with_fake_chumpy(path, data):
    """Write `data` with _FakeCh objects recorded as chumpy.ch.Ch (chumpy itself is not installed)."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")
    ch.Ch = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch", "__qualname__": "Ch"})
    reordering.Select = type("Select", (_FakeSelect,), {"__module__": "chumpy.reordering", "__qualname__": "Select"})
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch", "chumpy.reordering")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch, "chumpy.reordering": reordering})
    try:
        converted = {}
        for key, value in data.items():
            if isinstance(value, _FakeSelect):
                converted[key] = reordering.Select(value.x)
            elif isinstance(value, _FakeCh):
                converted[key] = ch.Ch(value.x)
            else:
                converted[key] = value
        _write(path, converted)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def test_chumpy_arrays_load_without_chumpy(tmp_path, head):
    assert "chumpy" not in sys.modules
    data = _model_dict(head)
    data["shapedirs"] = _FakeCh(head["shapedirs"])
    data["v_template"] = _FakeCh(head["v_template"])
    data["J_regressor"] = scipy.sparse.csc_matrix(head["J_regressor"])  # as in official files
    path = _pickle_with_fake_chumpy(tmp_path / "generic_model.pkl", data)
    assert b"chumpy.ch" in path.read_bytes()
    loaded = load_pickle_without_chumpy(path)
    np.testing.assert_array_equal(loaded["shapedirs"], head["shapedirs"])
    np.testing.assert_array_equal(loaded["J_regressor"], head["J_regressor"])
    assets = load_flame_assets(tmp_path)
    np.testing.assert_array_equal(assets.v_template, head["v_template"])
    assert assets.parents.tolist() == [-1, 0, 1, 1, 1]
    assert "chumpy" not in sys.modules


def test_chumpy_expression_is_refused_with_key_named(tmp_path, head):
    data = _model_dict(head)
    data["posedirs"] = _FakeSelect(head["posedirs"])
    path = _pickle_with_fake_chumpy(tmp_path / "generic_model.pkl", data)
    with pytest.raises(FlameFileError, match=r"generic_model\.pkl.*'posedirs'.*chumpy\.reordering\.Select"):
        load_pickle_without_chumpy(path)


def test_missing_directory_and_env_say_where_to_get_flame(monkeypatch, tmp_path):
    monkeypatch.delenv(FLAME_DIR_ENV, raising=False)
    with pytest.raises(FlameFileError, match="flame.is.tue.mpg.de"):
        load_flame_assets()
    with pytest.raises(FlameFileError, match="generic_model.pkl"):
        load_flame_assets(tmp_path)  # empty directory


def test_env_variable_points_at_the_model(monkeypatch, synthetic_dir):
    monkeypatch.setenv(FLAME_DIR_ENV, str(synthetic_dir))
    assert load_flame_assets().num_vertices > 1000
    assert find_uv_file().name == "head_template_mesh.obj"


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("posedirs", np.zeros((10, 3, 36)), r"'posedirs' must be \(\d+, 3, 36\)"),
        ("f", None, r"missing key 'f'"),
        ("weights", np.full((1, 5), np.nan), r"'weights' (contains non-finite|must be)"),
        ("J_regressor", np.zeros((4, 3)), r"'J_regressor' must be \(5, \d+\)"),
    ],
)
def test_malformed_model_names_file_and_key(tmp_path, head, key, value, message):
    data = _model_dict(head)
    if value is None:
        del data[key]
    else:
        data[key] = value
    _write(tmp_path / "FLAME_NEUTRAL.pkl", data)
    with pytest.raises(FlameFileError, match=message) as info:
        load_flame_assets(tmp_path)
    assert "FLAME_NEUTRAL.pkl" in str(info.value)


def test_face_indices_out_of_range(tmp_path, head):
    data = _model_dict(head)
    data["f"] = data["f"].astype(np.int64) + len(head["v_template"])
    _write(tmp_path / "FLAME_NEUTRAL.pkl", data)
    with pytest.raises(FlameFileError, match=r"'f' indices must lie in"):
        load_flame_assets(tmp_path)


def test_not_a_pickle(tmp_path):
    (tmp_path / "flame2023.pkl").write_bytes(b"this is not a pickle")
    with pytest.raises(FlameFileError, match="flame2023.pkl.*cannot be read"):
        load_flame_assets(tmp_path)


def test_uv_from_obj_and_npz_agree(tmp_path, synthetic_dir, assets, head):
    vt, ft = load_uv(synthetic_dir / "head_template_mesh.obj", assets.num_faces)
    np.savez(tmp_path / "FLAME_texture.npz", vt=vt, ft=ft)
    vt2, ft2 = load_uv(tmp_path / "FLAME_texture.npz", assets.num_faces)
    np.testing.assert_allclose(vt, vt2)
    np.testing.assert_array_equal(ft, ft2)


def test_uv_validation_errors(tmp_path, assets, uv):
    vt, ft = uv
    np.savez(tmp_path / "bad_count.npz", vt=vt, ft=ft[:-1])
    with pytest.raises(FlameFileError, match=r"bad_count.npz: 'ft' must be"):
        load_uv(tmp_path / "bad_count.npz", assets.num_faces)
    np.savez(tmp_path / "bad_range.npz", vt=vt * 2.0, ft=ft)
    with pytest.raises(FlameFileError, match=r"'vt' values must be finite and in \[0, 1\]"):
        load_uv(tmp_path / "bad_range.npz", assets.num_faces)
    np.savez(tmp_path / "no_ft.npz", vt=vt)
    with pytest.raises(FlameFileError, match="missing key 'ft'"):
        load_uv(tmp_path / "no_ft.npz", assets.num_faces)
    (tmp_path / "quad.obj").write_text("vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n")
    with pytest.raises(FlameFileError, match=r"quad.obj:5: face with 4 corners"):
        load_uv(tmp_path / "quad.obj", 1)

"""Converters: fixtures written in each tracker's format from a synthetic ground truth; after
conversion, the posed mesh projected with the converted camera must land where the ground truth
put it (camera conventions and head placement are where users lose days)."""

import io
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sa0.config import FlameConfig, LayoutConfig, RenderConfig
from sa0.data.convert import convert_gagavatar, convert_imavatar, convert_vhap
from sa0.data.convert.common import FLIP_XY, FLIP_YZ
from sa0.data.schema import ClipError
from sa0.flame import FlameLayer
from sa0.gaussians import bind, init_local_gaussians
from sa0.geometry import look_at
from sa0.head import load_head_model
from sa0.render import render
from sa0.types import Cameras, FlameParams

RES = 48


@pytest.fixture(scope="module")
def head(synthetic_dir):
    return load_head_model(FlameConfig(model_dir=str(synthetic_dir)), LayoutConfig(uv_resolution=32))


def ground_truth(head, timesteps, cameras, num_shape=300, num_expr=100, neck=True, seed=0, distance=0.7):
    """Posed vertices (T, V, 3) metres, OpenCV cameras (T, C) view/K, rendered images and alphas."""
    rng = np.random.default_rng(seed)
    r = lambda *s, scale=1.0: torch.as_tensor(rng.normal(0, scale, size=s), dtype=torch.float32)  # noqa: E731
    params = FlameParams(r(timesteps, num_shape, scale=0.5), r(timesteps, num_expr, scale=0.5),
                         r(timesteps, 3, scale=0.15), r(timesteps, 3, scale=0.1 if neck else 0.0),
                         r(timesteps, 3, scale=0.1).abs(), r(timesteps, 6, scale=0.1), r(timesteps, 3, scale=0.01))
    layer = FlameLayer(_assets(head), num_shape, num_expr)
    with torch.no_grad():
        verts = layer(params)
    angles = np.linspace(-0.6, 0.6, cameras) if cameras > 1 else np.array([0.2])
    views, Ks, images, alphas = [], [], [], []
    local = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
    for t in range(timesteps):
        eye = distance * np.stack([np.sin(angles) + rng.normal(0, 0.03), np.full_like(angles, 0.07), np.cos(angles)], -1)
        view = look_at(torch.as_tensor(eye, dtype=torch.float32), torch.zeros(len(angles), 3))
        K = torch.tensor([[70.0, 0, 23.0], [0, 72.0, 25.0], [0, 0, 1]]).expand(len(angles), 3, 3)
        with torch.no_grad():
            out = render(bind(local, verts[t], head.faces, head.layout), Cameras(view, K, RES, RES),
                         torch.zeros(3), RenderConfig())
        views.append(view.numpy())
        Ks.append(K.numpy())
        images.append((out.image.clamp(0, 1) * 255).round().byte().numpy())
        alphas.append(out.alpha[..., 0].numpy())
    return params, verts.numpy(), np.stack(views), np.stack(Ks), np.stack(images), np.stack(alphas)


def _assets(head):
    from sa0.flame.io import load_flame_assets

    return load_flame_assets(head.model_dir)


def project(view, K, points):
    cam = points @ view[:3, :3].T + view[:3, 3]
    uv = cam @ K.T
    return uv[:, :2] / uv[:, 2:]


def assert_geometry(head, clip, gt_verts, gt_views, gt_Ks, num_shape=300, num_expr=100, tol=1e-2):
    """Pose FLAME with the converted parameters, project with the converted cameras, compare."""
    layer = FlameLayer(_assets(head), num_shape, num_expr)
    params = FlameParams(*(torch.as_tensor(a) for a in clip.flame.as_dict().values()))
    with torch.no_grad():
        verts = layer(params).numpy()
    for t in range(clip.num_timesteps):
        for c in range(clip.num_cameras):
            ours = project(clip.viewmats[t, c].astype(np.float64), clip.Ks[t, c].astype(np.float64), verts[t])
            truth = project(gt_views[t, c].astype(np.float64), gt_Ks[t, c].astype(np.float64), gt_verts[t])
            assert np.abs(ours - truth).max() < tol, (t, c, np.abs(ours - truth).max())


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_gagavatar(tmp_path, head):
    import lmdb

    T = 4
    params, verts, views, _, images, alphas = ground_truth(head, T, 1, neck=False, distance=2.9)
    focal = 12.0
    K = np.array([[focal * RES / 2, 0, RES / 2], [0, focal * RES / 2, RES / 2], [0, 0, 1]])
    # Re-render with the tracker's fixed intrinsics, then express each camera as GAGAvatar does.
    local = init_local_gaussians(head.flame.v_template, head.faces, head.layout)
    records, keys, env = {}, [], lmdb.open(str(tmp_path / "img_lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for t in range(T):
            view = views[t, 0].astype(np.float64).copy()
            view[:3, 3] += view[:3, :3] @ params.translation[t].numpy()  # the format has no FLAME translation
            with torch.no_grad():
                out = render(bind(local, torch.as_tensor(verts[t]), head.faces, head.layout),
                             Cameras(torch.as_tensor(view[None], dtype=torch.float32),
                                     torch.as_tensor(K[None], dtype=torch.float32), RES, RES), torch.zeros(3))
            image = (out.image[0].clamp(0, 1) * 255).round().byte().numpy()
            key = f"vidA_{t}"
            keys.append(key)
            txn.put(key.encode(), _png(image))
            R, T_ = view[:3, :3].T @ FLIP_XY, 5.0 * FLIP_XY @ view[:3, 3]  # tracker world = 5 x metres
            records[key] = {
                "bbox": np.array([0.1, 0.1, 0.9, 0.9]), "shapecode": params.shape[t].numpy(),
                "expcode": params.expression[t].numpy(),
                "posecode": np.concatenate([params.global_rot[t].numpy(), params.jaw[t].numpy()]),
                "eyecode": params.eyes[t].numpy(), "transform_matrix": np.concatenate([R, T_[:, None]], 1),
            }
            # Independent check of the fixture: GAGAvatar's own 3DGS camera path.
            V = np.zeros((4, 4))
            V[:3, :3], V[3, :3], V[3, 3] = R, T_, 1.0
            V[:, :2] *= -1.0
            p = np.concatenate([5.0 * verts[t], np.ones((len(verts[t]), 1))], 1) @ V
            u = RES / 2 + focal * RES / 2 * p[:, :2] / p[:, 2:3]
            np.testing.assert_allclose(u, project(view, K, verts[t].astype(np.float64)), atol=1e-6)
    env.close()
    with open(tmp_path / "optim.pkl", "wb") as fh:
        pickle.dump(records, fh)
    (tmp_path / "dataset.json").write_text(json.dumps({"train": keys, "val": [], "test": []}))
    (clip,) = list(convert_gagavatar(tmp_path))
    assert clip.meta.subject == "vidA" and clip.meta.split == "train" and clip.num_timesteps == T
    gt_views = views.copy()
    assert_geometry(head, clip, verts, gt_views, np.broadcast_to(K, (T, 1, 3, 3)))
    np.testing.assert_allclose(clip.face_boxes[0, 0], [4.8, 4.8, 43.2, 43.2], atol=1e-4)
    assert ((clip.mattes[0, 0] > 127) == (clip.images[0, 0].max(-1) > 8)).all()


def test_vhap_multiview(tmp_path, head):
    T, C = 2, 3
    params, verts, views, Ks, images, alphas = ground_truth(head, T, C)
    (tmp_path / "images").mkdir()
    (tmp_path / "fg_masks").mkdir()
    (tmp_path / "flame_param").mkdir()
    frames = []
    for t in range(T):
        np.savez(tmp_path / "flame_param" / f"{t:05d}.npz", shape=params.shape[t].numpy(),
                 expr=params.expression[t].numpy()[None], rotation=params.global_rot[t].numpy()[None],
                 neck_pose=params.neck[t].numpy()[None], jaw_pose=params.jaw[t].numpy()[None],
                 eyes_pose=params.eyes[t].numpy()[None], translation=params.translation[t].numpy()[None],
                 static_offset=np.zeros((1, 5, 3)))
        for c in range(C):
            Image.fromarray(images[t, c]).save(tmp_path / "images" / f"{t:05d}_{c:02d}.png")
            Image.fromarray((alphas[t, c] * 255).round().astype(np.uint8)).save(tmp_path / "fg_masks" / f"{t:05d}_{c:02d}.png")
            w2c_gl = np.eye(4)
            w2c_gl[:3, :3] = FLIP_YZ @ views[t, c, :3, :3]
            w2c_gl[:3, 3] = FLIP_YZ @ views[t, c, :3, 3]
            c2w = np.linalg.inv(w2c_gl)
            K = Ks[t, c]
            frames.append({"file_path": f"images/{t:05d}_{c:02d}.png", "fg_mask_path": f"fg_masks/{t:05d}_{c:02d}.png",
                           "flame_param_path": f"flame_param/{t:05d}.npz", "transform_matrix": c2w.tolist(),
                           "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
                           "timestep_index": t, "camera_index": c})
            # Independent check of the fixture: OpenGL camera looking down -z, y up.
            p = np.concatenate([verts[t], np.ones((len(verts[t]), 1))], 1) @ np.linalg.inv(c2w).T
            u = np.stack([K[0, 2] + K[0, 0] * p[:, 0] / -p[:, 2], K[1, 2] - K[1, 1] * p[:, 1] / -p[:, 2]], -1)
            np.testing.assert_allclose(u, project(views[t, c].astype(np.float64), K, verts[t]), atol=1e-3)
    (tmp_path / "transforms_train.json").write_text(json.dumps({"frames": frames[: C]}))
    (tmp_path / "transforms_test.json").write_text(json.dumps({"frames": frames[C:]}))
    clips = list(convert_vhap(tmp_path, subject="id042"))
    assert [c.meta.split for c in clips] == ["test", "train"]
    test_clip, train_clip = clips
    assert train_clip.num_cameras == C and train_clip.num_timesteps == 1
    assert_geometry(head, train_clip, verts[:1], views[:1], Ks[:1])
    assert_geometry(head, test_clip, verts[1:], views[1:], Ks[1:])
    np.testing.assert_array_equal(train_clip.images[0, 2], images[0, 2])
    (tmp_path / "transforms_train.json").write_text(json.dumps({"frames": frames[: C - 1] + frames[C:C + 1]}))
    with pytest.raises(ClipError, match="full timestep x camera grid"):
        list(convert_vhap(tmp_path))


def write_imavatar_fixture(tmp_path, head, T=5):
    params, verts, views, Ks, images, alphas = ground_truth(head, T, 1, num_shape=100, num_expr=50)
    (tmp_path / "image").mkdir(parents=True)
    (tmp_path / "mask").mkdir()
    K = Ks[0, 0]
    frames = []
    for t in range(T):
        Image.fromarray(images[t, 0]).save(tmp_path / "image" / f"{t + 1}.png")
        Image.fromarray((alphas[t, 0] * 255).round().astype(np.uint8)).save(tmp_path / "mask" / f"{t + 1}.png")
        t_cv = views[t, 0, :3, 3] + views[t, 0, :3, :3] @ params.translation[t].numpy()  # no translation in the format
        world = np.concatenate([FLIP_YZ @ views[t, 0, :3, :3], (4.0 * FLIP_YZ @ t_cv)[:, None]], 1)
        pose = np.concatenate([params.global_rot[t], params.neck[t], params.jaw[t], params.eyes[t]])
        frames.append({"file_path": f"./image/{t + 1}", "world_mat": world.tolist(),
                       "expression": params.expression[t].tolist(), "pose": pose.tolist(),
                       "bbox": [0.1, 0.2, 0.8, 0.9]})
    intrinsics = [float(v) for v in (-K[0, 0] / RES, K[1, 1] / RES, K[0, 2] / RES, K[1, 2] / RES)]  # negative fx as IMavatar
    (tmp_path / "flame_params.json").write_text(json.dumps(
        {"intrinsics": intrinsics, "shape_params": params.shape[0].tolist(), "frames": frames}))
    return params, views, Ks, alphas


def test_imavatar(tmp_path, head):
    T = 5
    params, views, Ks, alphas = write_imavatar_fixture(tmp_path, head, T)
    # All frames share frame 0's identity in IMavatar: make the ground truth agree.
    params2 = FlameParams(params.shape[:1].expand(T, -1), *list(params.__dict__.values())[1:])
    with torch.no_grad():
        verts2 = FlameLayer(_assets(head), 100, 50)(params2).numpy()
    train, test = sorted(convert_imavatar(tmp_path, test_frames=2), key=lambda c: c.meta.split)[::-1]
    assert (train.meta.split, train.num_timesteps, test.meta.split, test.num_timesteps) == ("train", 3, "test", 2)
    assert_geometry(head, train, verts2[:3], views[:3], Ks[:3], 100, 50)
    assert_geometry(head, test, verts2[3:], views[3:], Ks[3:], 100, 50)
    np.testing.assert_allclose(train.face_boxes[0, 0], [4.8, 9.6, 38.4, 43.2], atol=1e-4)
    np.testing.assert_array_equal(test.mattes[1, 0], (alphas[4, 0] * 255).round().astype(np.uint8))


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(ClipError, match="optim.pkl: not found"):
        list(convert_gagavatar(tmp_path))
    with pytest.raises(ClipError, match="no transforms.json"):
        list(convert_vhap(tmp_path))
    with pytest.raises(ClipError, match="flame_params.json: not found"):
        list(convert_imavatar(tmp_path))

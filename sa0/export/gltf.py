"""Gaussians as a binary glTF (.glb) with Khronos's KHR_gaussian_splatting (the container through
pygltflib, MIT).

One node, one mesh, one POINTS primitive with float attributes, as the extension defines them:
  POSITION                                   VEC3, sa0's world (with min / max, as glTF requires)
  KHR_gaussian_splatting:ROTATION            VEC4, unit quaternion x, y, z, w (sa0 stores w, x, y, z)
  KHR_gaussian_splatting:SCALE               VEC3, linear standard deviations (sa0 stores them linear
                                             in Gaussians, as logs in LocalGaussians)
  KHR_gaussian_splatting:OPACITY             SCALAR, 0..1 (sa0 learns logits; stored after the sigmoid)
  KHR_gaussian_splatting:SH_DEGREE_0_COEF_0  VEC3, f_dc = (rgb - 0.5) / 0.2820948
  COLOR_0                                    VEC4 float, rgb and opacity (the point-cloud fallback)
and the primitive's extension object {kernel: "ellipse", colorSpace: "srgb_rec709_display"}: sa0
trains against sRGB-encoded video frames and blends in that space (display-referred, BT.709).

Coordinates: glTF is right-handed, y up, and an asset's front faces +z. sa0's world is the head
model's (FLAME's): y up, z out of the face, metres, so the head's front already faces +z and no
conversion is needed; a reader that honours glTF's axes shows the face from its front.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sa0.fsutil import write_bytes_atomic
from sa0.types import Gaussians

EXTENSION = "KHR_gaussian_splatting"
SH_C0 = 0.28209479177387814
ATTRIBUTES = {"ROTATION": f"{EXTENSION}:ROTATION", "SCALE": f"{EXTENSION}:SCALE",
              "OPACITY": f"{EXTENSION}:OPACITY", "SH0": f"{EXTENSION}:SH_DEGREE_0_COEF_0"}


class GltfError(ValueError):
    """A .glb that is not Gaussian splats this reader understands (naming the file and the field)."""


def _columns(gaussians: Gaussians) -> dict[str, np.ndarray]:
    if gaussians.is_batched or gaussians.colors.shape[-1] != 3:
        raise ValueError(f"glTF export needs unbatched RGB Gaussians, got colours {tuple(gaussians.colors.shape)}")
    g = {k: v.detach().cpu().float().numpy() for k, v in vars(gaussians).items()}
    quats = g["quats"] / np.linalg.norm(g["quats"], axis=-1, keepdims=True)
    return {"POSITION": g["means"], ATTRIBUTES["ROTATION"]: quats[:, [1, 2, 3, 0]],
            ATTRIBUTES["SCALE"]: g["scales"], ATTRIBUTES["OPACITY"]: g["opacities"],
            ATTRIBUTES["SH0"]: (g["colors"] - 0.5) / SH_C0,
            "COLOR_0": np.concatenate((np.clip(g["colors"], 0, 1), g["opacities"][:, None]), -1)}


def encode_glb(gaussians: Gaussians) -> bytes:
    """Unbatched RGB Gaussians (sa0's world) -> the bytes of a .glb."""
    import pygltflib as gl

    columns = _columns(gaussians)
    blob, views, accessors, attributes = b"", [], [], {}
    kinds = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}
    for name, array in columns.items():
        array = np.ascontiguousarray(array, np.float32)
        width = 1 if array.ndim == 1 else array.shape[1]
        views.append(gl.BufferView(buffer=0, byteOffset=len(blob), byteLength=array.nbytes))
        bounds = {"min": array.min(0).tolist(), "max": array.max(0).tolist()} if name == "POSITION" else {}
        accessors.append(gl.Accessor(bufferView=len(views) - 1, componentType=gl.FLOAT, count=len(array),
                                     type=kinds[width], **bounds))
        attributes[name] = len(accessors) - 1
        blob += array.tobytes()
    primitive = gl.Primitive(attributes=gl.Attributes(), mode=gl.POINTS,
                             extensions={EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}})
    primitive.attributes = attributes  # custom semantics (the extension's): a plain mapping serialises them all
    doc = gl.GLTF2(asset=gl.Asset(version="2.0", generator="sa0"), scene=0, scenes=[gl.Scene(nodes=[0])],
                   nodes=[gl.Node(mesh=0, name="avatar")], meshes=[gl.Mesh(primitives=[primitive])],
                   buffers=[gl.Buffer(byteLength=len(blob))], bufferViews=views, accessors=accessors,
                   extensionsUsed=[EXTENSION])
    doc.set_binary_blob(blob)
    return b"".join(doc.save_to_bytes())


def write_glb(gaussians: Gaussians, path) -> Path:
    """Write a .glb atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, encode_glb(gaussians))
    return path


def read_glb(path) -> Gaussians:
    """A .glb with a KHR_gaussian_splatting primitive (float attributes) -> Gaussians in sa0's world."""
    import pygltflib as gl

    try:
        doc = gl.GLTF2().load_binary(str(path))
    except Exception as exc:  # pygltflib raises whatever its parser meets
        raise GltfError(f"{path}: not a readable .glb ({type(exc).__name__}: {exc})") from None
    found = [p for m in doc.meshes or [] for p in m.primitives if EXTENSION in (p.extensions or {})]
    if not found:
        raise GltfError(f"{path}: no primitive carries {EXTENSION}")
    attributes = found[0].attributes
    attributes = attributes if isinstance(attributes, dict) else vars(attributes)
    blob = doc.binary_blob()

    def column(name: str) -> np.ndarray:
        if attributes.get(name) is None:
            raise GltfError(f"{path}: the splat primitive has no {name} attribute")
        accessor = doc.accessors[attributes[name]]
        if accessor.componentType != gl.FLOAT:
            raise GltfError(f"{path}: attribute {name} has componentType {accessor.componentType}; sa0 reads float")
        view = doc.bufferViews[accessor.bufferView]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor.type]
        start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
        return np.frombuffer(blob, np.float32, accessor.count * width, start).reshape(accessor.count, width)

    quats = column(ATTRIBUTES["ROTATION"])[:, [3, 0, 1, 2]]
    to = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731  (a writable copy)
    return Gaussians(means=to(column("POSITION")), quats=to(quats), scales=to(column(ATTRIBUTES["SCALE"])),
                     opacities=to(column(ATTRIBUTES["OPACITY"])[:, 0]),
                     colors=to(column(ATTRIBUTES["SH0"]) * SH_C0 + 0.5))

"""A self-contained web viewer for an avatar package: a static folder any browser plays.

    export_site(package, head, driver, out_dir, camera=0, fps=25) -> Path

The folder holds the page (index.html, viewer.js: a WebGL2 renderer of sa0's own, shipped in
sa0/export/site/) and the avatar's data:

  avatar.json     format "sa0-web" + version, counts, fps, image size, background, the motion's
                  bounding box, one camera per frame (OpenCV world-to-camera viewmat, row-major
                  4x4, and K 3x3), the byte size of every .bin file, subject and driver names
  gaussians.bin   float32 (N, 16), four RGBA texels per Gaussian: local position + face index |
                  unit local rotation (w, x, y, z) | local scale exp(log_s) + opacity sigmoid(logit) |
                  colour + 0 (the layout's binding is the face index; METHOD §1 needs nothing else)
  faces.bin       float32 (F, 4): the three vertex indices of each face + 0 (exact below 2^24)
  motion.bin      uint16 (T, V, 3): posed FLAME vertices per frame, quantised in the bounding box
                  (step = box size / 65535, ~5 µm on a head; 30 KB per frame for FLAME's 5,023)

Per frame the page uploads only V x 4 floats (the posed vertices) and the draw order: its vertex
shader rebuilds each face's frame from the vertex texture and binds the Gaussian (x = R_f p s_f +
c_f, R = R_f R(q), s = s_local s_f), projects it as sa0.render.projection does (EWA, Jacobian at
the mean clamped to 1.3x the field of view, + 0.3 px^2, the opacity-aware box), and the fragment
shader applies sa0's alpha rule (alpha = min(0.99, o exp(-power)), none below 1/255). Gaussians are
drawn back to front by camera depth into a float target with premultiplied "over" blending and
composited over the background once, which equals sa0's front-to-back sum except for its early stop
at transmittance 1e-4. OpenCV pixel (u, v), centres at +0.5, maps to GL as x = u, y = H - v.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from sa0.data.schema import Clip
from sa0.export.package import AvatarPackage
from sa0.export.reenact import check_layout
from sa0.fsutil import replace_dir
from sa0.head import HeadModel

SITE_FORMAT, SITE_VERSION = "sa0-web", 1
PAGE_FILES = ("index.html", "viewer.js", "live.js")
DATA_FILES = ("gaussians.bin", "faces.bin", "motion.bin")


def gaussian_texels(package: AvatarPackage) -> np.ndarray:
    """(N, 16) float32: the four texels per Gaussian that the page's vertex shader reads."""
    local = package.local
    quats = torch.nn.functional.normalize(local.rotations.float(), dim=-1)
    columns = [local.positions.float(), torch.as_tensor(package.face_idx, dtype=torch.float32)[:, None], quats,
               torch.exp(local.log_scales.float()), torch.sigmoid(local.opacity_logits.float())[:, None],
               local.colors.float()[:, :3], torch.zeros(len(quats), 1)]
    return torch.cat(columns, 1).numpy().astype(np.float32)


def quantise_motion(verts: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """(T, V, 3) float -> uint16 codes, box min, box max (code 0 = min, 65535 = max per axis)."""
    low, high = verts.reshape(-1, 3).min(0), verts.reshape(-1, 3).max(0)
    span = np.maximum(high - low, 1e-9)
    codes = np.round((verts - low) / span * 65535.0).clip(0, 65535).astype(np.uint16)
    return codes, low.astype(float).tolist(), (low + span).astype(float).tolist()


def dequantise_motion(codes: np.ndarray, low, high) -> np.ndarray:
    """The page's decoding, in numpy (what the browser sees)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return (low + codes.astype(np.float64) / 65535.0 * (high - low)).astype(np.float32)


def site_cameras(driver: Clip, camera: int) -> list[dict]:
    if not 0 <= camera < driver.num_cameras:
        raise ValueError(f"camera {camera} does not exist: the driver clip {driver.meta.key} has "
                         f"{driver.num_cameras} camera(s)")
    return [{"viewmat": driver.viewmats[t, camera].astype(float).reshape(-1).tolist(),
             "K": driver.Ks[t, camera].astype(float).reshape(-1).tolist()} for t in range(driver.num_timesteps)]


def export_site(package: AvatarPackage, head: HeadModel, driver: Clip, out_dir, camera: int = 0, fps: int = 25,
                background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Path:
    """Write the viewer folder `out_dir` (replaced if it exists, atomically: a reader never sees half)."""
    check_layout(package, head)
    verts = head.pose_track(driver.flame.as_dict(), shape=package.shape).cpu().numpy()
    codes, low, high = quantise_motion(verts)
    faces = np.concatenate([head.faces.cpu().numpy(), np.zeros((head.faces.shape[0], 1))], 1).astype(np.float32)
    blobs = {"gaussians.bin": gaussian_texels(package).tobytes(), "faces.bin": faces.tobytes(),
             "motion.bin": codes.tobytes()}
    h, w = driver.image_size
    meta = {"format": SITE_FORMAT, "version": SITE_VERSION, "gaussians": int(len(package.face_idx)),
            "vertices": int(verts.shape[1]), "faces": int(faces.shape[0]), "frames": int(verts.shape[0]),
            "fps": int(fps), "width": int(w), "height": int(h), "background": [float(b) for b in background],
            "bbox": [low, high], "cameras": site_cameras(driver, camera),
            "bytes": {name: len(blob) for name, blob in blobs.items()},
            "subject": package.meta.get("subject"), "driver": driver.meta.subject, "uv_resolution": package.uv_resolution}
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would keep a web server's user out
    try:
        page = files("sa0.export") / "site"
        for name in PAGE_FILES:
            (staging / name).write_bytes((page / name).read_bytes())
        for name, blob in blobs.items():
            (staging / name).write_bytes(blob)
        (staging / "avatar.json").write_text(json.dumps(meta, indent=1) + "\n")
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def site_bytes_per_second(site: Path) -> float:
    """Motion bytes per second of playback (what grows with the clip)."""
    meta = json.loads((Path(site) / "avatar.json").read_text())
    return meta["bytes"]["motion.bin"] / (meta["frames"] / meta["fps"])

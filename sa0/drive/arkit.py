"""ARKit's 52 blendshapes as a linear map onto a head's driving parameters, for every head sa0 poses.

The ICT-FaceKit head speaks ARKit natively (`ict_arkit_map`): its expressions are ARKit's and
jawOpen also turns the jaw joint by ICT's own jawOpen angle. For a head without ARKit expressions
(FLAME, the synthetic head) sa0 fits the map itself (`fit_arkit_map`), from the ICT head as the
reference: both heads carry MediaPipe Face Mesh landmarks on their surfaces, so the landmarks the
two share are points in correspondence. ICT's neutral landmarks are aligned to the target's by a
similarity transform (Umeyama); then for each ARKit shape a, ICT posed with a at weight 1 gives a
landmark displacement, carried by that transform onto the target's neutral landmarks, and the
target's expression coefficients, jaw and eye rotations that reproduce it are found by damped
Gauss-Newton: each expression damped by how far it moves the whole mesh (of the solutions that fit
the landmarks, the one that moves the rest of the head least), jaw and eyes by their effect on the
landmarks (Marquardt's scaling), with a floor so that an unknown that moves nothing stays at 0. Row
a of the map is that solution; a frame's parameters are its weights times the map (linear: FLAME's
expressions are; the jaw's axis-angle is nearly so at speech angles).

Its error is measured, not assumed (`ArkitMap.report`): per shape, the RMS over the shared
landmarks of what the target cannot reproduce, in millimetres of the target's scale, beside the
displacement it was asked for; and the same for random combinations of shapes through the linear
map (what a take plays). The map is identity-free (fitted on both heads' mean identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sa0.flame.landmarks import LandmarkLayer, load_mediapipe_embedding, with_irises
from sa0.heads.ict import ICT_NAME
from sa0.types import FlameParams

ARKIT_NAMES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)


@dataclass(frozen=True)
class ArkitMap:
    """Rows in ARKIT_NAMES order: expression (52, E), jaw (52, 3), eyes (52, 6) per unit weight;
    head: the head it is for; report: how well it fits (empty for a native map)."""

    expression: np.ndarray
    jaw: np.ndarray
    eyes: np.ndarray
    head: str
    report: dict = field(default_factory=dict)

    def apply(self, weights: np.ndarray, names=ARKIT_NAMES) -> dict[str, np.ndarray]:
        """(T, len(names)) weights -> {"expression": (T, E), "jaw": (T, 3), "eyes": (T, 6)}."""
        rows = [ARKIT_NAMES.index(n) for n in names]
        w = np.asarray(weights, np.float32)
        return {k: w @ getattr(self, k)[rows].astype(np.float32) for k in ("expression", "jaw", "eyes")}


def arkit_to_head(names, expression_names: list[str]) -> np.ndarray:
    """(len(names), E) matrix taking ARKit weights to expressions named as ICT's (eyeBlink_L for
    eyeBlinkLeft; a name ICT has in halves, such as browInnerUp, moves both)."""
    index = {n: k for k, n in enumerate(expression_names)}
    out = np.zeros((len(names), len(expression_names)), np.float32)
    for row, name in enumerate(names):
        base = name.replace("Left", "_L").replace("Right", "_R") if name.endswith(("Left", "Right")) else name
        for target in ([base] if base in index else [f"{base}_L", f"{base}_R"]):
            if target in index:
                out[row, index[target]] = 1.0
    return out


def ict_arkit_map(facts, head: str = ICT_NAME) -> ArkitMap:
    """The ICT head's own map: ARKit names to its expressions, jawOpen also the jaw joint."""
    jaw = np.zeros((len(ARKIT_NAMES), 3), np.float32)
    jaw[ARKIT_NAMES.index("jawOpen")] = np.asarray(facts.jaw_axis, np.float32) * facts.jaw_open_angle
    return ArkitMap(arkit_to_head(ARKIT_NAMES, facts.expression_names), jaw,
                    np.zeros((len(ARKIT_NAMES), 6), np.float32), head)


def head_landmarks(head) -> LandmarkLayer:
    """A head's MediaPipe landmark layer (its embedding plus the iris centres), in float64."""
    embedding = with_irises(load_mediapipe_embedding(head.model_dir, len(head.faces)), head.flame)
    return LandmarkLayer(head.flame, embedding).double()


def _pose(layer: LandmarkLayer, x: torch.Tensor) -> torch.Tensor:
    """x (B, E + 9): expression, jaw, eyes -> landmarks (B, L, 3) at the mean identity."""
    b, num_e = len(x), x.shape[1] - 9
    zeros = lambda k: torch.zeros(b, k, dtype=x.dtype)  # noqa: E731
    expr = torch.nn.functional.pad(x[:, :num_e], (0, layer.num_expression - num_e))
    return layer(FlameParams(zeros(layer.num_shape), expr, zeros(3), zeros(3), x[:, num_e:num_e + 3],
                             x[:, num_e + 3:], zeros(3)))


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray]:
    """Umeyama: scale s and rotation R with dst ~ s R src + t (points (N, 3))."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    u, sig, vt = np.linalg.svd(b.T @ a / len(a))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return float((sig * np.diag(d)).sum() / (a ** 2).sum(1).mean()), u @ d @ vt


def _solve(layer: LandmarkLayer, rows: np.ndarray, targets: torch.Tensor, prior: torch.Tensor, damping: float,
           iterations: int = 4) -> torch.Tensor:
    """Damped Gauss-Newton for each target (A, n, 3) landmark positions -> x (A, P); prior (P,): each
    unknown's damping scale (0: its effect on the landmarks, Marquardt's)."""
    count, size = targets.shape[0], len(prior)
    x = torch.zeros(count, size, dtype=torch.float64)
    eps = 1e-6
    for _ in range(iterations):
        for a in range(count):
            probe = x[a].repeat(size + 1, 1)
            probe[1:] += eps * torch.eye(size, dtype=torch.float64)
            out = _pose(layer, probe)[:, rows].reshape(size + 1, -1)
            jac = ((out[1:] - out[0]) / eps).T  # (3n, P)
            resid = out[0] - targets[a].reshape(-1)
            scale = torch.where(prior > 0, prior, (jac ** 2).sum(0))
            scale = scale.clamp_min(0.01 * scale.mean())  # an unknown that moves nothing stays at 0
            lhs = jac.T @ jac + damping * torch.diag(scale)
            x[a] -= torch.linalg.solve(lhs, jac.T @ resid + damping * scale * x[a])
    return x


def _mesh_prior(flame, num_e: int, num_landmarks: int) -> torch.Tensor:
    """Damping scales: an expression coefficient by how far it moves the whole mesh (its mean squared
    vertex displacement, counted over the landmarks' 3n residuals), so that of the solutions that
    reproduce the landmarks the one that moves the rest of the head least wins; pose by Marquardt."""
    dirs = flame.shapedirs[:, :, flame.num_shape:flame.num_shape + num_e].double()
    return torch.cat(((dirs ** 2).sum(1).mean(0) * num_landmarks, torch.zeros(9, dtype=torch.float64)))


def fit_arkit_map(target_head, reference_head, reference_facts, head: str, damping: float = 1e-3,
                  combos: int = 200, seed: int = 0) -> ArkitMap:
    """The linear ARKit map for `target_head` (any FLAME-format head with a MediaPipe embedding),
    fitted from `reference_head` (the ICT head, whose map is `ict_arkit_map(reference_facts)`)."""
    ref, tgt = head_landmarks(reference_head), head_landmarks(target_head)
    shared = sorted(set(ref.ids.tolist()) & set(tgt.ids.tolist()))
    if len(shared) < 20:
        raise ValueError(f"{target_head.model_dir}: its MediaPipe embedding shares {len(shared)} landmarks with the "
                         f"ICT head's; an ARKit map needs at least 20")
    r_rows = np.array([ref.ids.tolist().index(i) for i in shared])
    t_rows = np.array([tgt.ids.tolist().index(i) for i in shared])
    native = ict_arkit_map(reference_facts)
    num_ref = ref.num_expression
    ref_x = torch.as_tensor(np.concatenate((native.expression[:, :num_ref], native.jaw, native.eyes), 1), dtype=torch.float64)
    num_e = min(tgt.num_expression, 100)  # FLAME's leading 100 (the synthetic head has 100; ICT 53)
    with torch.no_grad():
        ref_rest = _pose(ref, torch.zeros(1, num_ref + 9, dtype=torch.float64))[0, r_rows].numpy()
        tgt_rest = _pose(tgt, torch.zeros(1, num_e + 9, dtype=torch.float64))[0, t_rows].numpy()
        scale, rot = _similarity(ref_rest, tgt_rest)
        to_target = lambda x: torch.as_tensor(  # noqa: E731
            scale * (_pose(ref, x)[:, r_rows].numpy() - ref_rest) @ rot.T)
        wanted = to_target(ref_x)
        x = _solve(tgt, t_rows, wanted + torch.as_tensor(tgt_rest), _mesh_prior(target_head.flame, num_e, len(shared)),
                   damping)
        got = _pose(tgt, x)[:, t_rows] - torch.as_tensor(tgt_rest)
        expression = np.zeros((len(ARKIT_NAMES), tgt.num_expression), np.float32)
        expression[:, :num_e] = x[:, :num_e].numpy()
        weights = _random_takes(combos, seed)
        combo_wanted = to_target(torch.as_tensor(weights) @ ref_x)
        combo_x = torch.as_tensor(weights) @ x
        combo_got = _pose(tgt, combo_x)[:, t_rows] - torch.as_tensor(tgt_rest)
    report = {"shared_landmarks": len(shared), "scale": scale,
              "shapes": _errors(got, wanted, ARKIT_NAMES), "combinations": _errors(combo_got, combo_wanted)}
    return ArkitMap(expression, x[:, num_e:num_e + 3].numpy().astype(np.float32),
                    x[:, num_e + 3:].numpy().astype(np.float32), head, report)


def _random_takes(count: int, seed: int) -> np.ndarray:
    """Random sparse ARKit frames: each shape on with probability 0.15, at a weight in (0, 1)."""
    rng = np.random.default_rng(seed)
    on = rng.random((count, len(ARKIT_NAMES))) < 0.15
    return (on * rng.random((count, len(ARKIT_NAMES)))).astype(np.float64)


def _errors(got: torch.Tensor, wanted: torch.Tensor, names=None) -> dict:
    """RMS over landmarks (mm) of the residual and of the wanted displacement, per row and overall."""
    rms = lambda d: (d ** 2).sum(-1).mean(-1).sqrt().numpy() * 1000  # noqa: E731
    resid, asked = rms(got - wanted), rms(wanted)
    moving = asked > 1e-3
    out = {"rms_mm": float(np.sqrt((resid ** 2).mean())), "asked_rms_mm": float(np.sqrt((asked ** 2).mean())),
           "explained": float(1 - (resid[moving] ** 2).sum() / max((asked[moving] ** 2).sum(), 1e-12))}
    if names is not None:
        out["per_shape"] = {n: [round(float(r), 3), round(float(a), 3)] for n, r, a in zip(names, resid, asked)}
    return out


def arkit_map_for(head) -> ArkitMap:
    """The ARKit map of a loaded head (sa0.head.HeadModel): ICT's own, else fitted from the ICT head
    that ships in the package (about a second). ValueError (naming the file) when the head has no
    MediaPipe embedding to put the two heads in correspondence."""
    from sa0.config import FlameConfig, LayoutConfig
    from sa0.flame.io import FlameFileError
    from sa0.head import load_head_model
    from sa0.heads import head_name
    from sa0.heads.ict import IctFacts, ict_dir, is_ict

    name = head_name(head.model_dir)
    if is_ict(head.model_dir):
        return ict_arkit_map(IctFacts.read(head.model_dir), name)
    key = (str(Path(head.model_dir).resolve()), head.flame.num_expression)
    if key not in _FITTED:
        reference = load_head_model(FlameConfig(model_dir=str(ict_dir())), LayoutConfig(uv_resolution=8))
        try:
            _FITTED[key] = fit_arkit_map(head, reference, IctFacts.read(), name)
        except FlameFileError as exc:
            raise ValueError(f"ARKit weights need the head's MediaPipe landmarks to map onto it: {exc}") from None
    return _FITTED[key]


_FITTED: dict[tuple[str, int], ArkitMap] = {}  # one fit per head and process (drive.py's stream and sliders)


def describe(mapping: ArkitMap) -> str:
    """One line on where a map came from and how well it fits."""
    if not mapping.report:
        return f"ARKit weights drive the {mapping.head} head natively"
    combos = mapping.report["combinations"]
    return (f"ARKit weights -> the {mapping.head} head through a linear map fitted from the ICT head "
            f"({mapping.report['shared_landmarks']} shared landmarks): it reproduces "
            f"{100 * combos['explained']:.1f} % of ICT's landmark motion (RMS error {combos['rms_mm']:.2f} mm of "
            f"{combos['asked_rms_mm']:.2f} mm asked, random takes)")

"""sa0's FLAME layer: FLAME coefficients -> posed vertices (METHOD §1 "Animation").

LBS with shape/expression blend shapes and pose correctives, batched and differentiable. File
loading and validation live in sa0.flame.io; the blend-skinning math is smplx's `lbs`.
"""

from __future__ import annotations

import copy

import torch
from smplx.lbs import lbs

from sa0.flame.io import FlameAssets
from sa0.types import FlameParams


def bake_identity(template: torch.Tensor, dirs: torch.Tensor, num_shape: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """(template (..., 3), blend shapes (..., 3, num_shape + E)) -> (template + the identity's offset,
    the E expression blend shapes); ValueError unless shape is (num_shape,)."""
    shape = torch.as_tensor(shape, dtype=template.dtype, device=template.device)
    if shape.shape != (num_shape,):
        raise ValueError(f"with_identity: shape must be ({num_shape},), got {tuple(shape.shape)}")
    return template + dirs[..., :num_shape] @ shape, dirs[..., num_shape:].contiguous()


class FlameLayer(torch.nn.Module):
    """Poses a FLAME model. Buffers only; no trainable parameters.

    num_shape and num_expression select the leading components of each basis (at most what the
    model has: FLAME 300 and 100, ICT-FaceKit 100 and 53).
    """

    def __init__(
        self,
        assets: FlameAssets,
        num_shape: int = 300,
        num_expression: int = 100,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if not 0 <= num_shape <= assets.max_shape:
            raise ValueError(f"num_shape must be in [0, {assets.max_shape}] for {assets.source}, got {num_shape}")
        if not 0 <= num_expression <= assets.max_expression:
            raise ValueError(
                f"num_expression must be in [0, {assets.max_expression}] for {assets.source}, got {num_expression}"
            )
        self.num_shape = num_shape
        self.num_expression = num_expression
        cast = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
        dirs = torch.cat(
            (
                cast(assets.shapedirs[:, :, :num_shape]),
                cast(assets.shapedirs[:, :, assets.expression_offset : assets.expression_offset + num_expression]),
            ),
            dim=-1,
        )
        self.register_buffer("v_template", cast(assets.v_template))
        self.register_buffer("shapedirs", dirs)
        # (V, 3, 36) -> (36, V*3), the layout lbs() multiplies with.
        self.register_buffer("posedirs", cast(assets.posedirs).reshape(-1, assets.posedirs.shape[-1]).T.contiguous())
        self.register_buffer("J_regressor", cast(assets.J_regressor))
        self.register_buffer("lbs_weights", cast(assets.weights))
        self.register_buffer("parents", torch.as_tensor(assets.parents, dtype=torch.long))
        self.register_buffer("faces", torch.as_tensor(assets.faces, dtype=torch.long))

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def with_identity(self, shape: torch.Tensor) -> "FlameLayer":
        """A copy with the identity `shape` (num_shape,) baked into its template: it takes FlameParams
        whose shape is (B, 0) and poses as this layer does with `shape`. A fixed identity's poses
        (live driving) then multiply only the expression basis."""
        baked = copy.deepcopy(self)
        baked.v_template, baked.shapedirs = bake_identity(self.v_template, self.shapedirs, self.num_shape, shape)
        baked.num_shape = 0
        return baked

    def _check(self, params: FlameParams) -> None:
        batch = params.batch_size
        expect = {
            "shape": (batch, self.num_shape),
            "expression": (batch, self.num_expression),
            "global_rot": (batch, 3),
            "neck": (batch, 3),
            "jaw": (batch, 3),
            "eyes": (batch, 6),
            "translation": (batch, 3),
        }
        for name, shape in expect.items():
            got = tuple(getattr(params, name).shape)
            if got != shape:
                raise ValueError(f"FlameParams.{name} must have shape {shape}, got {got}")

    def forward_with_joints(self, params: FlameParams) -> tuple[torch.Tensor, torch.Tensor]:
        """-> posed vertices (B, V, 3) and joints (B, 5, 3), both translated."""
        self._check(params)
        dtype = self.v_template.dtype
        betas = torch.cat((params.shape, params.expression), dim=-1).to(dtype)
        pose = torch.cat((params.global_rot, params.neck, params.jaw, params.eyes), dim=-1).to(dtype)
        verts, joints = lbs(
            betas, pose, self.v_template, self.shapedirs, self.posedirs,
            self.J_regressor, self.parents, self.lbs_weights, pose2rot=True,
        )
        offset = params.translation.to(dtype)[:, None, :]
        return verts + offset, joints + offset

    def forward(self, params: FlameParams) -> torch.Tensor:
        """-> posed vertices (B, V, 3)."""
        return self.forward_with_joints(params)[0]

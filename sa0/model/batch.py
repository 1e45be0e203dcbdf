"""Example batch -> generator inputs: what both training and inference feed the generator.

prepare_batch: an example batch (sa0.data.examples / ExampleStream, tensors or arrays) -> GeneratorInputs
plus the target's posed mesh, camera, image (composited over black by its matte) and face box, on the
head's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sa0.head import HeadModel
from sa0.model.generator import GeneratorInputs
from sa0.types import FlameParams

FLAME_NAMES = ("shape", "expression", "global_rot", "neck", "jaw", "eyes", "translation")


@dataclass(frozen=True)
class PreparedBatch:
    inputs: GeneratorInputs
    tgt_verts: torch.Tensor  # (B, V, 3)
    tgt_K: torch.Tensor  # (B, 3, 3)
    tgt_image: torch.Tensor  # (B, H, W, 3) in [0, 1], matted over black
    tgt_box: torch.Tensor  # (B, 4)


def _flame(batch: dict, prefix: str, head: HeadModel, lead: tuple[int, ...]) -> FlameParams:
    """Per-frame FLAME fields, padded/cut to the layer's component counts."""
    def field(name, width):
        value = torch.as_tensor(batch[f"{prefix}_flame_{name}"]).float().reshape(-1, batch[f"{prefix}_flame_{name}"].shape[-1])
        if value.shape[-1] >= width:
            return value[:, :width]
        return torch.nn.functional.pad(value, (0, width - value.shape[-1]))

    widths = {"shape": head.flame.num_shape, "expression": head.flame.num_expression, "global_rot": 3, "neck": 3,
              "jaw": 3, "eyes": 6, "translation": 3}
    return FlameParams(*(field(n, widths[n]) for n in FLAME_NAMES))


def prepare_batch(batch: dict, head: HeadModel, device: torch.device | str = "cpu") -> PreparedBatch:
    """Example batch (tensors or arrays with the sa0.data.examples keys) -> model inputs and targets
    on `device` (where `head` must live)."""
    batch = {k: torch.as_tensor(v).to(device) for k, v in batch.items()}
    src_images = torch.as_tensor(batch["src_images"])
    b, k = src_images.shape[:2]
    with torch.no_grad():
        src_verts = head.flame(_flame(batch, "src", head, (b, k))).view(b, k, -1, 3)
        tgt_params = _flame(batch, "tgt", head, (b,))
        tgt_verts = head.flame(tgt_params)
    expression = torch.nn.functional.pad(tgt_params.expression[:, :100], (0, max(0, 100 - tgt_params.expression.shape[1])))
    condition = torch.cat((expression, tgt_params.global_rot, tgt_params.jaw, tgt_params.eyes), -1)
    image = torch.as_tensor(batch["tgt_image"]).float() / 255.0
    matte = torch.as_tensor(batch["tgt_matte"]).float()[..., None] / 255.0
    inputs = GeneratorInputs(
        src_images=src_images.float().permute(0, 1, 4, 2, 3) / 255.0,
        src_mask=torch.as_tensor(batch["src_mask"]).bool(),
        src_verts=src_verts,
        src_viewmats=torch.as_tensor(batch["src_viewmats"]).float(),
        src_Ks=torch.as_tensor(batch["src_Ks"]).float(),
        tgt_viewmat=torch.as_tensor(batch["tgt_viewmat"]).float(),
        tgt_condition=condition,
    )
    return PreparedBatch(inputs, tgt_verts, torch.as_tensor(batch["tgt_K"]).float(), image * matte,
                         torch.as_tensor(batch["tgt_face_box"]).float())

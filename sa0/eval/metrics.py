"""Evaluation metrics, defined once (METHOD §6). Images are (B, H, W, 3) float in [0, 1].

Conventions every number sa0 reports follows:
* Renders and ground truth are both composited over the same background, black unless a protocol
  says otherwise; the ground truth by its matte. Results name the background they used.
* PSNR uses data range 1 and is computed per image, then averaged over images. Identical images
  have MSE 0; their PSNR is capped at PSNR_CAP = 100 dB (so results stay finite JSON).
* Masked PSNR / MSE average only over pixels where the mask (the ground-truth matte > 0.5) is set.
* SSIM: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, per channel then averaged
  (pytorch-msssim; tested against scikit-image). MS-SSIM: sa0's full-resolution multi-sigma form.
* LPIPS: the lpips package with AlexNet ("lpips_alex") and VGG ("lpips_vgg") on [-1, 1] inputs. When
  its backbone weights cannot be loaded the value is `Unavailable(reason)`, never a number.
* maxAR: the largest projected axis ratio of the Gaussians a render saw (sa0.losses.antispike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sa0.losses.generator_terms import ms_ssim_sigmas
from sa0.losses.photometric import ssim as _ssim

PSNR_CAP = 100.0


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed, and why (serialised as {"unavailable": reason})."""

    reason: str

    def to_json(self) -> dict:
        return {"unavailable": self.reason}


def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image MSE (B,); with mask (B, H, W) only over the masked pixels (all channels)."""
    err = ((pred - target) ** 2).mean(-1)
    if mask is None:
        return err.flatten(1).mean(1)
    m = mask.to(err.dtype)
    return (err * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB (B,), data range 1, capped at PSNR_CAP for identical images."""
    value = mse(pred, target, mask)
    out = torch.full_like(value, PSNR_CAP)
    nonzero = value > 0
    out[nonzero] = (-10.0 * torch.log10(value[nonzero])).clamp(max=PSNR_CAP)
    return out


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (B,)."""
    return torch.stack([_ssim(p[None], t[None]) for p, t in zip(pred, target)])


def ms_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM (B,) (Gaussian sigmas 0.5..8; needs images of at least 49 px)."""
    return torch.stack([ms_ssim_sigmas(p[None], t[None]) for p, t in zip(pred, target)])


class LPIPS:
    """lpips_alex / lpips_vgg, or Unavailable with the loader's reason (no download is attempted
    beyond what torchvision does itself; offline it fails fast and says where weights go)."""

    def __init__(self, net: str):
        self.net, self.model, self.reason = net, None, None
        try:
            from sa0.losses.generator_terms import make_lpips

            self.model = make_lpips(net)
        except Exception as exc:  # noqa: BLE001 - any loader failure means "unavailable", with its reason
            self.reason = f"LPIPS ({net}) weights unavailable: {exc}"[:400]

    def __call__(self, pred: torch.Tensor, target: torch.Tensor):
        if self.model is None:
            return Unavailable(self.reason)
        with torch.no_grad():
            return self.model(pred.permute(0, 3, 1, 2) * 2 - 1, target.permute(0, 3, 1, 2) * 2 - 1).flatten()


def mean_or_unavailable(values: list) -> float | Unavailable:
    """Mean over a list of numbers; the first Unavailable if any value is one (never a partial mean)."""
    for v in values:
        if isinstance(v, Unavailable):
            return v
    finite = [float(v) for v in values]
    return float(sum(finite) / len(finite)) if finite else Unavailable("no frames")


def to_json(value):
    if isinstance(value, Unavailable):
        return value.to_json()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value

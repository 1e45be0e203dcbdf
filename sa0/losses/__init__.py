"""Losses: photometric terms and the anti-spike regulariser."""

from sa0.losses.antispike import aspect_penalty, clamp_log_scales, max_aspect_ratio, projected_eigenvalues
from sa0.losses.photometric import l1, psnr, ssim, ssim_per_image

__all__ = ["aspect_penalty", "clamp_log_scales", "l1", "max_aspect_ratio", "projected_eigenvalues", "psnr", "ssim",
           "ssim_per_image"]

"""Tiled rasteriser in pure torch with a hand-written backward (the CPU default; runs on CUDA too).

Binning: each Gaussian's screen box (sa0.render.projection) is split into the tiles it touches;
the (tile, Gaussian) pairs are sorted by tile, then depth. Compositing walks every tile's list in
chunks of K Gaussians: at level j all tiles with more than j*K entries (and with some pixel still
transmitting light) evaluate their next K Gaussians against their P = tile_size^2 pixels at once,
as (A, P, K) tensors. Front-to-back order holds because levels run in order and each carries the
per-pixel transmittance. Tiles whose pixels are all saturated drop out (3DGS's early stop).

The backward recomputes each level instead of keeping autograd graphs (memory stays at one level),
using the closed form d colour / d alpha_k = T_k c_k - C_after_k / (1 - alpha_k), where C_after_k
is what the pixel gathered behind k plus the background; C_after_k comes from the final colour
minus a running prefix sum, so the levels can again be walked front to back.
Semantics are identical to sa0.render.dense (its slow twin); tests compare outputs and gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sa0.render.dense import TRANSMITTANCE_MIN
from sa0.render.projection import ALPHA_THRESHOLD, Projected


@dataclass(frozen=True)
class TileLists:
    """Sorted (tile, Gaussian) pairs. gauss (I,) flat index b*N + n; start/count (B*tiles,).
    The native kernel's binning also lists each Gaussian's entries: members[first[g]:first[g + 1]]."""

    gauss: torch.Tensor
    start: torch.Tensor
    count: torch.Tensor
    tiles_x: int
    tiles_y: int
    first: torch.Tensor | None = None
    members: torch.Tensor | None = None


def bin_gaussians(proj: Projected, width: int, height: int, tile_size: int) -> TileLists:
    """Pairs of (tile, Gaussian) for every valid Gaussian, sorted by tile then depth."""
    num_cams, n = proj.depths.shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    per_image = tiles_x * tiles_y
    device = proj.means2d.device
    with torch.no_grad():
        valid = proj.valid
        depth = torch.where(valid, proj.depths, torch.full_like(proj.depths, float("inf")))
        order = torch.argsort(depth, dim=1, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(n, device=device).expand(num_cams, n))
        flat = torch.nonzero(valid.reshape(-1)).squeeze(1)
        mean = proj.means2d.detach().reshape(-1, 2)[flat]
        radius = proj.radii.reshape(-1, 2)[flat].to(mean.dtype)
        lo = torch.floor(mean - radius - 0.5)  # first pixel index whose centre may be inside, minus margin
        hi = torch.floor(mean + radius - 0.5) + 1
        limit = torch.tensor([width - 1, height - 1], device=device)
        lo = (lo.long().clamp(min=0).minimum(limit)) // tile_size
        hi = (hi.long().clamp(min=0).minimum(limit)) // tile_size
        span = (hi - lo + 1).clamp(min=0)
        counts = span[:, 0] * span[:, 1]
        pair_gauss = torch.repeat_interleave(flat, counts)
        offset = torch.arange(pair_gauss.shape[0], device=device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        width_in_tiles = torch.repeat_interleave(span[:, 0], counts)
        tx = torch.repeat_interleave(lo[:, 0], counts) + offset % width_in_tiles.clamp(min=1)
        ty = torch.repeat_interleave(lo[:, 1], counts) + offset // width_in_tiles.clamp(min=1)
        tile = (pair_gauss // n) * per_image + ty * tiles_x + tx
        key = tile * n + rank.reshape(-1)[pair_gauss]
        key, perm = torch.sort(key)
        gauss = pair_gauss[perm]
        count = torch.bincount(key // n, minlength=num_cams * per_image)
        start = torch.cumsum(count, 0) - count
    return TileLists(gauss, start, count, tiles_x, tiles_y)


def _pixel_centres(tiles: torch.Tensor, lists: TileLists, tile_size: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(A,) global tile ids -> pixel centre x, y (A, P)."""
    local = torch.arange(tile_size * tile_size, device=tiles.device)
    in_image = tiles % (lists.tiles_x * lists.tiles_y)
    px = (in_image % lists.tiles_x)[:, None] * tile_size + local % tile_size
    py = (in_image // lists.tiles_x)[:, None] * tile_size + local // tile_size
    return px.to(dtype) + 0.5, py.to(dtype) + 0.5


@dataclass
class _Chunk:
    dx: torch.Tensor
    dy: torch.Tensor
    falloff: torch.Tensor  # exp(-power)
    raw: torch.Tensor  # opacity * falloff, before the clamp
    keep: torch.Tensor  # evaluated (not skipped, not padding)
    alpha: torch.Tensor
    used: torch.Tensor  # before the pixel's stop
    trans_before: torch.Tensor
    trans_after: torch.Tensor
    weight: torch.Tensor


def _eval_chunk(px, py, mean, conic, opacity, pad, trans, alpha_max) -> _Chunk:
    """Pixels (A, P) against a chunk of Gaussians (A, K) given transmittance (A, P) so far."""
    dx = px[:, :, None] - mean[:, None, :, 0]
    dy = py[:, :, None] - mean[:, None, :, 1]
    a, b, c = (conic[:, None, :, i] for i in range(3))
    power = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    falloff = torch.exp(-power)
    raw = opacity[:, None, :] * falloff
    alpha = raw.clamp(max=alpha_max)
    keep = (power >= 0) & (alpha >= ALPHA_THRESHOLD) & ~pad[:, None, :]
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    trans_after = trans[:, :, None] * torch.cumprod(1.0 - alpha, dim=2)
    trans_before = torch.cat((trans[:, :, None], trans_after[:, :, :-1]), dim=2)
    used = trans_after > TRANSMITTANCE_MIN
    weight = alpha * trans_before * used
    return _Chunk(dx, dy, falloff, raw, keep, alpha, used, trans_before, trans_after, weight)


def _chunk_indices(tiles, lists: TileLists, level: int, chunk: int):
    pos = lists.start[tiles, None] + level * chunk + torch.arange(chunk, device=tiles.device)
    pad = pos >= (lists.start + lists.count)[tiles, None]
    gauss = lists.gauss[pos.clamp(max=max(lists.gauss.shape[0] - 1, 0))]
    return gauss, pad


def _tiles_to_image(values: torch.Tensor, lists: TileLists, tile_size: int, num_cams: int, height: int, width: int):
    """(B*tiles, P, C) -> (B, H, W, C)."""
    c = values.shape[-1]
    img = values.reshape(num_cams, lists.tiles_y, lists.tiles_x, tile_size, tile_size, c)
    img = img.permute(0, 1, 3, 2, 4, 5).reshape(num_cams, lists.tiles_y * tile_size, lists.tiles_x * tile_size, c)
    return img[:, :height, :width]


def _image_to_tiles(img: torch.Tensor, lists: TileLists, tile_size: int):
    """(B, H, W, C) -> (B*tiles, P, C), zero-padded at the right/bottom edges."""
    num_cams, height, width, c = img.shape
    full = img.new_zeros(num_cams, lists.tiles_y * tile_size, lists.tiles_x * tile_size, c)
    full[:, :height, :width] = img
    full = full.reshape(num_cams, lists.tiles_y, tile_size, lists.tiles_x, tile_size, c).permute(0, 1, 3, 2, 4, 5)
    return full.reshape(-1, tile_size * tile_size, c)


class _TiledRasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, background, lists, width, height, tile_size, chunk, alpha_max):
        num_tiles = lists.count.shape[0]
        num_cams = background.shape[0]
        pixels = tile_size * tile_size
        dtype = means2d.dtype
        acc = means2d.new_zeros(num_tiles, pixels, colors.shape[-1])
        trans_all = means2d.new_ones(num_tiles, pixels)  # includes the stopping Gaussian
        trans_out = means2d.new_ones(num_tiles, pixels)  # the pixel's final transmittance
        pending = torch.nonzero(lists.count > 0).squeeze(1)
        levels = []
        level = 0
        while pending.numel() > 0:
            tiles = pending
            gauss, pad = _chunk_indices(tiles, lists, level, chunk)
            px, py = _pixel_centres(tiles, lists, tile_size, dtype)
            ch = _eval_chunk(px, py, means2d[gauss], conics[gauss], opacities[gauss], pad, trans_all[tiles], alpha_max)
            acc[tiles] += torch.bmm(ch.weight, colors[gauss])
            trans_out[tiles] *= torch.prod(1.0 - ch.alpha * ch.used, dim=2)
            trans_all[tiles] = ch.trans_after[:, :, -1]
            levels.append(tiles)
            level += 1
            alive = (lists.count[tiles] > level * chunk) & (trans_all[tiles] > TRANSMITTANCE_MIN).any(1)
            pending = tiles[alive]
        tile_cam = torch.arange(num_tiles, device=means2d.device) // (lists.tiles_x * lists.tiles_y)
        final = acc + trans_out[:, :, None] * background[tile_cam][:, None, :]
        ctx.save_for_backward(means2d, conics, opacities, colors, background, final, trans_out)
        ctx.levels, ctx.lists = levels, lists
        ctx.settings = (width, height, tile_size, chunk, alpha_max)
        image = _tiles_to_image(final, lists, tile_size, num_cams, height, width)
        alpha = _tiles_to_image(1.0 - trans_out[:, :, None], lists, tile_size, num_cams, height, width)
        return image, alpha

    @staticmethod
    def backward(ctx, grad_image, grad_alpha):
        means2d, conics, opacities, colors, background, final, trans_out = ctx.saved_tensors
        width, height, tile_size, chunk, alpha_max = ctx.settings
        lists = ctx.lists
        dtype = means2d.dtype
        g_col = _image_to_tiles(grad_image.contiguous(), lists, tile_size)
        g_alp = _image_to_tiles(grad_alpha.contiguous(), lists, tile_size)[:, :, 0]
        g_total = (g_col * final).sum(-1)
        prefix = torch.zeros_like(g_total)
        trans_all = torch.ones_like(g_total)
        g_means = torch.zeros_like(means2d)
        g_conics = torch.zeros_like(conics)
        g_opac = torch.zeros_like(opacities)
        g_colors = torch.zeros_like(colors)
        for level, tiles in enumerate(ctx.levels):
            gauss, pad = _chunk_indices(tiles, lists, level, chunk)
            px, py = _pixel_centres(tiles, lists, tile_size, dtype)
            conic = conics[gauss]
            ch = _eval_chunk(px, py, means2d[gauss], conic, opacities[gauss], pad, trans_all[tiles], alpha_max)
            gc = g_col[tiles]
            col = colors[gauss]
            s = torch.bmm(gc, col.transpose(1, 2))  # (A, P, K): dL/dcolour . c_k
            ws = ch.weight * s
            behind = (g_total[tiles] - prefix[tiles])[:, :, None] - torch.cumsum(ws, dim=2)
            inv = 1.0 / (1.0 - ch.alpha)
            g_alpha = ch.trans_before * s - (behind - (g_alp[tiles] * trans_out[tiles])[:, :, None]) * inv
            g_raw = torch.where(ch.used & ch.keep & (ch.raw < alpha_max), g_alpha, torch.zeros_like(g_alpha))
            g_power = -ch.raw * g_raw
            sx, sy = (g_power * ch.dx).sum(1), (g_power * ch.dy).sum(1)
            a, b, c = conic.unbind(-1)
            g_m = torch.stack((-(a * sx + b * sy), -(b * sx + c * sy)), -1)
            g_q = torch.stack(
                (0.5 * (g_power * ch.dx * ch.dx).sum(1), (g_power * ch.dx * ch.dy).sum(1), 0.5 * (g_power * ch.dy * ch.dy).sum(1)),
                -1,
            )
            g_o = (ch.falloff * g_raw).sum(1)
            g_c = torch.bmm(ch.weight.transpose(1, 2), gc)
            real = ~pad.reshape(-1)
            idx = gauss.reshape(-1)[real]
            g_means.index_add_(0, idx, g_m.reshape(-1, 2)[real])
            g_conics.index_add_(0, idx, g_q.reshape(-1, 3)[real])
            g_opac.index_add_(0, idx, g_o.reshape(-1)[real])
            g_colors.index_add_(0, idx, g_c.reshape(-1, colors.shape[-1])[real])
            prefix[tiles] += ws.sum(2)
            trans_all[tiles] = ch.trans_after[:, :, -1]
        per_image = lists.tiles_x * lists.tiles_y
        g_bg = (g_col * trans_out[:, :, None]).sum(1).reshape(background.shape[0], per_image, -1).sum(1)
        return g_means, g_conics, g_opac, g_colors, g_bg, None, None, None, None, None, None


def rasterize_tiled(
    proj: Projected,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    background: torch.Tensor,
    width: int,
    height: int,
    alpha_max: float = 0.99,
    tile_size: int = 16,
    chunk: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> image (B, H, W, C), alpha (B, H, W, 1). colors (B, N, C), opacities (B, N), background (B, C)."""
    lists = bin_gaussians(proj, width, height, tile_size)
    c = colors.shape[-1]
    return _TiledRasterize.apply(
        proj.means2d.reshape(-1, 2),
        proj.conics.reshape(-1, 3),
        opacities.reshape(-1),
        colors.reshape(-1, c),
        background,
        lists,
        width,
        height,
        tile_size,
        chunk,
        alpha_max,
    )

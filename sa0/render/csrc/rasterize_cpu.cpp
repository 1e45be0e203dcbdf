// sa0 native CPU rasteriser: 3DGS compositing forward and its exact backward.
//
// Inputs are per (tile, Gaussian) entry, sorted by tile then depth (binning happens in torch):
// means (I, 2), conics (I, 3) as (xx, xy, yy) of the inverse 2D covariance, opacities (I,),
// colours (I, C); tile_start / tile_count (B * tiles,) index into the entries.
// Semantics match sa0/render/dense.py: alpha = min(alpha_max, o exp(-power)), skipped when
// power < 0 or alpha < 1/255, a pixel stops before the entry that would bring its
// transmittance to <= 1e-4; colour = sum alpha_k T_k c_k + T_final background.
//
// Work is split over tiles on torch's thread pool (torch.get_num_threads()), taken one at a time.
// The backward writes gradients per entry (each entry belongs to one tile, so to one thread);
// torch then sums entries per Gaussian. Results do not depend on the number of threads.
//
// Two loop orders, bitwise equal (the same float operations in the same order per pixel and per
// entry), chosen per call by `boxed`:
//   plain: every pixel of a tile against every entry of the tile (the obvious loop; the twin);
//   boxed: entry by entry, only the pixels inside the entry's box, i.e. the ellipse where its power
//          stays below the 1/255 cutoff, widened by a safety margin; each pixel keeps its running
//          transmittance (and, backward, its gathered colour) between entries. Pixels outside the
//          box would have been skipped by the plain loop's own test, so nothing else changes; a
//          small Gaussian now costs its area instead of the whole tile's 256 pixels.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

namespace {

constexpr double kAlphaThreshold = 1.0 / 255.0;
constexpr double kTransmittanceMin = 1e-4;

struct Grid {
  int64_t width, height, tile_size, tiles_x, tiles_y, channels;
  int64_t per_image() const { return tiles_x * tiles_y; }
};

void check_inputs(const at::Tensor& means, const at::Tensor& conics, const at::Tensor& opacities,
                  const at::Tensor& colors, const at::Tensor& start, const at::Tensor& count,
                  const at::Tensor& background) {
  for (const auto* t : {&means, &conics, &opacities, &colors, &background}) {
    TORCH_CHECK(t->device().is_cpu(), "sa0 native rasteriser: CPU tensors only");
    TORCH_CHECK(t->is_contiguous(), "sa0 native rasteriser: contiguous tensors only");
    TORCH_CHECK(t->scalar_type() == means.scalar_type(), "sa0 native rasteriser: mixed dtypes");
  }
  TORCH_CHECK(start.scalar_type() == at::kLong && count.scalar_type() == at::kLong,
              "sa0 native rasteriser: tile_start/tile_count must be int64");
  TORCH_CHECK(start.is_contiguous() && count.is_contiguous(), "tile lists must be contiguous");
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 2, "means must be (I, 2)");
  TORCH_CHECK(conics.dim() == 2 && conics.size(1) == 3, "conics must be (I, 3)");
  TORCH_CHECK(colors.dim() == 2 && colors.size(0) == means.size(0), "colors must be (I, C)");
  TORCH_CHECK(opacities.dim() == 1 && opacities.size(0) == means.size(0), "opacities must be (I,)");
}

// Per entry of a tile: the power above which alpha is surely below 1/255 (ln(255 o) plus a margin,
// so the exact comparison below still decides every borderline case). Skips most exp() calls.
template <typename scalar_t>
void power_cutoffs(const scalar_t* opacities, int64_t s, int64_t n, std::vector<scalar_t>& cutoff) {
  cutoff.resize(n);
  for (int64_t k = 0; k < n; ++k)
    cutoff[k] = std::log(std::max(opacities[s + k], scalar_t(1e-30)) / scalar_t(kAlphaThreshold)) + scalar_t(1e-3);
}

template <typename scalar_t>
inline bool eval_alpha(const scalar_t* mean, const scalar_t* conic, scalar_t opacity, scalar_t cutoff, scalar_t x,
                       scalar_t y, scalar_t alpha_max, scalar_t& dx, scalar_t& dy, scalar_t& falloff, scalar_t& raw,
                       scalar_t& alpha) {
  dx = x - mean[0];
  dy = y - mean[1];
  const scalar_t power = scalar_t(0.5) * (conic[0] * dx * dx + conic[2] * dy * dy) + conic[1] * dx * dy;
  if (power < 0 || power > cutoff) return false;
  falloff = std::exp(-power);
  raw = opacity * falloff;
  alpha = std::min(alpha_max, raw);
  return alpha >= scalar_t(kAlphaThreshold);
}

// The pixels [bx0, bx1) x [by0, by1) of the tile (local coordinates, tile origin x0, y0, size w x h)
// whose centres can have power <= cutoff: |dx| <= sqrt(2 cutoff (Q^-1)_xx), likewise dy, for the
// conic Q, plus a margin of 1 px + 0.1 %. A conic that is not positive definite gets the whole tile.
template <typename scalar_t>
inline void entry_box(const scalar_t* mean, const scalar_t* conic, scalar_t cutoff, int64_t x0, int64_t y0, int64_t w,
                      int64_t h, int64_t& bx0, int64_t& bx1, int64_t& by0, int64_t& by1) {
  const double a = conic[0], b = conic[1], c = conic[2];
  const double det = a * c - b * b;
  bx0 = 0, bx1 = w, by0 = 0, by1 = h;
  if (!(a > 0 && c > 0 && det > 0) || !(cutoff > 0)) return;
  const double ex = std::sqrt(2.0 * double(cutoff) * c / det), ey = std::sqrt(2.0 * double(cutoff) * a / det);
  if (!std::isfinite(ex) || !std::isfinite(ey)) return;
  const double mx = double(mean[0]) - double(x0) - 0.5, my = double(mean[1]) - double(y0) - 0.5;  // in pixel indices
  const double mgx = 1.0 + 1e-3 * ex, mgy = 1.0 + 1e-3 * ey;
  bx0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::max(-1.0, mx - ex - mgx))));
  bx1 = std::min<int64_t>(w, static_cast<int64_t>(std::ceil(std::min(double(w) + 1.0, mx + ex + mgx))) + 1);
  by0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::max(-1.0, my - ey - mgy))));
  by1 = std::min<int64_t>(h, static_cast<int64_t>(std::ceil(std::min(double(h) + 1.0, my + ey + mgy))) + 1);
}

template <typename scalar_t>
void forward_boxed(const Grid& g, int64_t first, int64_t last, const scalar_t* means, const scalar_t* conics,
                   const scalar_t* opacities, const scalar_t* colors, const int64_t* start, const int64_t* count,
                   const scalar_t* background, scalar_t alpha_max, scalar_t* image, scalar_t* trans_out,
                   int32_t* used_end, const int64_t* order) {
  const int64_t C = g.channels, TS = g.tile_size;
  std::vector<scalar_t> acc(TS * TS * C), T(TS * TS), cutoff;
  std::vector<int32_t> end(TS * TS);
  std::vector<uint8_t> done(TS * TS);
  for (int64_t i = first; i < last; ++i) {
    const int64_t tile = order[i];
    const int64_t cam = tile / g.per_image(), in_image = tile % g.per_image();
    const int64_t x0 = (in_image % g.tiles_x) * TS, y0 = (in_image / g.tiles_x) * TS;
    const int64_t w = std::min(g.width, x0 + TS) - x0, h = std::min(g.height, y0 + TS) - y0;
    const int64_t s = start[tile], n = count[tile];
    std::fill(acc.begin(), acc.end(), scalar_t(0));
    std::fill(T.begin(), T.end(), scalar_t(1));
    std::fill(end.begin(), end.end(), 0);
    std::fill(done.begin(), done.end(), 0);
    int64_t remaining = w * h;
    power_cutoffs(opacities, s, n, cutoff);
    for (int64_t k = 0; k < n && remaining > 0; ++k) {
      const int64_t e = s + k;
      const scalar_t *mean = means + 2 * e, *conic = conics + 3 * e, *c = colors + C * e;
      int64_t bx0, bx1, by0, by1;
      entry_box(mean, conic, cutoff[k], x0, y0, w, h, bx0, bx1, by0, by1);
      for (int64_t ly = by0; ly < by1; ++ly) {
        const scalar_t y = scalar_t(y0 + ly) + scalar_t(0.5);
        for (int64_t lx = bx0; lx < bx1; ++lx) {
          const int64_t p = ly * w + lx;
          if (done[p]) continue;
          const scalar_t x = scalar_t(x0 + lx) + scalar_t(0.5);
          scalar_t dx, dy, falloff, raw, alpha;
          if (!eval_alpha(mean, conic, opacities[e], cutoff[k], x, y, alpha_max, dx, dy, falloff, raw, alpha)) continue;
          const scalar_t next_T = T[p] * (scalar_t(1) - alpha);
          if (next_T <= scalar_t(kTransmittanceMin)) {
            done[p] = 1;
            --remaining;
            continue;
          }
          const scalar_t wgt = alpha * T[p];
          for (int64_t ch = 0; ch < C; ++ch) acc[p * C + ch] += wgt * c[ch];
          T[p] = next_T;
          end[p] = static_cast<int32_t>(k + 1);
        }
      }
    }
    for (int64_t ly = 0; ly < h; ++ly) {
      for (int64_t lx = 0; lx < w; ++lx) {
        const int64_t p = ly * w + lx, pix = (cam * g.height + y0 + ly) * g.width + x0 + lx;
        for (int64_t ch = 0; ch < C; ++ch) image[pix * C + ch] = acc[p * C + ch] + T[p] * background[cam * C + ch];
        trans_out[pix] = T[p];
        used_end[pix] = end[p];
      }
    }
  }
}

template <typename scalar_t>
void backward_boxed(const Grid& g, int64_t first, int64_t last, const scalar_t* means, const scalar_t* conics,
                    const scalar_t* opacities, const scalar_t* colors, const int64_t* start, const int64_t* count,
                    const scalar_t* image, const scalar_t* trans_out, const int32_t* used_end,
                    const scalar_t* grad_image, const scalar_t* grad_alpha, scalar_t alpha_max, scalar_t* g_means,
                    scalar_t* g_conics, scalar_t* g_opacities, scalar_t* g_colors, const int64_t* order) {
  const int64_t C = g.channels, TS = g.tile_size;
  std::vector<scalar_t> T(TS * TS), prefix(TS * TS), total(TS * TS), ga_tf(TS * TS), cutoff, gcol(C);
  for (int64_t i = first; i < last; ++i) {
    const int64_t tile = order[i];
    const int64_t cam = tile / g.per_image(), in_image = tile % g.per_image();
    const int64_t x0 = (in_image % g.tiles_x) * TS, y0 = (in_image / g.tiles_x) * TS;
    const int64_t w = std::min(g.width, x0 + TS) - x0, h = std::min(g.height, y0 + TS) - y0;
    const int64_t s = start[tile];
    int32_t last_used = 0;
    for (int64_t ly = 0; ly < h; ++ly) {
      for (int64_t lx = 0; lx < w; ++lx) {
        const int64_t p = ly * w + lx, pix = (cam * g.height + y0 + ly) * g.width + x0 + lx;
        scalar_t t = 0;  // dL/dcolour . final colour (background included)
        for (int64_t ch = 0; ch < C; ++ch) t += grad_image[pix * C + ch] * image[pix * C + ch];
        total[p] = t;
        ga_tf[p] = grad_alpha[pix] * trans_out[pix];
        T[p] = 1;
        prefix[p] = 0;
        last_used = std::max(last_used, used_end[pix]);
      }
    }
    power_cutoffs(opacities, s, count[tile], cutoff);
    for (int64_t k = 0; k < last_used; ++k) {
      const int64_t e = s + k;
      const scalar_t *mean = means + 2 * e, *conic = conics + 3 * e, *c = colors + C * e;
      int64_t bx0, bx1, by0, by1;
      entry_box(mean, conic, cutoff[k], x0, y0, w, h, bx0, bx1, by0, by1);
      scalar_t g_o = 0, g_c0 = 0, g_c1 = 0, g_c2 = 0, g_m0 = 0, g_m1 = 0;
      std::fill(gcol.begin(), gcol.end(), scalar_t(0));
      for (int64_t ly = by0; ly < by1; ++ly) {
        const scalar_t y = scalar_t(y0 + ly) + scalar_t(0.5);
        for (int64_t lx = bx0; lx < bx1; ++lx) {
          const int64_t p = ly * w + lx, pix = (cam * g.height + y0 + ly) * g.width + x0 + lx;
          if (k >= used_end[pix]) continue;
          const scalar_t x = scalar_t(x0 + lx) + scalar_t(0.5);
          scalar_t dx, dy, falloff, raw, alpha;
          if (!eval_alpha(mean, conic, opacities[e], cutoff[k], x, y, alpha_max, dx, dy, falloff, raw, alpha)) continue;
          const scalar_t* gc = grad_image + pix * C;
          const scalar_t wgt = alpha * T[p];
          scalar_t dot = 0;
          for (int64_t ch = 0; ch < C; ++ch) {
            dot += gc[ch] * c[ch];
            gcol[ch] += wgt * gc[ch];
          }
          prefix[p] += wgt * dot;
          const scalar_t inv = scalar_t(1) / (scalar_t(1) - alpha);
          const scalar_t g_alpha = T[p] * dot - (total[p] - prefix[p]) * inv + ga_tf[p] * inv;
          if (raw < alpha_max) {
            const scalar_t g_power = -raw * g_alpha;
            g_o += falloff * g_alpha;
            g_c0 += scalar_t(0.5) * g_power * dx * dx;
            g_c1 += g_power * dx * dy;
            g_c2 += scalar_t(0.5) * g_power * dy * dy;
            g_m0 -= g_power * (conic[0] * dx + conic[1] * dy);
            g_m1 -= g_power * (conic[1] * dx + conic[2] * dy);
          }
          T[p] *= scalar_t(1) - alpha;
        }
      }
      g_opacities[e] = g_o;
      g_conics[3 * e + 0] = g_c0;
      g_conics[3 * e + 1] = g_c1;
      g_conics[3 * e + 2] = g_c2;
      g_means[2 * e + 0] = g_m0;
      g_means[2 * e + 1] = g_m1;
      for (int64_t ch = 0; ch < C; ++ch) g_colors[C * e + ch] = gcol[ch];
    }
  }
}

template <typename scalar_t>
void forward_tiles(const Grid& g, int64_t first, int64_t last, const scalar_t* means, const scalar_t* conics,
                   const scalar_t* opacities, const scalar_t* colors, const int64_t* start, const int64_t* count,
                   const scalar_t* background, scalar_t alpha_max, scalar_t* image, scalar_t* trans_out,
                   int32_t* used_end, const int64_t* order) {
  const int64_t C = g.channels;
  std::vector<scalar_t> acc(C), cutoff;
  for (int64_t i = first; i < last; ++i) {
    const int64_t tile = order[i];
    const int64_t cam = tile / g.per_image(), in_image = tile % g.per_image();
    const int64_t x0 = (in_image % g.tiles_x) * g.tile_size, y0 = (in_image / g.tiles_x) * g.tile_size;
    const int64_t s = start[tile], n = count[tile];
    power_cutoffs(opacities, s, n, cutoff);
    for (int64_t py = y0; py < std::min(g.height, y0 + g.tile_size); ++py) {
      for (int64_t px = x0; px < std::min(g.width, x0 + g.tile_size); ++px) {
        std::fill(acc.begin(), acc.end(), scalar_t(0));
        scalar_t T = 1;
        int32_t end = 0;
        const scalar_t x = scalar_t(px) + scalar_t(0.5), y = scalar_t(py) + scalar_t(0.5);
        for (int64_t k = 0; k < n; ++k) {
          const int64_t e = s + k;
          scalar_t dx, dy, falloff, raw, alpha;
          if (!eval_alpha(means + 2 * e, conics + 3 * e, opacities[e], cutoff[k], x, y, alpha_max, dx, dy, falloff,
                          raw, alpha))
            continue;
          const scalar_t next_T = T * (scalar_t(1) - alpha);
          if (next_T <= scalar_t(kTransmittanceMin)) break;
          const scalar_t w = alpha * T;
          const scalar_t* c = colors + C * e;
          for (int64_t ch = 0; ch < C; ++ch) acc[ch] += w * c[ch];
          T = next_T;
          end = static_cast<int32_t>(k + 1);
        }
        const int64_t pix = (cam * g.height + py) * g.width + px;
        for (int64_t ch = 0; ch < C; ++ch) image[pix * C + ch] = acc[ch] + T * background[cam * C + ch];
        trans_out[pix] = T;
        used_end[pix] = end;
      }
    }
  }
}

template <typename scalar_t>
void backward_tiles(const Grid& g, int64_t first, int64_t last, const scalar_t* means, const scalar_t* conics,
                    const scalar_t* opacities, const scalar_t* colors, const int64_t* start, const int64_t* count,
                    const scalar_t* image, const scalar_t* trans_out, const int32_t* used_end,
                    const scalar_t* grad_image, const scalar_t* grad_alpha, scalar_t alpha_max, scalar_t* g_means,
                    scalar_t* g_conics, scalar_t* g_opacities, scalar_t* g_colors, const int64_t* order) {
  const int64_t C = g.channels;
  std::vector<scalar_t> cutoff;
  for (int64_t i = first; i < last; ++i) {
    const int64_t tile = order[i];
    const int64_t cam = tile / g.per_image(), in_image = tile % g.per_image();
    const int64_t x0 = (in_image % g.tiles_x) * g.tile_size, y0 = (in_image / g.tiles_x) * g.tile_size;
    const int64_t s = start[tile];
    power_cutoffs(opacities, s, count[tile], cutoff);
    for (int64_t py = y0; py < std::min(g.height, y0 + g.tile_size); ++py) {
      for (int64_t px = x0; px < std::min(g.width, x0 + g.tile_size); ++px) {
        const int64_t pix = (cam * g.height + py) * g.width + px;
        const scalar_t* gc = grad_image + pix * C;
        scalar_t total = 0;  // dL/dcolour . final colour (background included)
        for (int64_t ch = 0; ch < C; ++ch) total += gc[ch] * image[pix * C + ch];
        const scalar_t ga_tf = grad_alpha[pix] * trans_out[pix];
        const scalar_t x = scalar_t(px) + scalar_t(0.5), y = scalar_t(py) + scalar_t(0.5);
        scalar_t T = 1, prefix = 0;
        for (int64_t k = 0; k < used_end[pix]; ++k) {
          const int64_t e = s + k;
          const scalar_t* conic = conics + 3 * e;
          scalar_t dx, dy, falloff, raw, alpha;
          if (!eval_alpha(means + 2 * e, conic, opacities[e], cutoff[k], x, y, alpha_max, dx, dy, falloff, raw, alpha))
            continue;
          const scalar_t w = alpha * T;
          const scalar_t* c = colors + C * e;
          scalar_t* gcol = g_colors + C * e;
          scalar_t dot = 0;
          for (int64_t ch = 0; ch < C; ++ch) {
            dot += gc[ch] * c[ch];
            gcol[ch] += w * gc[ch];
          }
          prefix += w * dot;
          const scalar_t inv = scalar_t(1) / (scalar_t(1) - alpha);
          // d colour / d alpha_k = T_k c_k - (colour gathered behind k + T_final bg) / (1 - alpha_k);
          // d (1 - T_final) / d alpha_k = T_final / (1 - alpha_k).
          const scalar_t g_alpha = T * dot - (total - prefix) * inv + ga_tf * inv;
          if (raw < alpha_max) {
            const scalar_t g_power = -raw * g_alpha;
            g_opacities[e] += falloff * g_alpha;
            g_conics[3 * e + 0] += scalar_t(0.5) * g_power * dx * dx;
            g_conics[3 * e + 1] += g_power * dx * dy;
            g_conics[3 * e + 2] += scalar_t(0.5) * g_power * dy * dy;
            g_means[2 * e + 0] -= g_power * (conic[0] * dx + conic[1] * dy);
            g_means[2 * e + 1] -= g_power * (conic[1] * dx + conic[2] * dy);
          }
          T *= scalar_t(1) - alpha;
        }
      }
    }
  }
}

// Tiles differ in cost by orders of magnitude (a face fills some, background others), so a static
// split of the tile range leaves threads idle. Threads instead take tiles one at a time from a
// shared counter, most entries first. Every tile is computed the same way by whichever thread takes
// it, so results do not depend on the number of threads.
std::vector<int64_t> costliest_first(const at::Tensor& count) {
  const int64_t n = count.numel();
  const int64_t* c = count.data_ptr<int64_t>();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [c](int64_t x, int64_t y) { return c[x] > c[y]; });
  return order;
}

template <typename F>
void parallel_tiles(int64_t n, const F& body) {
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) body(i, i + 1);
  });
}

Grid make_grid(int64_t width, int64_t height, int64_t tile_size, int64_t tiles_x, int64_t tiles_y,
               const at::Tensor& colors, const at::Tensor& count, const at::Tensor& background) {
  Grid g{width, height, tile_size, tiles_x, tiles_y, colors.size(1)};
  TORCH_CHECK(count.numel() == background.size(0) * g.per_image(), "tile count does not match the image grid");
  TORCH_CHECK(background.dim() == 2 && background.size(1) == g.channels, "background must be (B, C)");
  return g;
}

std::vector<at::Tensor> rasterize_forward(at::Tensor means, at::Tensor conics, at::Tensor opacities,
                                          at::Tensor colors, at::Tensor start, at::Tensor count,
                                          at::Tensor background, int64_t width, int64_t height, int64_t tile_size,
                                          int64_t tiles_x, int64_t tiles_y, double alpha_max, bool boxed) {
  check_inputs(means, conics, opacities, colors, start, count, background);
  const Grid g = make_grid(width, height, tile_size, tiles_x, tiles_y, colors, count, background);
  const int64_t B = background.size(0);
  auto image = at::empty({B, height, width, g.channels}, means.options());
  auto trans = at::empty({B, height, width}, means.options());
  auto used = at::empty({B, height, width}, means.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sa0_rasterize_forward", [&] {
    const std::vector<int64_t> order = costliest_first(count);
    parallel_tiles(count.numel(), [&](int64_t first, int64_t last) {
      (boxed ? forward_boxed<scalar_t> : forward_tiles<scalar_t>)(
                              g, first, last, means.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                              opacities.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                              start.data_ptr<int64_t>(), count.data_ptr<int64_t>(), background.data_ptr<scalar_t>(),
                              static_cast<scalar_t>(alpha_max), image.data_ptr<scalar_t>(),
                              trans.data_ptr<scalar_t>(), used.data_ptr<int32_t>(), order.data());
    });
  });
  return {image, trans, used};
}

std::vector<at::Tensor> rasterize_backward(at::Tensor means, at::Tensor conics, at::Tensor opacities,
                                           at::Tensor colors, at::Tensor start, at::Tensor count,
                                           at::Tensor background, at::Tensor image, at::Tensor trans,
                                           at::Tensor used, at::Tensor grad_image, at::Tensor grad_alpha,
                                           int64_t width, int64_t height, int64_t tile_size, int64_t tiles_x,
                                           int64_t tiles_y, double alpha_max, bool boxed) {
  check_inputs(means, conics, opacities, colors, start, count, background);
  const Grid g = make_grid(width, height, tile_size, tiles_x, tiles_y, colors, count, background);
  grad_image = grad_image.contiguous();
  grad_alpha = grad_alpha.contiguous();
  auto g_means = at::zeros_like(means);
  auto g_conics = at::zeros_like(conics);
  auto g_opacities = at::zeros_like(opacities);
  auto g_colors = at::zeros_like(colors);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sa0_rasterize_backward", [&] {
    const std::vector<int64_t> order = costliest_first(count);
    parallel_tiles(count.numel(), [&](int64_t first, int64_t last) {
      (boxed ? backward_boxed<scalar_t> : backward_tiles<scalar_t>)(
                               g, first, last, means.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                               opacities.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                               start.data_ptr<int64_t>(), count.data_ptr<int64_t>(), image.data_ptr<scalar_t>(),
                               trans.data_ptr<scalar_t>(),
                               used.data_ptr<int32_t>(), grad_image.data_ptr<scalar_t>(),
                               grad_alpha.data_ptr<scalar_t>(), static_cast<scalar_t>(alpha_max),
                               g_means.data_ptr<scalar_t>(), g_conics.data_ptr<scalar_t>(),
                               g_opacities.data_ptr<scalar_t>(), g_colors.data_ptr<scalar_t>(), order.data());
    });
  });
  return {g_means, g_conics, g_opacities, g_colors};
}

// Binning, the counterpart of sa0/render/tiled.py's bin_gaussians (torch, its twin; equal outputs):
// per camera, the valid Gaussians (radii > 0 on both axes) in depth order (ties by index), each
// listed in every tile its screen box [floor(mean - r - 0.5), floor(mean + r - 0.5) + 1] (clamped
// to the image, divided by the tile size) touches. A counting pass sizes each tile's list, a fill
// pass writes them, so every list is in depth order: one pass, no sort of the pairs.
template <typename scalar_t>
void tile_span(scalar_t mean, int32_t radius, int64_t limit, int64_t tile_size, int64_t& lo, int64_t& hi) {
  const scalar_t r = static_cast<scalar_t>(radius);
  lo = static_cast<int64_t>(std::floor(mean - r - scalar_t(0.5)));
  hi = static_cast<int64_t>(std::floor(mean + r - scalar_t(0.5)) + scalar_t(1));
  lo = std::min(std::max<int64_t>(lo, 0), limit) / tile_size;
  hi = std::min(std::max<int64_t>(hi, 0), limit) / tile_size;
}

std::vector<at::Tensor> bin_tiles(at::Tensor means2d, at::Tensor radii, at::Tensor depths, int64_t width,
                                  int64_t height, int64_t tile_size) {
  TORCH_CHECK(means2d.device().is_cpu() && radii.device().is_cpu() && depths.device().is_cpu(), "CPU tensors only");
  TORCH_CHECK(radii.scalar_type() == at::kInt, "radii must be int32");
  means2d = means2d.contiguous(), radii = radii.contiguous(), depths = depths.contiguous();
  const int64_t B = depths.size(0), N = depths.size(1);
  const int64_t tiles_x = (width + tile_size - 1) / tile_size, tiles_y = (height + tile_size - 1) / tile_size;
  const int64_t per_image = tiles_x * tiles_y;
  auto count = at::zeros({B * per_image}, at::kLong);
  int64_t* cnt = count.data_ptr<int64_t>();
  const int32_t* rad = radii.data_ptr<int32_t>();
  std::vector<std::vector<int64_t>> orders(B);
  at::Tensor gauss;
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "sa0_bin_tiles", [&] {
    const scalar_t* mean = means2d.data_ptr<scalar_t>();
    const scalar_t* depth = depths.data_ptr<scalar_t>();
    std::vector<int64_t> spans;  // per listed Gaussian: x0, x1, y0, y1 (tile indices)
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t>& order = orders[b];
      for (int64_t n = 0; n < N; ++n)
        if (rad[2 * (b * N + n)] > 0 && rad[2 * (b * N + n) + 1] > 0) order.push_back(n);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t x, int64_t y) { return depth[b * N + x] < depth[b * N + y]; });
      for (int64_t n : order) {
        const int64_t i = b * N + n;
        int64_t x0, x1, y0, y1;
        tile_span(mean[2 * i], rad[2 * i], width - 1, tile_size, x0, x1);
        tile_span(mean[2 * i + 1], rad[2 * i + 1], height - 1, tile_size, y0, y1);
        spans.insert(spans.end(), {x0, x1, y0, y1});
        for (int64_t ty = y0; ty <= y1; ++ty)
          for (int64_t tx = x0; tx <= x1; ++tx) ++cnt[b * per_image + ty * tiles_x + tx];
      }
    }
    std::vector<int64_t> cursor(B * per_image);
    int64_t total = 0;
    for (int64_t t = 0; t < B * per_image; ++t) cursor[t] = total, total += cnt[t];
    gauss = at::empty({total}, at::kLong);
    int64_t* out = gauss.data_ptr<int64_t>();
    size_t k = 0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t n : orders[b]) {
        const int64_t x0 = spans[k], x1 = spans[k + 1], y0 = spans[k + 2], y1 = spans[k + 3];
        k += 4;
        for (int64_t ty = y0; ty <= y1; ++ty)
          for (int64_t tx = x0; tx <= x1; ++tx) out[cursor[b * per_image + ty * tiles_x + tx]++] = b * N + n;
      }
    }
  });
  auto start = count.cumsum(0) - count;
  return {gauss, start, count};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &rasterize_forward, "3DGS compositing forward (CPU)");
  m.def("backward", &rasterize_backward, "3DGS compositing backward (CPU)");
  m.def("bin_tiles", &bin_tiles, "(tile, Gaussian) lists in depth order per tile (CPU)");
}

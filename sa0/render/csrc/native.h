// sa0 native CPU rasteriser: what the compositing files share (no torch types, so the AVX2 file
// can be compiled for its own target without touching torch's headers).
//
// Semantics (see rasterize_cpu.cpp): alpha = min(alpha_max, o exp(-power)), skipped when power < 0
// or alpha < 1/255; a pixel stops before the entry that would bring its transmittance to <= 1e-4.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sa0native {

constexpr double kAlphaThreshold = 1.0 / 255.0;
constexpr double kTransmittanceMin = 1e-4;

struct Grid {
  int64_t width, height, tile_size, tiles_x, tiles_y, channels;
  int64_t per_image() const { return tiles_x * tiles_y; }
};

// One tile's place: camera, origin (x0, y0) and size w x h (edge tiles are cut by the image).
struct Tile {
  int64_t cam, x0, y0, w, h;
  Tile(const Grid& g, int64_t tile) {
    cam = tile / g.per_image();
    const int64_t in_image = tile % g.per_image();
    x0 = (in_image % g.tiles_x) * g.tile_size, y0 = (in_image / g.tiles_x) * g.tile_size;
    w = std::min(g.width, x0 + g.tile_size) - x0, h = std::min(g.height, y0 + g.tile_size) - y0;
  }
  int64_t pixel(const Grid& g, int64_t ly, int64_t lx) const { return (cam * g.height + y0 + ly) * g.width + x0 + lx; }
};


// The compositing inputs of one call: per Gaussian (of every camera, b * N + n) its 2D mean, conic,
// opacity and colour; the (tile, Gaussian) entries, sorted by tile then depth, name them by `gauss`.
// bounds (B N, 3), from gaussian_bounds: per Gaussian its power cutoff and box half-extents.
template <typename scalar_t>
struct Entries {
  const scalar_t *means, *conics, *opacities, *colors;  // (B N, 2), (B N, 3), (B N,), (B N, C)
  const int64_t *gauss, *start, *count;                  // (I,), (B * tiles,), (B * tiles,)
  int64_t channels;
  const double* bounds;
  const scalar_t* mean(int64_t e) const { return means + 2 * gauss[e]; }
  const scalar_t* conic(int64_t e) const { return conics + 3 * gauss[e]; }
  scalar_t opacity(int64_t e) const { return opacities[gauss[e]]; }
  const scalar_t* color(int64_t e) const { return colors + channels * gauss[e]; }
  scalar_t cutoff(int64_t e) const { return static_cast<scalar_t>(bounds[3 * gauss[e]]); }
  const double* extent(int64_t e) const { return bounds + 3 * gauss[e] + 1; }
};

// Per Gaussian, once per call (each appears in several tiles): the power above which alpha is
// surely below 1/255 (ln(255 o) plus a margin, so the exact comparison still decides every
// borderline case; skips most exp() calls), and the half-extents of the ellipse where the power
// stays below it, |dx| <= sqrt(2 cutoff (Q^-1)_xx), likewise dy, for the conic Q (-1: a conic
// that is not positive definite, whose box is the whole tile).
template <typename scalar_t>
void gaussian_bounds(const scalar_t* opacities, const scalar_t* conics, int64_t lo, int64_t hi, double* bounds) {
  for (int64_t g = lo; g < hi; ++g) {
    const scalar_t cutoff =
        std::log(std::max(opacities[g], scalar_t(1e-30)) / scalar_t(kAlphaThreshold)) + scalar_t(1e-3);
    const double a = conics[3 * g], b = conics[3 * g + 1], c = conics[3 * g + 2];
    const double det = a * c - b * b;
    double ex = -1, ey = -1;
    if (a > 0 && c > 0 && det > 0 && cutoff > 0) {
      ex = std::sqrt(2.0 * double(cutoff) * c / det), ey = std::sqrt(2.0 * double(cutoff) * a / det);
      if (!std::isfinite(ex) || !std::isfinite(ey)) ex = ey = -1;
    }
    bounds[3 * g] = double(cutoff), bounds[3 * g + 1] = ex, bounds[3 * g + 2] = ey;
  }
}

// The pixels [bx0, bx1) x [by0, by1) of the tile (local coordinates, tile origin x0, y0, size w x h)
// whose centres can have power <= cutoff: the Gaussian's half-extents plus a margin of 1 px + 0.1 %.
template <typename scalar_t>
inline void entry_box(const scalar_t* mean, const double* extent, int64_t x0, int64_t y0, int64_t w, int64_t h,
                      int64_t& bx0, int64_t& bx1, int64_t& by0, int64_t& by1) {
  bx0 = 0, bx1 = w, by0 = 0, by1 = h;
  const double ex = extent[0], ey = extent[1];
  if (ex < 0) return;
  const double mx = double(mean[0]) - double(x0) - 0.5, my = double(mean[1]) - double(y0) - 0.5;  // in pixel indices
  const double mgx = 1.0 + 1e-3 * ex, mgy = 1.0 + 1e-3 * ey;
  bx0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::max(-1.0, mx - ex - mgx))));
  bx1 = std::min<int64_t>(w, static_cast<int64_t>(std::ceil(std::min(double(w) + 1.0, mx + ex + mgx))) + 1);
  by0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::max(-1.0, my - ey - mgy))));
  by1 = std::min<int64_t>(h, static_cast<int64_t>(std::ceil(std::min(double(h) + 1.0, my + ey + mgy))) + 1);
}

// What a forward writes per pixel, and what a backward reads and writes.
template <typename scalar_t>
struct ForwardOut {
  scalar_t *image, *trans;  // (B, H, W, C), (B, H, W)
  int32_t* used_end;        // (B, H, W): one past the last entry that contributed
};

template <typename scalar_t>
struct BackwardIo {
  const scalar_t *image, *trans;
  const int32_t* used_end;
  const scalar_t *grad_image, *grad_alpha;
  scalar_t* grads;  // per entry a row of 6 + C, zero-initialised: d mean (2), d conic (3), d opacity, d colour
  int64_t stride;   // 6 + C; rasterize_cpu.cpp then sums the rows per Gaussian
  scalar_t* row(int64_t e) const { return grads + stride * e; }
};

// alpha of one entry at pixel centre (x, y): false where the pixel skips it (power < 0 or above the
// cutoff, alpha < 1/255); dx, dy, falloff = exp(-power), raw = o falloff, alpha = min(alpha_max, raw).
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

// The plain loops (rasterize_plain.cpp: every pixel of a tile against every entry; the twin).
template <typename scalar_t>
void forward_plain(const Grid& g, int64_t tile, const Entries<scalar_t>& in, const scalar_t* background,
                   scalar_t alpha_max, const ForwardOut<scalar_t>& out);
template <typename scalar_t>
void backward_plain(const Grid& g, int64_t tile, const Entries<scalar_t>& in, scalar_t alpha_max,
                    const BackwardIo<scalar_t>& io);

// AVX2 versions of the boxed loops (rasterize_avx2.cpp), float only; 8 pixels of a tile row at once.
bool cpu_has_avx2();
void forward_simd(const Grid& g, int64_t tile, const Entries<float>& in, const float* background, float alpha_max,
                  const ForwardOut<float>& out);
void backward_simd(const Grid& g, int64_t tile, const Entries<float>& in, float alpha_max,
                   const BackwardIo<float>& io);

}  // namespace sa0native

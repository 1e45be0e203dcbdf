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

// The compositing inputs of one call: per Gaussian (of every camera, b * N + n) its 2D mean, conic,
// opacity and colour; the (tile, Gaussian) entries, sorted by tile then depth, name them by `gauss`.
template <typename scalar_t>
struct Entries {
  const scalar_t *means, *conics, *opacities, *colors;  // (B N, 2), (B N, 3), (B N,), (B N, C)
  const int64_t *gauss, *start, *count;                  // (I,), (B * tiles,), (B * tiles,)
  int64_t channels;
  const scalar_t* mean(int64_t e) const { return means + 2 * gauss[e]; }
  const scalar_t* conic(int64_t e) const { return conics + 3 * gauss[e]; }
  scalar_t opacity(int64_t e) const { return opacities[gauss[e]]; }
  const scalar_t* color(int64_t e) const { return colors + channels * gauss[e]; }
};

// Per entry of a tile: the power above which alpha is surely below 1/255 (ln(255 o) plus a margin,
// so the exact comparison still decides every borderline case). Skips most exp() calls.
template <typename scalar_t>
void power_cutoffs(const Entries<scalar_t>& in, int64_t s, int64_t n, std::vector<scalar_t>& cutoff) {
  cutoff.resize(n);
  for (int64_t k = 0; k < n; ++k)
    cutoff[k] = std::log(std::max(in.opacity(s + k), scalar_t(1e-30)) / scalar_t(kAlphaThreshold)) + scalar_t(1e-3);
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

// AVX2 versions of the boxed loops (rasterize_avx2.cpp), float only; 8 pixels of a tile row at once.
bool cpu_has_avx2();
void forward_simd(const Grid& g, int64_t tile, const Entries<float>& in, const float* background, float alpha_max,
                  const ForwardOut<float>& out);
void backward_simd(const Grid& g, int64_t tile, const Entries<float>& in, float alpha_max,
                   const BackwardIo<float>& io);

}  // namespace sa0native

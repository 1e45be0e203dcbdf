// The plain loop order (kernel 0), the obvious twin of the boxed and simd orders in
// rasterize_cpu.cpp and rasterize_avx2.cpp: every pixel of a tile against every entry of the tile,
// front to back, stopping where the transmittance would reach 1e-4; its backward walks each pixel's
// entries again with the closed-form gradient. Bitwise equal to boxed (same operations, same order).

#include "native.h"

namespace sa0native {

template <typename scalar_t>
void forward_plain(const Grid& g, int64_t tile, const Entries<scalar_t>& in, const scalar_t* background,
                   scalar_t alpha_max, const ForwardOut<scalar_t>& out) {
  const int64_t C = g.channels;
  thread_local std::vector<scalar_t> acc;
  acc.resize(C);
  const Tile t(g, tile);
  const int64_t s = in.start[tile], n = in.count[tile];
  for (int64_t ly = 0; ly < t.h; ++ly) {
    for (int64_t lx = 0; lx < t.w; ++lx) {
      std::fill(acc.begin(), acc.end(), scalar_t(0));
      scalar_t T = 1;
      int32_t end = 0;
      const scalar_t x = scalar_t(t.x0 + lx) + scalar_t(0.5), y = scalar_t(t.y0 + ly) + scalar_t(0.5);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t e = s + k;
        scalar_t dx, dy, falloff, raw, alpha;
        if (!eval_alpha(in.mean(e), in.conic(e), in.opacity(e), in.cutoff(e), x, y, alpha_max, dx, dy,
                        falloff, raw, alpha))
          continue;
        const scalar_t next_T = T * (scalar_t(1) - alpha);
        if (next_T <= scalar_t(kTransmittanceMin)) break;
        const scalar_t w = alpha * T;
        const scalar_t* c = in.color(e);
        for (int64_t ch = 0; ch < C; ++ch) acc[ch] += w * c[ch];
        T = next_T;
        end = static_cast<int32_t>(k + 1);
      }
      const int64_t pix = t.pixel(g, ly, lx);
      for (int64_t ch = 0; ch < C; ++ch) out.image[pix * C + ch] = acc[ch] + T * background[t.cam * C + ch];
      out.trans[pix] = T;
      out.used_end[pix] = end;
    }
  }
}

template <typename scalar_t>
void backward_plain(const Grid& g, int64_t tile, const Entries<scalar_t>& in, scalar_t alpha_max,
                    const BackwardIo<scalar_t>& io) {
  const int64_t C = g.channels;
  const Tile t(g, tile);
  const int64_t s = in.start[tile];
  for (int64_t ly = 0; ly < t.h; ++ly) {
    for (int64_t lx = 0; lx < t.w; ++lx) {
      const int64_t pix = t.pixel(g, ly, lx);
      const scalar_t* gc = io.grad_image + pix * C;
      scalar_t total = 0;  // dL/dcolour . final colour (background included)
      for (int64_t ch = 0; ch < C; ++ch) total += gc[ch] * io.image[pix * C + ch];
      const scalar_t ga_tf = io.grad_alpha[pix] * io.trans[pix];
      const scalar_t x = scalar_t(t.x0 + lx) + scalar_t(0.5), y = scalar_t(t.y0 + ly) + scalar_t(0.5);
      scalar_t T = 1, prefix = 0;
      for (int64_t k = 0; k < io.used_end[pix]; ++k) {
        const int64_t e = s + k;
        const scalar_t* conic = in.conic(e);
        scalar_t dx, dy, falloff, raw, alpha;
        if (!eval_alpha(in.mean(e), conic, in.opacity(e), in.cutoff(e), x, y, alpha_max, dx, dy, falloff, raw,
                        alpha))
          continue;
        const scalar_t w = alpha * T;
        const scalar_t* c = in.color(e);
        scalar_t* gcol = io.row(e) + 6;
        scalar_t dot = 0;
        for (int64_t ch = 0; ch < C; ++ch) {
          dot += gc[ch] * c[ch];
          gcol[ch] += w * gc[ch];
        }
        prefix += w * dot;
        const scalar_t inv = scalar_t(1) / (scalar_t(1) - alpha);
        const scalar_t g_alpha = T * dot - (total - prefix) * inv + ga_tf * inv;
        if (raw < alpha_max) {
          const scalar_t g_power = -raw * g_alpha;
          io.row(e)[5] += falloff * g_alpha;
          io.row(e)[2] += scalar_t(0.5) * g_power * dx * dx;
          io.row(e)[3] += g_power * dx * dy;
          io.row(e)[4] += scalar_t(0.5) * g_power * dy * dy;
          io.row(e)[0] -= g_power * (conic[0] * dx + conic[1] * dy);
          io.row(e)[1] -= g_power * (conic[1] * dx + conic[2] * dy);
        }
        T *= scalar_t(1) - alpha;
      }
    }
  }
}

template void forward_plain<float>(const Grid&, int64_t, const Entries<float>&, const float*, float,
                                   const ForwardOut<float>&);
template void forward_plain<double>(const Grid&, int64_t, const Entries<double>&, const double*, double,
                                    const ForwardOut<double>&);
template void backward_plain<float>(const Grid&, int64_t, const Entries<float>&, float, const BackwardIo<float>&);
template void backward_plain<double>(const Grid&, int64_t, const Entries<double>&, double, const BackwardIo<double>&);

}  // namespace sa0native

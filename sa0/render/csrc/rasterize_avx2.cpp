// The simd loop order (kernel 2): rasterize_cpu.cpp's boxed loops with 8 pixels of a tile row per
// AVX2 vector, float only. Per pixel, every operation is boxed's, in boxed's order, each lane masked
// where boxed would skip the pixel (outside the box or the image, done, power or alpha out of range),
// except exp: exp_neg below, a Cephes-style polynomial run identically in scalar and vector form
// (within 2 ulp of std::exp on the [0, ln 255 + 1e-3] range the cutoff admits). Built without FMA
// contraction (-ffp-contract=off) so a lane rounds as the scalar code would.
//
// Backward sums each entry's gradient per lane over the pixels of its box, then adds the 8 lanes
// in lane order: deterministic for any thread count, rounding differs from boxed's pixel order.

#include "native.h"

#if !(defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)))
// Not an x86-64 GCC/Clang build: no simd order (kernel_choice() picks boxed).
namespace sa0native {
bool cpu_has_avx2() { return false; }
void forward_simd(const Grid&, int64_t, const Entries<float>&, const float*, float, const ForwardOut<float>&) {}
void backward_simd(const Grid&, int64_t, const Entries<float>&, float, const BackwardIo<float>&) {}
}  // namespace sa0native
#else

#include <immintrin.h>

namespace sa0native {

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2"); }

namespace {

// exp(-p): x = -p clamped to [-87, 0]; x = n ln2 + r with n = floor(x log2 e + 1/2); exp(r) by a
// degree-7 polynomial (Cephes expf coefficients); times 2^n by the exponent bits.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

__attribute__((target("avx2"))) inline __m256 exp_neg8(__m256 p) {
  __m256 x = _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), p), _mm256_set1_ps(-87.0f)),
                           _mm256_setzero_ps());
  const __m256 n = _mm256_floor_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _mm256_set1_ps(0.5f)));
  x = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Hi)));
  x = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(kLn2Lo)));
  __m256 y = _mm256_set1_ps(kP0);
  for (const float c : {kP1, kP2, kP3, kP4, kP5}) y = _mm256_add_ps(_mm256_mul_ps(y, x), _mm256_set1_ps(c));
  y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(y, _mm256_mul_ps(x, x)), x), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

__attribute__((target("avx2"))) inline float lane_sum(__m256 v) {
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  float s = lanes[0];
  for (int i = 1; i < 8; ++i) s += lanes[i];
  return s;
}

// One entry's constants, broadcast.
struct Splat {
  __m256 mx, my, a, b, c, cut, opacity;
};

__attribute__((target("avx2"))) inline Splat splat_of(const float* mean, const float* conic, float cutoff,
                                                      float opacity) {
  return {_mm256_set1_ps(mean[0]), _mm256_set1_ps(mean[1]), _mm256_set1_ps(conic[0]), _mm256_set1_ps(conic[1]),
          _mm256_set1_ps(conic[2]), _mm256_set1_ps(cutoff), _mm256_set1_ps(opacity)};
}

// Lanes lx = cx .. cx + 7 of a row: those in [bx0, bx1) (bx1 <= tile width).
__attribute__((target("avx2"))) inline __m256 box_lanes(int64_t cx, int64_t bx0, int64_t bx1) {
  const __m256i lx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(cx)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(lx, _mm256_set1_epi32(static_cast<int32_t>(bx0) - 1)),
                                      _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(bx1)), lx));
  return _mm256_castsi256_ps(in);
}

// eval_alpha per lane, for the `live` lanes: dx, dy, falloff, raw, alpha, and in `ok` the lanes
// where alpha counts. False when none does; the exp is skipped when no live lane's power is in range.
struct Lanes {
  __m256 dx, dy, falloff, raw, alpha, ok;
};

__attribute__((target("avx2"))) inline bool eval_alpha8(const Splat& s, __m256 x, __m256 y, __m256 alpha_max,
                                                        __m256 live, Lanes& l) {
  l.dx = _mm256_sub_ps(x, s.mx);
  l.dy = _mm256_sub_ps(y, s.my);
  const __m256 quad = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(s.a, l.dx), l.dx),
                                    _mm256_mul_ps(_mm256_mul_ps(s.c, l.dy), l.dy));
  const __m256 power = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), quad),
                                     _mm256_mul_ps(_mm256_mul_ps(s.b, l.dx), l.dy));
  // boxed: `if (power < 0 || power > cutoff) skip` -- unordered compares keep NaN lanes as boxed does
  const __m256 in_range = _mm256_and_ps(live, _mm256_and_ps(_mm256_cmp_ps(power, _mm256_setzero_ps(), _CMP_NLT_UQ),
                                                            _mm256_cmp_ps(power, s.cut, _CMP_NGT_UQ)));
  if (_mm256_movemask_ps(in_range) == 0) return false;
  l.falloff = exp_neg8(power);
  l.raw = _mm256_mul_ps(s.opacity, l.falloff);
  l.alpha = _mm256_min_ps(l.raw, alpha_max);  // std::min(alpha_max, raw): raw < alpha_max ? raw : alpha_max
  l.ok = _mm256_and_ps(in_range, _mm256_cmp_ps(l.alpha, _mm256_set1_ps(float(kAlphaThreshold)), _CMP_GE_OQ));
  return _mm256_movemask_ps(l.ok) != 0;
}

__attribute__((target("avx2"))) inline __m256 pixel_x(const Tile& t, int64_t cx) {
  const __m256i ix = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(t.x0 + cx)),
                                      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_add_ps(_mm256_cvtepi32_ps(ix), _mm256_set1_ps(0.5f));
}

}  // namespace

__attribute__((target("avx2"))) void forward_simd(const Grid& g, int64_t tile, const Entries<float>& in,
                                                  const float* background, float alpha_max,
                                                  const ForwardOut<float>& out) {
  const int64_t C = g.channels, TS = g.tile_size, S = (TS + 7) / 8 * 8, P = S * TS;  // row stride S
  thread_local std::vector<float> acc, T, done;  // acc channel-major: acc[ch * P + p]
  thread_local std::vector<int32_t> end;
  const Tile t(g, tile);
  const int64_t s = in.start[tile], n = in.count[tile];
  acc.assign(C * P, 0.0f);
  T.assign(P, 1.0f);
  done.assign(P, 0.0f);  // all-ones bits where the pixel has stopped
  end.assign(P, 0);
  int64_t remaining = t.w * t.h;
  const __m256 amax = _mm256_set1_ps(alpha_max), one = _mm256_set1_ps(1.0f);
  const __m256 tmin = _mm256_set1_ps(float(kTransmittanceMin));
  for (int64_t k = 0; k < n && remaining > 0; ++k) {
    const int64_t e = s + k;
    const float *mean = in.mean(e), *conic = in.conic(e), *c = in.color(e);
    int64_t bx0, bx1, by0, by1;
    entry_box(mean, in.extent(e), t.x0, t.y0, t.w, t.h, bx0, bx1, by0, by1);
    const Splat sp = splat_of(mean, conic, in.cutoff(e), in.opacity(e));
    const __m256i next_end = _mm256_set1_epi32(static_cast<int32_t>(k + 1));
    for (int64_t ly = by0; ly < by1; ++ly) {
      const __m256 y = _mm256_set1_ps(float(t.y0 + ly) + 0.5f);
      for (int64_t cx = bx0 & ~int64_t(7); cx < bx1; cx += 8) {
        const int64_t p = ly * S + cx;
        const __m256 dn = _mm256_loadu_ps(&done[p]);
        const __m256 live = _mm256_andnot_ps(dn, box_lanes(cx, bx0, bx1));
        if (_mm256_movemask_ps(live) == 0) continue;  // every pixel here has stopped: skip the exp
        const __m256 Tp = _mm256_loadu_ps(&T[p]);
        Lanes l;
        if (!eval_alpha8(sp, pixel_x(t, cx), y, amax, live, l)) continue;
        const __m256 valid = l.ok;
        const __m256 next_T = _mm256_mul_ps(Tp, _mm256_sub_ps(one, l.alpha));
        const __m256 stop = _mm256_and_ps(valid, _mm256_cmp_ps(next_T, tmin, _CMP_LE_OQ));
        const __m256 write = _mm256_andnot_ps(stop, valid);
        remaining -= __builtin_popcount(_mm256_movemask_ps(stop));
        _mm256_storeu_ps(&done[p], _mm256_or_ps(dn, stop));
        const __m256 wgt = _mm256_mul_ps(l.alpha, Tp);
        for (int64_t ch = 0; ch < C; ++ch) {
          const __m256 a = _mm256_loadu_ps(&acc[ch * P + p]);
          const __m256 sum = _mm256_add_ps(a, _mm256_mul_ps(wgt, _mm256_set1_ps(c[ch])));
          _mm256_storeu_ps(&acc[ch * P + p], _mm256_blendv_ps(a, sum, write));
        }
        _mm256_storeu_ps(&T[p], _mm256_blendv_ps(Tp, next_T, write));
        const __m256i old_end = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&end[p]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(&end[p]),
                            _mm256_blendv_epi8(old_end, next_end, _mm256_castps_si256(write)));
      }
    }
  }
  for (int64_t ly = 0; ly < t.h; ++ly) {
    for (int64_t lx = 0; lx < t.w; ++lx) {
      const int64_t p = ly * S + lx, pix = t.pixel(g, ly, lx);
      for (int64_t ch = 0; ch < C; ++ch) out.image[pix * C + ch] = acc[ch * P + p] + T[p] * background[t.cam * C + ch];
      out.trans[pix] = T[p];
      out.used_end[pix] = end[p];
    }
  }
}

__attribute__((target("avx2"))) void backward_simd(const Grid& g, int64_t tile, const Entries<float>& in,
                                                   float alpha_max, const BackwardIo<float>& io) {
  const int64_t C = g.channels, TS = g.tile_size, S = (TS + 7) / 8 * 8, P = S * TS;
  thread_local std::vector<float> T, prefix, total, ga_tf, gc, gcol;  // gc channel-major
  thread_local std::vector<int32_t> end;
  const Tile t(g, tile);
  const int64_t s = in.start[tile];
  T.assign(P, 1.0f);
  prefix.assign(P, 0.0f);
  total.assign(P, 0.0f);
  ga_tf.assign(P, 0.0f);
  gc.assign(C * P, 0.0f);
  end.assign(P, 0);  // padding lanes keep 0: no entry counts there
  gcol.resize(8 * C);
  int32_t last_used = 0;
  for (int64_t ly = 0; ly < t.h; ++ly) {
    for (int64_t lx = 0; lx < t.w; ++lx) {
      const int64_t p = ly * S + lx, pix = t.pixel(g, ly, lx);
      float tot = 0;  // as boxed: dL/dcolour . final colour
      for (int64_t ch = 0; ch < C; ++ch) {
        tot += io.grad_image[pix * C + ch] * io.image[pix * C + ch];
        gc[ch * P + p] = io.grad_image[pix * C + ch];
      }
      total[p] = tot;
      ga_tf[p] = io.grad_alpha[pix] * io.trans[pix];
      end[p] = io.used_end[pix];
      last_used = std::max(last_used, end[p]);
    }
  }
  const __m256 amax = _mm256_set1_ps(alpha_max), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  for (int64_t k = 0; k < last_used; ++k) {
    const int64_t e = s + k;
    const float *mean = in.mean(e), *conic = in.conic(e), *c = in.color(e);
    int64_t bx0, bx1, by0, by1;
    entry_box(mean, in.extent(e), t.x0, t.y0, t.w, t.h, bx0, bx1, by0, by1);
    const Splat sp = splat_of(mean, conic, in.cutoff(e), in.opacity(e));
    const __m256i kk = _mm256_set1_epi32(static_cast<int32_t>(k));
    __m256 g_o = _mm256_setzero_ps(), g_c0 = g_o, g_c1 = g_o, g_c2 = g_o, g_m0 = g_o, g_m1 = g_o;
    std::fill(gcol.begin(), gcol.end(), 0.0f);
    for (int64_t ly = by0; ly < by1; ++ly) {
      const __m256 y = _mm256_set1_ps(float(t.y0 + ly) + 0.5f);
      for (int64_t cx = bx0 & ~int64_t(7); cx < bx1; cx += 8) {
        const int64_t p = ly * S + cx;
        const __m256i endp = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&end[p]));
        const __m256 live = _mm256_and_ps(box_lanes(cx, bx0, bx1), _mm256_castsi256_ps(_mm256_cmpgt_epi32(endp, kk)));
        if (_mm256_movemask_ps(live) == 0) continue;  // no pixel here reached entry k
        Lanes l;
        if (!eval_alpha8(sp, pixel_x(t, cx), y, amax, live, l)) continue;
        const __m256 valid = l.ok;
        const __m256 Tp = _mm256_loadu_ps(&T[p]);
        const __m256 wgt = _mm256_mul_ps(l.alpha, Tp);
        __m256 dot = _mm256_setzero_ps();
        for (int64_t ch = 0; ch < C; ++ch) {
          const __m256 gch = _mm256_loadu_ps(&gc[ch * P + p]);
          dot = _mm256_add_ps(dot, _mm256_mul_ps(gch, _mm256_set1_ps(c[ch])));
          const __m256 gsum = _mm256_loadu_ps(&gcol[8 * ch]);
          _mm256_storeu_ps(&gcol[8 * ch], _mm256_add_ps(gsum, _mm256_and_ps(valid, _mm256_mul_ps(wgt, gch))));
        }
        const __m256 old_prefix = _mm256_loadu_ps(&prefix[p]);
        const __m256 pre = _mm256_add_ps(old_prefix, _mm256_mul_ps(wgt, dot));
        _mm256_storeu_ps(&prefix[p], _mm256_blendv_ps(old_prefix, pre, valid));
        const __m256 inv = _mm256_div_ps(one, _mm256_sub_ps(one, l.alpha));
        const __m256 g_alpha = _mm256_add_ps(
            _mm256_sub_ps(_mm256_mul_ps(Tp, dot), _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(&total[p]), pre), inv)),
            _mm256_mul_ps(_mm256_loadu_ps(&ga_tf[p]), inv));
        const __m256 unsat = _mm256_and_ps(valid, _mm256_cmp_ps(l.raw, amax, _CMP_LT_OQ));  // boxed: raw < alpha_max
        const __m256 g_power = _mm256_mul_ps(_mm256_xor_ps(l.raw, _mm256_set1_ps(-0.0f)), g_alpha);  // -raw * g_alpha
        const __m256 hp = _mm256_mul_ps(half, g_power);
        g_o = _mm256_add_ps(g_o, _mm256_and_ps(unsat, _mm256_mul_ps(l.falloff, g_alpha)));
        g_c0 = _mm256_add_ps(g_c0, _mm256_and_ps(unsat, _mm256_mul_ps(_mm256_mul_ps(hp, l.dx), l.dx)));
        g_c1 = _mm256_add_ps(g_c1, _mm256_and_ps(unsat, _mm256_mul_ps(_mm256_mul_ps(g_power, l.dx), l.dy)));
        g_c2 = _mm256_add_ps(g_c2, _mm256_and_ps(unsat, _mm256_mul_ps(_mm256_mul_ps(hp, l.dy), l.dy)));
        const __m256 d0 = _mm256_add_ps(_mm256_mul_ps(sp.a, l.dx), _mm256_mul_ps(sp.b, l.dy));
        const __m256 d1 = _mm256_add_ps(_mm256_mul_ps(sp.b, l.dx), _mm256_mul_ps(sp.c, l.dy));
        g_m0 = _mm256_sub_ps(g_m0, _mm256_and_ps(unsat, _mm256_mul_ps(g_power, d0)));
        g_m1 = _mm256_sub_ps(g_m1, _mm256_and_ps(unsat, _mm256_mul_ps(g_power, d1)));
        _mm256_storeu_ps(&T[p], _mm256_blendv_ps(Tp, _mm256_mul_ps(Tp, _mm256_sub_ps(one, l.alpha)), valid));
      }
    }
    io.row(e)[5] = lane_sum(g_o);
    io.row(e)[2] = lane_sum(g_c0);
    io.row(e)[3] = lane_sum(g_c1);
    io.row(e)[4] = lane_sum(g_c2);
    io.row(e)[0] = lane_sum(g_m0);
    io.row(e)[1] = lane_sum(g_m1);
    for (int64_t ch = 0; ch < C; ++ch) io.row(e)[6 + ch] = lane_sum(_mm256_loadu_ps(&gcol[8 * ch]));
  }
}

}  // namespace sa0native

#endif

// sa0 native CPU rasteriser: 3DGS compositing forward and its exact backward.
//
// Inputs are per Gaussian of every camera (g = b N + n): means (G, 2), conics (G, 3) as (xx, xy, yy)
// of the inverse 2D covariance, opacities (G,), colours (G, C); and the (tile, Gaussian) entries
// sorted by tile then depth (binning_cpu.cpp or torch): gauss (I,) names each entry's Gaussian,
// tile_start / tile_count (B * tiles,) index into the entries.
// Semantics match sa0/render/dense.py: alpha = min(alpha_max, o exp(-power)), skipped when
// power < 0 or alpha < 1/255, a pixel stops before the entry that would bring its
// transmittance to <= 1e-4; colour = sum alpha_k T_k c_k + T_final background.
//
// Work is split over tiles on torch's thread pool (torch.get_num_threads()), taken one at a time.
// The backward writes gradients per entry (each entry belongs to one tile, so to one thread), then
// sums each Gaussian's entries in entry order. Results do not depend on the number of threads.
//
// Three loop orders, chosen per call by `kernel`:
//   0 plain: every pixel of a tile against every entry of the tile (the obvious loop; the twin;
//          rasterize_plain.cpp);
//   1 boxed: entry by entry, only the pixels inside the entry's box, i.e. the ellipse where its
//          power stays below the 1/255 cutoff, widened by a safety margin; each pixel keeps its
//          running transmittance (and, backward, its gathered colour) between entries. Pixels
//          outside the box would have been skipped by the plain loop's own test, so nothing else
//          changes: bitwise equal to plain (the same float operations in the same order).
//   2 simd: boxed with 8 pixels of a row at once (AVX2, float; rasterize_avx2.cpp). Per pixel the
//          same operations as boxed but a polynomial exp (within 2 ulp of std::exp), so images
//          agree to ~1e-7; per-entry gradients are summed per lane, then across lanes in a fixed
//          order (deterministic, rounding differs from boxed). float64 and CPUs without AVX2
//          take boxed.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <atomic>

#include "native.h"

namespace sa0native {
namespace {

template <typename scalar_t>
void forward_boxed(const Grid& g, int64_t tile, const Entries<scalar_t>& in, const scalar_t* background,
                   scalar_t alpha_max, const ForwardOut<scalar_t>& out) {
  const int64_t C = g.channels, TS = g.tile_size;
  thread_local std::vector<scalar_t> acc, T;
  thread_local std::vector<int32_t> end;
  thread_local std::vector<uint8_t> done;
  const Tile t(g, tile);
  const int64_t s = in.start[tile], n = in.count[tile];
  acc.assign(TS * TS * C, scalar_t(0));
  T.assign(TS * TS, scalar_t(1));
  end.assign(TS * TS, 0);
  done.assign(TS * TS, 0);
  int64_t remaining = t.w * t.h;
  for (int64_t k = 0; k < n && remaining > 0; ++k) {
    const int64_t e = s + k;
    const scalar_t *mean = in.mean(e), *conic = in.conic(e), *c = in.color(e);
    int64_t bx0, bx1, by0, by1;
    entry_box(mean, in.extent(e), t.x0, t.y0, t.w, t.h, bx0, bx1, by0, by1);
    for (int64_t ly = by0; ly < by1; ++ly) {
      const scalar_t y = scalar_t(t.y0 + ly) + scalar_t(0.5);
      for (int64_t lx = bx0; lx < bx1; ++lx) {
        const int64_t p = ly * t.w + lx;
        if (done[p]) continue;
        const scalar_t x = scalar_t(t.x0 + lx) + scalar_t(0.5);
        scalar_t dx, dy, falloff, raw, alpha;
        if (!eval_alpha(mean, conic, in.opacity(e), in.cutoff(e), x, y, alpha_max, dx, dy, falloff, raw, alpha)) continue;
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
  for (int64_t ly = 0; ly < t.h; ++ly) {
    for (int64_t lx = 0; lx < t.w; ++lx) {
      const int64_t p = ly * t.w + lx, pix = t.pixel(g, ly, lx);
      for (int64_t ch = 0; ch < C; ++ch) out.image[pix * C + ch] = acc[p * C + ch] + T[p] * background[t.cam * C + ch];
      out.trans[pix] = T[p];
      out.used_end[pix] = end[p];
    }
  }
}

template <typename scalar_t>
void backward_boxed(const Grid& g, int64_t tile, const Entries<scalar_t>& in, scalar_t alpha_max,
                    const BackwardIo<scalar_t>& io) {
  const int64_t C = g.channels, TS = g.tile_size;
  thread_local std::vector<scalar_t> T, prefix, total, ga_tf, gcol;
  T.assign(TS * TS, scalar_t(1));
  prefix.assign(TS * TS, scalar_t(0));
  total.resize(TS * TS);
  ga_tf.resize(TS * TS);
  gcol.resize(C);
  const Tile t(g, tile);
  const int64_t s = in.start[tile];
  int32_t last_used = 0;
  for (int64_t ly = 0; ly < t.h; ++ly) {
    for (int64_t lx = 0; lx < t.w; ++lx) {
      const int64_t p = ly * t.w + lx, pix = t.pixel(g, ly, lx);
      scalar_t tot = 0;  // dL/dcolour . final colour (background included)
      for (int64_t ch = 0; ch < C; ++ch) tot += io.grad_image[pix * C + ch] * io.image[pix * C + ch];
      total[p] = tot;
      ga_tf[p] = io.grad_alpha[pix] * io.trans[pix];
      last_used = std::max(last_used, io.used_end[pix]);
    }
  }
  for (int64_t k = 0; k < last_used; ++k) {
    const int64_t e = s + k;
    const scalar_t *mean = in.mean(e), *conic = in.conic(e), *c = in.color(e);
    int64_t bx0, bx1, by0, by1;
    entry_box(mean, in.extent(e), t.x0, t.y0, t.w, t.h, bx0, bx1, by0, by1);
    scalar_t g_o = 0, g_c0 = 0, g_c1 = 0, g_c2 = 0, g_m0 = 0, g_m1 = 0;
    std::fill(gcol.begin(), gcol.end(), scalar_t(0));
    for (int64_t ly = by0; ly < by1; ++ly) {
      const scalar_t y = scalar_t(t.y0 + ly) + scalar_t(0.5);
      for (int64_t lx = bx0; lx < bx1; ++lx) {
        const int64_t p = ly * t.w + lx, pix = t.pixel(g, ly, lx);
        if (k >= io.used_end[pix]) continue;
        const scalar_t x = scalar_t(t.x0 + lx) + scalar_t(0.5);
        scalar_t dx, dy, falloff, raw, alpha;
        if (!eval_alpha(mean, conic, in.opacity(e), in.cutoff(e), x, y, alpha_max, dx, dy, falloff, raw, alpha)) continue;
        const scalar_t* gc = io.grad_image + pix * C;
        const scalar_t wgt = alpha * T[p];
        scalar_t dot = 0;
        for (int64_t ch = 0; ch < C; ++ch) {
          dot += gc[ch] * c[ch];
          gcol[ch] += wgt * gc[ch];
        }
        prefix[p] += wgt * dot;
        const scalar_t inv = scalar_t(1) / (scalar_t(1) - alpha);
        // d colour / d alpha_k = T_k c_k - (colour gathered behind k + T_final bg) / (1 - alpha_k);
        // d (1 - T_final) / d alpha_k = T_final / (1 - alpha_k).
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
    io.row(e)[5] = g_o;
    io.row(e)[2] = g_c0;
    io.row(e)[3] = g_c1;
    io.row(e)[4] = g_c2;
    io.row(e)[0] = g_m0;
    io.row(e)[1] = g_m1;
    for (int64_t ch = 0; ch < C; ++ch) io.row(e)[6 + ch] = gcol[ch];
  }
}

// Tiles differ in cost by orders of magnitude (a face fills some, background others), so a static
// split of the tile range leaves threads idle. Threads instead take tiles one at a time from a
// shared counter, most entries first. Every tile is computed the same way by whichever thread takes
// it, so results do not depend on the number of threads.
template <typename F>
void parallel_tiles(const at::Tensor& count, const F& body) {
  const int64_t n = count.numel();
  const int64_t* c = count.data_ptr<int64_t>();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [c](int64_t x, int64_t y) { return c[x] > c[y]; });
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) body(order[i]);
  });
}

void check_inputs(const at::Tensor& means, const at::Tensor& conics, const at::Tensor& opacities,
                  const at::Tensor& colors, const at::Tensor& gauss, const at::Tensor& start,
                  const at::Tensor& count, const at::Tensor& background) {
  for (const auto* t : {&means, &conics, &opacities, &colors, &background}) {
    TORCH_CHECK(t->device().is_cpu(), "sa0 native rasteriser: CPU tensors only");
    TORCH_CHECK(t->is_contiguous(), "sa0 native rasteriser: contiguous tensors only");
    TORCH_CHECK(t->scalar_type() == means.scalar_type(), "sa0 native rasteriser: mixed dtypes");
  }
  for (const auto* t : {&gauss, &start, &count})
    TORCH_CHECK(t->scalar_type() == at::kLong && t->is_contiguous() && t->dim() == 1,
                "sa0 native rasteriser: tile lists must be contiguous int64 vectors");
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 2, "means must be (G, 2)");
  TORCH_CHECK(conics.dim() == 2 && conics.size(1) == 3 && conics.size(0) == means.size(0), "conics must be (G, 3)");
  TORCH_CHECK(colors.dim() == 2 && colors.size(0) == means.size(0), "colors must be (G, C)");
  TORCH_CHECK(opacities.dim() == 1 && opacities.size(0) == means.size(0), "opacities must be (G,)");
}

Grid make_grid(int64_t width, int64_t height, int64_t tile_size, int64_t tiles_x, int64_t tiles_y,
               const at::Tensor& colors, const at::Tensor& count, const at::Tensor& background) {
  Grid g{width, height, tile_size, tiles_x, tiles_y, colors.size(1)};
  TORCH_CHECK(count.numel() == background.size(0) * g.per_image(), "tile count does not match the image grid");
  TORCH_CHECK(background.dim() == 2 && background.size(1) == g.channels, "background must be (B, C)");
  return g;
}

template <typename scalar_t>
Entries<scalar_t> entries_of(const at::Tensor& means, const at::Tensor& conics, const at::Tensor& opacities,
                             const at::Tensor& colors, const at::Tensor& gauss, const at::Tensor& start,
                             const at::Tensor& count, const at::Tensor& bounds) {
  TORCH_CHECK(bounds.scalar_type() == at::kDouble && bounds.is_contiguous() && bounds.numel() == 3 * means.size(0),
              "sa0 native rasteriser: bounds must be the forward's (G, 3) float64");
  return {means.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
          colors.data_ptr<scalar_t>(), gauss.data_ptr<int64_t>(), start.data_ptr<int64_t>(),
          count.data_ptr<int64_t>(), colors.size(1), bounds.data_ptr<double>()};
}

template <typename scalar_t>
void forward_tile(int64_t kernel, const Grid& g, int64_t tile, const Entries<scalar_t>& in,
                  const scalar_t* background, scalar_t alpha_max, const ForwardOut<scalar_t>& out) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (kernel == 2) return forward_simd(g, tile, in, background, alpha_max, out);
  }
  (kernel == 1 ? forward_boxed<scalar_t> : forward_plain<scalar_t>)(g, tile, in, background, alpha_max, out);
}

template <typename scalar_t>
void backward_tile(int64_t kernel, const Grid& g, int64_t tile, const Entries<scalar_t>& in, scalar_t alpha_max,
                   const BackwardIo<scalar_t>& io) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (kernel == 2) return backward_simd(g, tile, in, alpha_max, io);
  }
  (kernel == 1 ? backward_boxed<scalar_t> : backward_plain<scalar_t>)(g, tile, in, alpha_max, io);
}

// Per-entry gradient rows (I, K) summed per Gaussian (G, K): the entries of Gaussian i are
// members[first[i] .. first[i + 1]) in entry order (TileLists.first / members), added in that order,
// Gaussians in parallel. Deterministic for any thread count.
at::Tensor sum_per_gaussian(const at::Tensor& rows, at::Tensor first_t, at::Tensor members_t, int64_t G) {
  const int64_t K = rows.size(1);
  TORCH_CHECK(first_t.scalar_type() == at::kLong && members_t.scalar_type() == at::kLong &&
                  first_t.numel() == G + 1 && members_t.numel() == rows.size(0),
              "sa0 native rasteriser: first must be (G + 1,) and members (I,) int64");
  first_t = first_t.contiguous(), members_t = members_t.contiguous();
  const int64_t* first = first_t.data_ptr<int64_t>();
  const int64_t* members = members_t.data_ptr<int64_t>();
  auto out = at::zeros({G, K}, rows.options());
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "sa0_sum_per_gaussian", [&] {
    const scalar_t* src = rows.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, G, 2048, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        for (int64_t j = first[i]; j < first[i + 1]; ++j)
          for (int64_t k = 0; k < K; ++k) dst[i * K + k] += src[members[j] * K + k];
    });
  });
  return out;
}

// The loop order a call runs: simd only for float on a CPU with AVX2, else boxed.
int64_t effective_kernel(int64_t kernel, at::ScalarType dtype) {
  TORCH_CHECK(kernel >= 0 && kernel <= 2, "kernel must be 0 (plain), 1 (boxed) or 2 (simd)");
  if (kernel == 2 && (dtype != at::kFloat || !cpu_has_avx2())) return 1;
  return kernel;
}

}  // namespace

std::vector<at::Tensor> rasterize_forward(at::Tensor means, at::Tensor conics, at::Tensor opacities,
                                          at::Tensor colors, at::Tensor gauss, at::Tensor start, at::Tensor count,
                                          at::Tensor background, int64_t width, int64_t height, int64_t tile_size,
                                          int64_t tiles_x, int64_t tiles_y, double alpha_max, int64_t kernel) {
  check_inputs(means, conics, opacities, colors, gauss, start, count, background);
  const Grid g = make_grid(width, height, tile_size, tiles_x, tiles_y, colors, count, background);
  const int64_t B = background.size(0);
  kernel = effective_kernel(kernel, means.scalar_type());
  auto image = at::empty({B, height, width, g.channels}, means.options());
  auto trans = at::empty({B, height, width}, means.options());
  auto used = at::empty({B, height, width}, means.options().dtype(at::kInt));
  auto bounds = at::empty({means.size(0), 3}, means.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sa0_rasterize_forward", [&] {
    const scalar_t *o = opacities.data_ptr<scalar_t>(), *q = conics.data_ptr<scalar_t>();
    at::parallel_for(0, means.size(0), 2048, [&](int64_t lo, int64_t hi) {
      gaussian_bounds(o, q, lo, hi, bounds.data_ptr<double>());
    });
    const auto in = entries_of<scalar_t>(means, conics, opacities, colors, gauss, start, count, bounds);
    const ForwardOut<scalar_t> out{image.data_ptr<scalar_t>(), trans.data_ptr<scalar_t>(), used.data_ptr<int32_t>()};
    const scalar_t* bg = background.data_ptr<scalar_t>();
    const scalar_t amax = static_cast<scalar_t>(alpha_max);
    parallel_tiles(count, [&](int64_t tile) { forward_tile(kernel, g, tile, in, bg, amax, out); });
  });
  return {image, trans, used, bounds};
}

std::vector<at::Tensor> rasterize_backward(at::Tensor means, at::Tensor conics, at::Tensor opacities,
                                           at::Tensor colors, at::Tensor gauss, at::Tensor start, at::Tensor count,
                                           at::Tensor background, at::Tensor image, at::Tensor trans,
                                           at::Tensor used, at::Tensor bounds, at::Tensor first,
                                           at::Tensor members, at::Tensor grad_image, at::Tensor grad_alpha,
                                           int64_t width, int64_t height, int64_t tile_size, int64_t tiles_x,
                                           int64_t tiles_y, double alpha_max, int64_t kernel) {
  check_inputs(means, conics, opacities, colors, gauss, start, count, background);
  const Grid g = make_grid(width, height, tile_size, tiles_x, tiles_y, colors, count, background);
  kernel = effective_kernel(kernel, means.scalar_type());
  grad_image = grad_image.contiguous();
  grad_alpha = grad_alpha.contiguous();
  const int64_t I = gauss.numel(), G = means.size(0), C = g.channels;
  auto rows = at::zeros({I, 6 + C}, means.options());
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sa0_rasterize_backward", [&] {
    const auto in = entries_of<scalar_t>(means, conics, opacities, colors, gauss, start, count, bounds);
    const BackwardIo<scalar_t> io{image.data_ptr<scalar_t>(), trans.data_ptr<scalar_t>(), used.data_ptr<int32_t>(),
                                  grad_image.data_ptr<scalar_t>(), grad_alpha.data_ptr<scalar_t>(),
                                  rows.data_ptr<scalar_t>(), 6 + C};
    const scalar_t amax = static_cast<scalar_t>(alpha_max);
    parallel_tiles(count, [&](int64_t tile) { backward_tile(kernel, g, tile, in, amax, io); });
  });
  const at::Tensor sums = sum_per_gaussian(rows, first, members, G);
  return {sums.slice(1, 0, 2), sums.slice(1, 2, 5), sums.select(1, 5), sums.slice(1, 6, 6 + C)};
}

// defined in the other files of the extension (cpu_has_avx2: native.h)
std::vector<at::Tensor> bin_tiles(at::Tensor means2d, at::Tensor radii, at::Tensor depths, int64_t width,
                                  int64_t height, int64_t tile_size);
std::vector<at::Tensor> project_forward(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opacities,
                                        at::Tensor viewmats, at::Tensor Ks, int64_t width, int64_t height,
                                        double near, double far, double eps2d);
std::vector<at::Tensor> project_backward(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor viewmats,
                                         at::Tensor Ks, int64_t width, int64_t height, double near, double far,
                                         double eps2d, at::Tensor g_means2d, at::Tensor g_cov2d, at::Tensor g_conics,
                                         at::Tensor g_depths);
std::vector<at::Tensor> ssim_forward(at::Tensor x, at::Tensor y, at::Tensor window);
at::Tensor ssim_backward(at::Tensor grad, at::Tensor x, at::Tensor y, at::Tensor window, at::Tensor moments);

}  // namespace sa0native

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &sa0native::rasterize_forward, "3DGS compositing forward (CPU)");
  m.def("backward", &sa0native::rasterize_backward, "3DGS compositing backward (CPU)");
  m.def("bin_tiles", &sa0native::bin_tiles, "(tile, Gaussian) lists in depth order per tile (CPU)");
  m.def("avx2", &sa0native::cpu_has_avx2, "whether this CPU runs the simd loop order");
  m.def("project_forward", &sa0native::project_forward, "EWA projection, fused (CPU)");
  m.def("project_backward", &sa0native::project_backward, "EWA projection backward (CPU)");
  m.def("ssim_forward", &sa0native::ssim_forward, "SSIM per image, (B, H, W, C) (CPU)");
  m.def("ssim_backward", &sa0native::ssim_backward, "SSIM per image backward for the prediction (CPU)");
}

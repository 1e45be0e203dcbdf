// SSIM per image as pytorch-msssim defines it (its twin; tests/losses compare values and
// gradients): a K-tap Gaussian window applied separably over the valid region, data range 1,
// C1 = 0.01^2, C2 = 0.03^2, the SSIM map averaged over pixels and channels. Works on sa0's
// (B, H, W, C) layout directly: a row of W C values is blurred along x as a 1D filter with taps C
// apart, so every loop runs over contiguous memory. Forward keeps the five blurred moments; the
// backward (prediction only) is the closed form through one adjoint blur of three maps.
// Rows run in parallel on torch's pool; every value is computed by one thread in a fixed order,
// per-image sums add per-row sums (in row order, in double): results do not depend on the thread count.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

// The row loops are built twice, for AVX2 and for any x86-64, and picked at load time (GCC's
// function multiversioning, ELF targets only); elsewhere built once.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define SA0_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SA0_CLONES
#endif

namespace sa0native {
namespace {

constexpr double kC1 = 0.01 * 0.01, kC2 = 0.03 * 0.03;

struct Shape {
  int64_t H, W, C, K;
  int64_t row() const { return W * C; }               // input row length
  int64_t out_row() const { return (W - K + 1) * C; }  // valid row length
  int64_t out_rows() const { return H - K + 1; }
};

// out[j] = w in[j] (first) or out[j] += w in[j], j < n
template <typename T>
SA0_CLONES void scaled_into(T* out, const T* in, T w, int64_t n, bool first) {
  if (first) {
    for (int64_t j = 0; j < n; ++j) out[j] = w * in[j];
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] += w * in[j];
  }
}

// out[j] = sum_k w[k] in[j + k C], j < out_row
template <typename T>
inline void blur_x(const T* in, const T* w, const Shape& s, T* out) {
  for (int64_t k = 0; k < s.K; ++k) scaled_into(out, in + k * s.C, w[k], s.out_row(), k == 0);
}

// SSIM at one pixel from its blurred moments: s = (a / b) (num / den), with
// a = 2 mx my + C1, b = mx^2 + my^2 + C1, num = 2 (exy - mx my) + C2, den = (exx - mx^2) + (eyy - my^2) + C2.
template <typename T>
inline T ssim_value(T mx, T my, T exx, T eyy, T exy) {
  const T a = 2 * mx * my + T(kC1), b = mx * mx + my * my + T(kC1);
  const T num = 2 * (exy - mx * my) + T(kC2), den = (exx - mx * mx) + (eyy - my * my) + T(kC2);
  return (a * num) / (b * den);
}

// d s / d mx, d s / d exx, d s / d exy at one pixel (my, eyy belong to the target: no gradient).
template <typename T>
inline void ssim_partials(T mx, T my, T exx, T eyy, T exy, T& d_mx, T& d_exx, T& d_exy) {
  const T a = 2 * mx * my + T(kC1), b = mx * mx + my * my + T(kC1);
  const T num = 2 * (exy - mx * my) + T(kC2), den = (exx - mx * mx) + (eyy - my * my) + T(kC2);
  const T inv_a = T(1) / a, inv_b = T(1) / b, inv_den = T(1) / den;
  const T ab = a * inv_b, nd = num * inv_den, s = ab * nd;
  d_mx = s * (2 * my * inv_a - 2 * mx * inv_b) + ab * (2 * mx * nd - 2 * my) * inv_den;
  d_exx = -s * inv_den;
  d_exy = 2 * ab * inv_den;
}

// sum over j < n of the SSIM of pixel j; moments m[plane * stride + j]
template <typename T>
SA0_CLONES T ssim_row_sum(const T* m, int64_t stride, int64_t n) {
  T sum = 0;
  for (int64_t j = 0; j < n; ++j)
    sum += ssim_value(m[j], m[stride + j], m[2 * stride + j], m[3 * stride + j], m[4 * stride + j]);
  return sum;
}

// the three d maps (scaled) for pixels [lo, hi); moments and d maps plane-major with `stride`
template <typename T>
SA0_CLONES void ssim_d_maps(const T* m, int64_t stride, int64_t lo, int64_t hi, T scale, T* d) {
  for (int64_t i = lo; i < hi; ++i) {
    T d_mx, d_exx, d_exy;
    ssim_partials(m[i], m[stride + i], m[2 * stride + i], m[3 * stride + i], m[4 * stride + i], d_mx, d_exx, d_exy);
    d[i] = d_mx * scale, d[stride + i] = d_exx * scale, d[2 * stride + i] = d_exy * scale;
  }
}

void check(const at::Tensor& x, const at::Tensor& y, const at::Tensor& w) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && x.sizes() == y.sizes(), "ssim: x, y must be (B, H, W, C) on CPU");
  TORCH_CHECK(x.scalar_type() == y.scalar_type() && w.scalar_type() == x.scalar_type(), "ssim: mixed dtypes");
  TORCH_CHECK(w.dim() == 1 && w.size(0) <= std::min(x.size(1), x.size(2)), "ssim: the window is larger than the image");
}

}  // namespace

// -> ssim (B,), moments (B, 5, H', W' C): blurred x, y, x^2, y^2, x y
std::vector<at::Tensor> ssim_forward(at::Tensor x, at::Tensor y, at::Tensor window) {
  check(x, y, window);
  x = x.contiguous(), y = y.contiguous(), window = window.contiguous();
  const int64_t B = x.size(0);
  const Shape s{x.size(1), x.size(2), x.size(3), window.size(0)};
  auto moments = at::empty({B, 5, s.out_rows(), s.out_row()}, x.options());
  auto values = at::empty({B}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sa0_ssim_forward", [&] {
    using T = scalar_t;
    const T* w = window.data_ptr<T>();
    const int64_t Ho = s.out_rows(), Lo = s.out_row(), L = s.row();
    at::Tensor blurred = at::empty({5 * s.H * Lo}, x.options());  // the five maps blurred along x, plane-major
    T* hb = blurred.data_ptr<T>();
    std::vector<double> row_sum(Ho);
    for (int64_t b = 0; b < B; ++b) {
      const T* xb = x.data_ptr<T>() + b * s.H * L;
      const T* yb = y.data_ptr<T>() + b * s.H * L;
      at::parallel_for(0, s.H, 8, [&](int64_t lo, int64_t hi) {
        std::vector<T> maps(3 * L);
        for (int64_t r = lo; r < hi; ++r) {
          const T *xr = xb + r * L, *yr = yb + r * L;
          for (int64_t j = 0; j < L; ++j) maps[j] = xr[j] * xr[j], maps[L + j] = yr[j] * yr[j], maps[2 * L + j] = xr[j] * yr[j];
          const T* src[5] = {xr, yr, maps.data(), maps.data() + L, maps.data() + 2 * L};
          for (int m = 0; m < 5; ++m) blur_x(src[m], w, s, hb + (m * s.H + r) * Lo);
        }
      });
      T* mb = moments.data_ptr<T>() + b * 5 * Ho * Lo;
      at::parallel_for(0, Ho, 8, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          for (int m = 0; m < 5; ++m) {  // blur along y
            T* out = mb + (m * Ho + r) * Lo;
            const T* in = hb + (m * s.H + r) * Lo;
            for (int64_t k = 0; k < s.K; ++k) scaled_into(out, in + k * Lo, w[k], Lo, k == 0);
          }
          row_sum[r] = ssim_row_sum(mb + r * Lo, Ho * Lo, Lo);
        }
      });
      double total = 0;
      for (int64_t r = 0; r < Ho; ++r) total += row_sum[r];
      values.data_ptr<T>()[b] = static_cast<T>(total / double(Ho * Lo));
    }
  });
  return {values, moments};
}

// d (sum_b grad_b ssim_b) / d x
at::Tensor ssim_backward(at::Tensor grad, at::Tensor x, at::Tensor y, at::Tensor window, at::Tensor moments) {
  check(x, y, window);
  x = x.contiguous(), y = y.contiguous(), window = window.contiguous(), grad = grad.contiguous();
  const int64_t B = x.size(0);
  const Shape s{x.size(1), x.size(2), x.size(3), window.size(0)};
  auto gx = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "sa0_ssim_backward", [&] {
    using T = scalar_t;
    const T* w = window.data_ptr<T>();
    const int64_t Ho = s.out_rows(), Lo = s.out_row(), L = s.row(), K = s.K;
    at::Tensor scratch = at::empty({3 * Ho * Lo + 3 * s.H * Lo}, x.options());
    T* d = scratch.data_ptr<T>();  // the three d maps
    T* gy = d + 3 * Ho * Lo;       // and after the adjoint blur along y
    for (int64_t b = 0; b < B; ++b) {
      const T scale = grad.data_ptr<T>()[b] / T(Ho * Lo);
      const T* mb = moments.data_ptr<T>() + b * 5 * Ho * Lo;
      at::parallel_for(0, Ho, 8, [&](int64_t lo, int64_t hi) {
        ssim_d_maps(mb, Ho * Lo, lo * Lo, hi * Lo, scale, d);
      });
      at::parallel_for(0, s.H, 8, [&](int64_t lo, int64_t hi) {  // adjoint of the y blur: rows r - k
        for (int64_t r = lo; r < hi; ++r)
          for (int m = 0; m < 3; ++m) {
            T* out = gy + (m * s.H + r) * Lo;
            std::fill(out, out + Lo, T(0));
            for (int64_t k = std::max<int64_t>(0, r - Ho + 1); k <= std::min<int64_t>(K - 1, r); ++k)
              scaled_into(out, d + (m * Ho + r - k) * Lo, w[k], Lo, false);
          }
      });
      const T* xb = x.data_ptr<T>() + b * s.H * L;
      const T* yb = y.data_ptr<T>() + b * s.H * L;
      T* gb = gx.data_ptr<T>() + b * s.H * L;
      at::parallel_for(0, s.H, 8, [&](int64_t lo, int64_t hi) {  // adjoint of the x blur, then the chain
        std::vector<T> g(3 * L);
        for (int64_t r = lo; r < hi; ++r) {
          for (int m = 0; m < 3; ++m) {
            T* out = g.data() + m * L;
            const T* in = gy + (m * s.H + r) * Lo;
            std::fill(out, out + L, T(0));
            for (int64_t k = 0; k < K; ++k) scaled_into(out + k * s.C, in, w[k], Lo, false);
          }
          const T *xr = xb + r * L, *yr = yb + r * L;
          for (int64_t j = 0; j < L; ++j) gb[r * L + j] = g[j] + 2 * xr[j] * g[L + j] + yr[j] * g[2 * L + j];
        }
      });
    }
  });
  return gx;
}

}  // namespace sa0native

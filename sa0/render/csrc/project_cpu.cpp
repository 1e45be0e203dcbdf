// EWA projection of 3D Gaussians (sa0/render/projection.py, its torch twin: same semantics, tests
// compare outputs and gradients) fused into one pass per Gaussian, with an exact hand-written
// backward for means, quaternions and scales (cameras take no gradient here).
//
// Per camera b and Gaussian n: p = W m + t; z outside (near, far) is culled (z_safe = 1); the
// Jacobian of the pinhole at the mean clamped to 1.3x the field of view; M = J W R(q) diag(s);
// Sigma_2D = M M^T + eps2d I; conic = Sigma_2D^-1 with det clamped at 1e-10; radii from the
// opacity-aware extent min(3.33, sqrt(2 ln(255 o))). Gaussians run in parallel on torch's pool; a
// Gaussian shared by all cameras sums its gradient over the cameras in camera order, so results do
// not depend on the number of threads.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "native.h"

namespace sa0native {
namespace {

template <typename T>
struct Camera {
  T W[9], t[3], fx, fy, cx, cy, lo_x, hi_x, lo_y, hi_y;
  Camera(const T* view, const T* K, int64_t width, int64_t height) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) W[3 * i + j] = view[4 * i + j];
      t[i] = view[4 * i + 3];
    }
    fx = K[0], fy = K[4], cx = K[2], cy = K[5];
    const T tan_x = T(0.5) * T(width) / fx, tan_y = T(0.5) * T(height) / fy;
    hi_x = (T(width) - cx) / fx + T(0.3) * tan_x, lo_x = -(cx / fx + T(0.3) * tan_x);
    hi_y = (T(height) - cy) / fy + T(0.3) * tan_y, lo_y = -(cy / fy + T(0.3) * tan_y);
  }
};

// Everything the forward computes for one (camera, Gaussian), kept for the backward.
template <typename T>
struct Splat3 {
  T p[3], zs, u, v, J[6], qn[4], qnorm, R[9], B[9], M[6], xx, xy, yy, det_raw, det;
  bool in_depth, unit_q, u_free, v_free;
};

template <typename T>
void rotation(const T* q, Splat3<T>& s) {
  const T n2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
  s.unit_q = n2 > T(1e-12);
  s.qnorm = s.unit_q ? std::sqrt(n2) : T(1);
  for (int i = 0; i < 4; ++i) s.qn[i] = s.unit_q ? q[i] / s.qnorm : T(i == 0);
  const T w = s.qn[0], x = s.qn[1], y = s.qn[2], z = s.qn[3];
  const T R[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)};
  std::copy(R, R + 9, s.R);
}

template <typename T>
void splat_forward(const Camera<T>& cam, const T* mean, const T* q, const T* scale, T near, T far, T eps2d,
                   Splat3<T>& s) {
  for (int i = 0; i < 3; ++i)
    s.p[i] = cam.W[3 * i] * mean[0] + cam.W[3 * i + 1] * mean[1] + cam.W[3 * i + 2] * mean[2] + cam.t[i];
  const T z = s.p[2];
  s.in_depth = z > near && z < far;
  s.zs = s.in_depth ? z : T(1);
  const T ux = s.p[0] / s.zs, vy = s.p[1] / s.zs;
  s.u = std::max(std::min(ux, cam.hi_x), cam.lo_x), s.v = std::max(std::min(vy, cam.hi_y), cam.lo_y);
  s.u_free = ux < cam.hi_x && ux > cam.lo_x, s.v_free = vy < cam.hi_y && vy > cam.lo_y;
  s.J[0] = cam.fx / s.zs, s.J[1] = 0, s.J[2] = -cam.fx * s.u / s.zs;
  s.J[3] = 0, s.J[4] = cam.fy / s.zs, s.J[5] = -cam.fy * s.v / s.zs;
  rotation(q, s);
  for (int i = 0; i < 3; ++i)  // B = W R diag(s)
    for (int j = 0; j < 3; ++j)
      s.B[3 * i + j] = (cam.W[3 * i] * s.R[j] + cam.W[3 * i + 1] * s.R[3 + j] + cam.W[3 * i + 2] * s.R[6 + j]) * scale[j];
  for (int i = 0; i < 2; ++i)  // M = J B
    for (int j = 0; j < 3; ++j)
      s.M[3 * i + j] = s.J[3 * i] * s.B[j] + s.J[3 * i + 1] * s.B[3 + j] + s.J[3 * i + 2] * s.B[6 + j];
  const T* m0 = s.M;
  const T* m1 = s.M + 3;
  s.xx = m0[0] * m0[0] + m0[1] * m0[1] + m0[2] * m0[2] + eps2d;
  s.xy = m0[0] * m1[0] + m0[1] * m1[1] + m0[2] * m1[2];
  s.yy = m1[0] * m1[0] + m1[1] * m1[1] + m1[2] * m1[2] + eps2d;
  s.det_raw = s.xx * s.yy - s.xy * s.xy;
  s.det = std::max(s.det_raw, T(1e-10));
}

// d L / d (mean, q, scale) of one (camera, Gaussian), added to gm, gq, gs.
template <typename T>
void splat_backward(const Camera<T>& cam, const Splat3<T>& s, const T* scale, const T* g2, const T* gcov,
                    const T* gcon, T gdepth, T* gm, T* gq, T* gs) {
  const T inv = T(1) / s.det;
  const T g_det = s.det_raw > T(1e-10) ? -(gcon[0] * s.yy - gcon[1] * s.xy + gcon[2] * s.xx) * inv * inv : T(0);
  const T g_xx = gcov[0] + gcon[2] * inv + g_det * s.yy;
  const T g_yy = gcov[2] + gcon[0] * inv + g_det * s.xx;
  const T g_xy = gcov[1] - gcon[1] * inv - T(2) * g_det * s.xy;
  T gM[6];
  for (int j = 0; j < 3; ++j) {
    gM[j] = T(2) * g_xx * s.M[j] + g_xy * s.M[3 + j];
    gM[3 + j] = T(2) * g_yy * s.M[3 + j] + g_xy * s.M[j];
  }
  T gJ[6], gB[9];
  for (int i = 0; i < 2; ++i)  // dJ = dM B^T
    for (int k = 0; k < 3; ++k)
      gJ[3 * i + k] = gM[3 * i] * s.B[3 * k] + gM[3 * i + 1] * s.B[3 * k + 1] + gM[3 * i + 2] * s.B[3 * k + 2];
  for (int k = 0; k < 3; ++k)  // dB = J^T dM
    for (int j = 0; j < 3; ++j) gB[3 * k + j] = s.J[k] * gM[j] + s.J[3 + k] * gM[3 + j];
  // B = W A with A = R diag(s): dA = W^T dB; ds_j = sum_i dA_ij R_ij; dR_ij = dA_ij s_j
  T gR[9];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const T gA = cam.W[i] * gB[j] + cam.W[3 + i] * gB[3 + j] + cam.W[6 + i] * gB[6 + j];
      gs[j] += gA * s.R[3 * i + j];
      gR[3 * i + j] = gA * scale[j];
    }
  const T w = s.qn[0], x = s.qn[1], y = s.qn[2], z = s.qn[3];
  const T gw = 2 * (-z * gR[1] + y * gR[2] + z * gR[3] - x * gR[5] - y * gR[6] + x * gR[7]);
  const T gx = 2 * (y * gR[1] + z * gR[2] + y * gR[3] - 2 * x * gR[4] - w * gR[5] + z * gR[6] + w * gR[7] -
                    2 * x * gR[8]);
  const T gy = 2 * (-2 * y * gR[0] + x * gR[1] + w * gR[2] + x * gR[3] + z * gR[5] - w * gR[6] + z * gR[7] -
                    2 * y * gR[8]);
  const T gz = 2 * (-2 * z * gR[0] - w * gR[1] + x * gR[2] + w * gR[3] - 2 * z * gR[4] + y * gR[5] + x * gR[6] +
                    y * gR[7]);
  if (s.unit_q) {  // qn = q / |q|: dq = (dqn - qn (qn . dqn)) / |q|
    const T gqn[4] = {gw, gx, gy, gz};
    const T dot = w * gw + x * gx + y * gy + z * gz;
    for (int i = 0; i < 4; ++i) gq[i] += (gqn[i] - s.qn[i] * dot) / s.qnorm;
  }
  // J and the 2D mean -> p (through u, v and z_safe)
  const T zs2 = s.zs * s.zs;
  const T g_u = -gJ[2] * cam.fx / s.zs, g_v = -gJ[5] * cam.fy / s.zs;
  T g_zs = -gJ[0] * cam.fx / zs2 + gJ[2] * cam.fx * s.u / zs2 - gJ[4] * cam.fy / zs2 + gJ[5] * cam.fy * s.v / zs2;
  T gp[3] = {g2[0] * cam.fx / s.zs, g2[1] * cam.fy / s.zs, gdepth};
  g_zs -= g2[0] * cam.fx * s.p[0] / zs2 + g2[1] * cam.fy * s.p[1] / zs2;
  if (s.u_free) gp[0] += g_u / s.zs, g_zs -= g_u * s.p[0] / zs2;
  if (s.v_free) gp[1] += g_v / s.zs, g_zs -= g_v * s.p[1] / zs2;
  if (s.in_depth) gp[2] += g_zs;
  for (int j = 0; j < 3; ++j) gm[j] += cam.W[j] * gp[0] + cam.W[3 + j] * gp[1] + cam.W[6 + j] * gp[2];
}

struct Layout {
  int64_t B, N;
  bool batched;  // Gaussians (B, N, ...) rather than (N, ...) shared by every camera
  int64_t at(int64_t b, int64_t n) const { return batched ? b * N + n : n; }
};

Layout layout_of(const at::Tensor& means, const at::Tensor& viewmats) {
  TORCH_CHECK(means.dim() == 2 || means.dim() == 3, "means must be (N, 3) or (B, N, 3)");
  const bool batched = means.dim() == 3;
  const int64_t B = viewmats.size(0);
  TORCH_CHECK(!batched || means.size(0) == B, "batched Gaussians need one set per camera");
  return {B, means.size(batched ? 1 : 0), batched};
}

}  // namespace

std::vector<at::Tensor> project_forward(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opacities,
                                        at::Tensor viewmats, at::Tensor Ks, int64_t width, int64_t height,
                                        double near, double far, double eps2d) {
  means = means.contiguous(), quats = quats.contiguous(), scales = scales.contiguous();
  viewmats = viewmats.contiguous(), Ks = Ks.contiguous(), opacities = opacities.contiguous();
  const Layout L = layout_of(means, viewmats);
  const bool has_opacity = opacities.numel() > 0;
  const bool opacity_batched = has_opacity && opacities.numel() == L.B * L.N && opacities.dim() == 2;
  auto opts = means.options();
  auto means2d = at::empty({L.B, L.N, 2}, opts), cov2d = at::empty({L.B, L.N, 3}, opts);
  auto conics = at::empty({L.B, L.N, 3}, opts), depths = at::empty({L.B, L.N}, opts);
  auto radii = at::empty({L.B, L.N, 2}, opts.dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sa0_project_forward", [&] {
    using T = scalar_t;
    const T *m = means.data_ptr<T>(), *q = quats.data_ptr<T>(), *sc = scales.data_ptr<T>();
    const T* o = has_opacity ? opacities.data_ptr<T>() : nullptr;
    std::vector<Camera<T>> cams;
    for (int64_t b = 0; b < L.B; ++b)
      cams.emplace_back(viewmats.data_ptr<T>() + 16 * b, Ks.data_ptr<T>() + 9 * b, width, height);
    T *m2 = means2d.data_ptr<T>(), *cv = cov2d.data_ptr<T>(), *cn = conics.data_ptr<T>(), *dp = depths.data_ptr<T>();
    int32_t* rd = radii.data_ptr<int32_t>();
    const T threshold = T(kAlphaThreshold);
    at::parallel_for(0, L.N, 512, [&](int64_t lo, int64_t hi) {
      Splat3<T> s;
      for (int64_t n = lo; n < hi; ++n) {
        for (int64_t b = 0; b < L.B; ++b) {
          const int64_t g = L.at(b, n), out = b * L.N + n;
          const Camera<T>& cam = cams[b];
          splat_forward(cam, m + 3 * g, q + 4 * g, sc + 3 * g, T(near), T(far), T(eps2d), s);
          const T mx = cam.fx * s.p[0] / s.zs + cam.cx, my = cam.fy * s.p[1] / s.zs + cam.cy;
          m2[2 * out] = mx, m2[2 * out + 1] = my;
          cv[3 * out] = s.xx, cv[3 * out + 1] = s.xy, cv[3 * out + 2] = s.yy;
          cn[3 * out] = s.yy / s.det, cn[3 * out + 1] = -s.xy / s.det, cn[3 * out + 2] = s.xx / s.det;
          dp[out] = s.p[2];
          T extent = T(3.33);
          bool visible = true;
          if (o) {
            const T op = o[opacity_batched ? out : n];
            visible = op >= threshold;
            extent = std::min(std::sqrt(T(2) * std::log(std::max(op, threshold) / threshold)), T(3.33));
          }
          const T rx = std::ceil(extent * std::sqrt(std::max(s.xx, T(0))));
          const T ry = std::ceil(extent * std::sqrt(std::max(s.yy, T(0))));
          const bool on_screen = mx + rx > 0 && mx - rx < T(width) && my + ry > 0 && my - ry < T(height);
          const bool keep = s.in_depth && visible && on_screen && rx > 0 && ry > 0;
          rd[2 * out] = keep ? static_cast<int32_t>(rx) : 0, rd[2 * out + 1] = keep ? static_cast<int32_t>(ry) : 0;
        }
      }
    });
  });
  return {means2d, cov2d, conics, depths, radii};
}

std::vector<at::Tensor> project_backward(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor viewmats,
                                         at::Tensor Ks, int64_t width, int64_t height, double near, double far,
                                         double eps2d, at::Tensor g_means2d, at::Tensor g_cov2d, at::Tensor g_conics,
                                         at::Tensor g_depths) {
  means = means.contiguous(), quats = quats.contiguous(), scales = scales.contiguous();
  viewmats = viewmats.contiguous(), Ks = Ks.contiguous();
  g_means2d = g_means2d.contiguous(), g_cov2d = g_cov2d.contiguous();
  g_conics = g_conics.contiguous(), g_depths = g_depths.contiguous();
  const Layout L = layout_of(means, viewmats);
  auto gm = at::zeros_like(means), gq = at::zeros_like(quats), gs = at::zeros_like(scales);
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sa0_project_backward", [&] {
    using T = scalar_t;
    const T *m = means.data_ptr<T>(), *q = quats.data_ptr<T>(), *sc = scales.data_ptr<T>();
    const T *g2 = g_means2d.data_ptr<T>(), *gcv = g_cov2d.data_ptr<T>(), *gcn = g_conics.data_ptr<T>();
    const T* gd = g_depths.data_ptr<T>();
    std::vector<Camera<T>> cams;
    for (int64_t b = 0; b < L.B; ++b)
      cams.emplace_back(viewmats.data_ptr<T>() + 16 * b, Ks.data_ptr<T>() + 9 * b, width, height);
    T *om = gm.data_ptr<T>(), *oq = gq.data_ptr<T>(), *os = gs.data_ptr<T>();
    at::parallel_for(0, L.N, 512, [&](int64_t lo, int64_t hi) {
      Splat3<T> s;
      for (int64_t n = lo; n < hi; ++n) {
        for (int64_t b = 0; b < L.B; ++b) {
          const int64_t g = L.at(b, n), i = b * L.N + n;
          splat_forward(cams[b], m + 3 * g, q + 4 * g, sc + 3 * g, T(near), T(far), T(eps2d), s);
          splat_backward(cams[b], s, sc + 3 * g, g2 + 2 * i, gcv + 3 * i, gcn + 3 * i, gd[i], om + 3 * g, oq + 4 * g,
                         os + 3 * g);
        }
      }
    });
  });
  return {gm, gq, gs};
}

}  // namespace sa0native

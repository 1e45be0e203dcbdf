// Binning, the counterpart of sa0/render/tiled.py's bin_gaussians (torch, its twin; equal outputs):
// per camera, the valid Gaussians (radii > 0 on both axes) in depth order (ties by index), each
// listed in every tile its screen box [floor(mean - r - 0.5), floor(mean + r - 0.5) + 1] (clamped
// to the image, divided by the tile size) touches. A counting pass sizes each tile's list, a fill
// pass writes them, so every list is in depth order: no sort of the (tile, Gaussian) pairs.
//
// Counting and filling run on torch's thread pool and give the same lists for any thread count: they
// split the ordered Gaussians into contiguous chunks, each chunk with its own per-tile counts, and
// chunk j writes each tile's entries after those of chunks 0..j-1. The depth order is a radix sort.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>

#include "native.h"

namespace sa0native {
namespace {

template <typename scalar_t>
void tile_span(scalar_t mean, int32_t radius, int64_t limit, int64_t tile_size, int64_t& lo, int64_t& hi) {
  const scalar_t r = static_cast<scalar_t>(radius);
  lo = static_cast<int64_t>(std::floor(mean - r - scalar_t(0.5)));
  hi = static_cast<int64_t>(std::floor(mean + r - scalar_t(0.5)) + scalar_t(1));
  lo = std::min(std::max<int64_t>(lo, 0), limit) / tile_size;
  hi = std::min(std::max<int64_t>(hi, 0), limit) / tile_size;
}

// An unsigned key with the order of the float (-0 and +0 equal, as `<` has them): sign-flipped bits.
inline uint32_t order_bits(float v) {
  v += 0.0f;  // -0 -> +0
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The valid Gaussians of camera b in depth order, ties by index. float: a stable LSD radix sort of
// the depth bits (3 passes of 11 bits; stable, so equal depths keep their index order); double: a
// stable comparison sort.
template <typename scalar_t>
std::vector<int64_t> depth_order(const scalar_t* depth, const int32_t* rad, int64_t b, int64_t N) {
  std::vector<int64_t> order;
  for (int64_t n = 0; n < N; ++n)
    if (rad[2 * (b * N + n)] > 0 && rad[2 * (b * N + n) + 1] > 0) order.push_back(n);
  if constexpr (std::is_same_v<scalar_t, float>) {
    const size_t L = order.size();
    std::vector<uint32_t> key(L), key_tmp(L);
    std::vector<int64_t> order_tmp(L);
    for (size_t i = 0; i < L; ++i) key[i] = order_bits(depth[b * N + order[i]]);
    for (int shift = 0; shift < 32; shift += 11) {
      size_t bucket[2049] = {0};
      for (size_t i = 0; i < L; ++i) ++bucket[((key[i] >> shift) & 2047u) + 1];
      for (int d = 0; d < 2048; ++d) bucket[d + 1] += bucket[d];
      for (size_t i = 0; i < L; ++i) {
        const size_t to = bucket[(key[i] >> shift) & 2047u]++;
        key_tmp[to] = key[i], order_tmp[to] = order[i];
      }
      key.swap(key_tmp), order.swap(order_tmp);
    }
  } else {
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t x, int64_t y) { return depth[b * N + x] < depth[b * N + y]; });
  }
  return order;
}

}  // namespace

std::vector<at::Tensor> bin_tiles(at::Tensor means2d, at::Tensor radii, at::Tensor depths, int64_t width,
                                  int64_t height, int64_t tile_size) {
  TORCH_CHECK(means2d.device().is_cpu() && radii.device().is_cpu() && depths.device().is_cpu(), "CPU tensors only");
  TORCH_CHECK(radii.scalar_type() == at::kInt, "radii must be int32");
  means2d = means2d.contiguous(), radii = radii.contiguous(), depths = depths.contiguous();
  const int64_t B = depths.size(0), N = depths.size(1);
  const int64_t tiles_x = (width + tile_size - 1) / tile_size, tiles_y = (height + tile_size - 1) / tile_size;
  const int64_t per_image = tiles_x * tiles_y, tiles = B * per_image;
  const int32_t* rad = radii.data_ptr<int32_t>();
  const int64_t threads = at::get_num_threads();
  at::Tensor gauss, first, members, count = at::zeros({tiles}, at::kLong);
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "sa0_bin_tiles", [&] {
    const scalar_t* mean = means2d.data_ptr<scalar_t>();
    const scalar_t* depth = depths.data_ptr<scalar_t>();
    std::vector<int64_t> listed;  // b * N + n, camera by camera, each in depth order
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n : depth_order(depth, rad, b, N)) listed.push_back(b * N + n);
    const int64_t L = static_cast<int64_t>(listed.size());
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(threads, L / 2048));
    std::vector<int64_t> spans(4 * L);  // per listed Gaussian: tile x0, x1, y0, y1
    std::vector<std::vector<int64_t>> counts(chunks);
    at::parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        std::vector<int64_t>& cnt = counts[c];
        cnt.assign(tiles, 0);
        for (int64_t j = L * c / chunks; j < L * (c + 1) / chunks; ++j) {
          const int64_t i = listed[j], base = (i / N) * per_image;
          int64_t* s = spans.data() + 4 * j;
          tile_span(mean[2 * i], rad[2 * i], width - 1, tile_size, s[0], s[1]);
          tile_span(mean[2 * i + 1], rad[2 * i + 1], height - 1, tile_size, s[2], s[3]);
          for (int64_t ty = s[2]; ty <= s[3]; ++ty)
            for (int64_t tx = s[0]; tx <= s[1]; ++tx) ++cnt[base + ty * tiles_x + tx];
        }
      }
    });
    // counts[c][t] becomes chunk c's first slot in tile t
    int64_t* cnt = count.data_ptr<int64_t>();
    int64_t total = 0;
    for (int64_t t = 0; t < tiles; ++t) {
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t k = counts[c][t];
        counts[c][t] = total;
        total += k, cnt[t] += k;
      }
    }
    gauss = at::empty({total}, at::kLong);
    // each Gaussian's entries (for the backward's sums per Gaussian): first (B N + 1), members (I)
    first = at::zeros({B * N + 1}, at::kLong);
    members = at::empty({total}, at::kLong);
    int64_t* fst = first.data_ptr<int64_t>();
    for (int64_t j = 0; j < L; ++j) {
      const int64_t* s = spans.data() + 4 * j;
      fst[listed[j] + 1] = (s[1] - s[0] + 1) * (s[3] - s[2] + 1);
    }
    for (int64_t i = 0; i < B * N; ++i) fst[i + 1] += fst[i];
    int64_t* out = gauss.data_ptr<int64_t>();
    int64_t* mem = members.data_ptr<int64_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        std::vector<int64_t>& cursor = counts[c];
        for (int64_t j = L * c / chunks; j < L * (c + 1) / chunks; ++j) {
          const int64_t i = listed[j], base = (i / N) * per_image;
          const int64_t* s = spans.data() + 4 * j;
          int64_t m = fst[i];  // tiles in increasing order, so entries too
          for (int64_t ty = s[2]; ty <= s[3]; ++ty)
            for (int64_t tx = s[0]; tx <= s[1]; ++tx) {
              const int64_t e = cursor[base + ty * tiles_x + tx]++;
              out[e] = i, mem[m++] = e;
            }
        }
      }
    });
  });
  auto start = count.cumsum(0) - count;
  return {gauss, start, count, first, members};
}

}  // namespace sa0native

// Packing and col2im of the float CPU kernels, shared by the AVX2 (at::vec) kernels of
// adder_conv2d_cpu.cpp and the AVX-512 ones of adder_conv2d_cpu_avx512.cpp: both work on
// the same packed columns (one chunk of output pixels' im2col, tap-major) and, for the input
// gradient, on the same per-image column gradient.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adder_conv2d_geometry.h"  // csrc/, on the include path

namespace addersr {
namespace cpu_pack {

inline int64_t ceil_div_nonneg(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// Output columns [lo, hi) whose tap at horizontal offset `shift` (iw = ow·sw + shift) lands
// inside the image: 0 <= ow·sw + shift < W.
inline void inside_columns(const Geometry& g, int64_t shift, int64_t& lo, int64_t& hi) {
  lo = ceil_div_nonneg(-shift, g.sw);
  hi = g.W - 1 - shift < 0 ? 0 : std::min(g.Wo, (g.W - 1 - shift) / g.sw + 1);
}

// im2col of output pixels [p0, p0 + count) of one image's group channels `x`
// (contiguous CHW) into cols[k][c] (row stride cp >= count), k over the group's taps
// (ci, i, j). Padded taps, pixels past `count` and rows in [K, k_rows) are zero. Runs of
// one output row are copied without per-element bounds checks (a plain copy when the
// stride is 1).
template <typename T>
void pack_columns(const T* x, const Geometry& g, int64_t p0, int64_t count, int64_t k_rows, int64_t cp, T* cols) {
  std::fill(cols, cols + k_rows * cp, T(0));
  for (int64_t ci = 0; ci < g.cin_g(); ++ci) {
    const T* xc = x + ci * g.H * g.W;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        T* dst = cols + ((ci * g.kh + i) * g.kw + j) * cp;
        const int64_t shift = j * g.dw - g.pw;
        int64_t ow_lo, ow_hi;
        inside_columns(g, shift, ow_lo, ow_hi);
        for (int64_t c = 0; c < count;) {
          const int64_t p = p0 + c, oh = p / g.Wo, ow0 = p % g.Wo;
          const int64_t run = std::min(g.Wo - ow0, count - c);
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih >= 0 && ih < g.H) {
            const T* src = xc + ih * g.W + shift;
            const int64_t a = std::max(ow0, ow_lo), b = std::min(ow0 + run, ow_hi);
            T* d = dst + c - ow0;
            if (g.sw == 1) {
              for (int64_t ow = a; ow < b; ++ow) d[ow] = src[ow];
            } else {
              for (int64_t ow = a; ow < b; ++ow) d[ow] = src[ow * g.sw];
            }
          }
          c += run;
        }
      }
    }
  }
}

// Copies grad_output rows (`rows` channels, pixels [p0, p0+count)) into out[co][c] (row
// stride cp), pixels past `count` zero so they add nothing.
template <typename T>
void pack_grad_rows(const T* gout, int64_t rows, int64_t L, int64_t p0, int64_t count, int64_t cp, T* out) {
  for (int64_t co = 0; co < rows; ++co) {
    std::copy(gout + co * L + p0, gout + co * L + p0 + count, out + co * cp);
    std::fill(out + co * cp + count, out + (co + 1) * cp, T(0));
  }
}

// col2im of input channels [begin, end) of one image: gx_image (CHW) receives the sums of
// the column gradient dcols ((groups·K) × L, one image's im2col layout) over the taps that
// read each input pixel. Each channel's taps are disjoint rows of dcols, so channels can
// run in parallel.
template <typename T>
void col2im(const Geometry& g, const T* dcols, int64_t begin, int64_t end, T* gx_image) {
  const int64_t K = g.K(), L = g.L();
  for (int64_t c = begin; c < end; ++c) {
    T* dst = gx_image + c * g.H * g.W;
    std::fill(dst, dst + g.H * g.W, T(0));
    const int64_t gi = c / g.cin_g(), ci = c % g.cin_g();
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* src = dcols + (gi * K + (ci * g.kh + i) * g.kw + j) * L;
        const int64_t shift = j * g.dw - g.pw;
        int64_t ow_lo, ow_hi;
        inside_columns(g, shift, ow_lo, ow_hi);
        for (int64_t oh = 0; oh < g.Ho; ++oh) {
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          T* drow = dst + ih * g.W + shift;
          const T* srow = src + oh * g.Wo;
          for (int64_t ow = ow_lo; ow < ow_hi; ++ow) drow[ow * g.sw] += srow[ow];
        }
      }
    }
  }
}

// The input gradient's schedule, whatever the tile: `columns(n, begin, end, dcols)` fills the
// column gradient of image n for its (group, chunk) items [begin, end) of `items`, then col2im
// scatters it into gx.
template <typename T, typename Columns>
void grad_input_schedule(const Geometry& g, int64_t items, const Columns& columns, T* gxd) {
  const int64_t dcols_size = g.groups * g.K() * g.L(), image = g.Cin * g.H * g.W;
  if (g.N >= at::get_num_threads()) {
    // Enough images: each thread takes whole images with its own dcols buffer.
    // One parallel region per call (a barrier per image would stall every
    // thread whenever one of them is descheduled on a busy machine).
    at::parallel_for(0, g.N, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> dcols(dcols_size);
      for (int64_t n = begin; n < end; ++n) {
        columns(n, 0, items, dcols.data());
        col2im(g, dcols.data(), 0, g.Cin, gxd + n * image);
      }
    });
  } else {
    // Few large images (e.g. inference-size crops): parallel inside each image.
    std::vector<T> dcols(dcols_size);
    for (int64_t n = 0; n < g.N; ++n) {
      at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) { columns(n, begin, end, dcols.data()); });
      at::parallel_for(0, g.Cin, 1,
                       [&](int64_t begin, int64_t end) { col2im(g, dcols.data(), begin, end, gxd + n * image); });
    }
  }
}

}  // namespace cpu_pack
}  // namespace addersr

// The fused op's input side of the integer adder kernel (adder_conv2d_u8_cpu.cpp): the float ->
// uint8 quantizer, the zero-point-padded NHWC copy every op reads, and the NaN propagation of the
// fused op (docs/int8.md, "Non-finite input"). Included by that file only; a header of its own to
// keep each file readable.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "adder_conv2d_geometry.h"

namespace addersr {
namespace u8_input {

// Quantization of the fused op's float input, the same arithmetic as
// addersr_plugin.quant.grid.quantize: clamp(round_half_even(x / scale) + zp, 0, 255).
// `run` converts a contiguous run (8 lanes at a time with AVX2: the same IEEE division,
// rounding, addition and clamp as the scalar path, so the results are identical) and returns
// whether the run held a NaN.
// Non-finite input (docs/int8.md): ±inf clamps to 255 / 0 like any value beyond the grid. NaN has
// no grid value: a C++ cast of NaN to uint8 is undefined behaviour, and vmaxps silently turns it
// into 0, so both paths store the zero point instead (a defined byte, never read as a result) and
// report it; the affine op then makes every output a NaN tap reached NaN (propagate_nan below),
// as the float layer's −Σ|x − w| is.
struct Quantizer {
  float scale;
  float zp;
  uint8_t operator()(float v) const {
    if (std::isnan(v)) return static_cast<uint8_t>(zp);
    const float q = std::nearbyint(v / scale) + zp;
    return static_cast<uint8_t>(std::min(std::max(q, 0.0f), 255.0f));
  }
  bool run(const float* __restrict s, uint8_t* __restrict d, int64_t n) const {
    int64_t i = 0;
    bool nan = false;
#if defined(__AVX2__)
    const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zp);
    const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.0f);
    __m256 seen = _mm256_setzero_ps();  // lanes that held a NaN, OR-ed over the run
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(s + i);
      const __m256 nanlanes = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
      seen = _mm256_or_ps(seen, nanlanes);
      __m256 q = _mm256_round_ps(_mm256_div_ps(v, vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, vz), lo), hi);
      q = _mm256_blendv_ps(q, vz, nanlanes);  // NaN -> the zero point, as the scalar path
      const __m256i qi = _mm256_cvtps_epi32(q);  // whole numbers in [0, 255]: exact
      const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d + i), _mm_packus_epi16(w16, w16));
    }
    nan = _mm256_movemask_ps(seen) != 0;
#endif
    for (; i < n; ++i) {
      nan |= std::isnan(s[i]);
      d[i] = (*this)(s[i]);
    }
    return nan;
  }
};
struct Copy {
  uint8_t operator()(uint8_t v) const { return v; }
  bool run(const uint8_t* s, uint8_t* d, int64_t n) const {
    std::memcpy(d, s, n);
    return false;  // integers: nothing to propagate
  }
};

// The input as NHWC uint8 with `ph`/`pw` border pixels of value zp: xp[n][Hp][Wp][C]. One
// pass, parallel over padded rows: channels_last input is read row by row, NCHW input is
// transposed row by row (ATen's generic permuted copy of uint8 is several times slower);
// `conv` turns each value into uint8 (a copy, or the fused op's quantization); `*saw_nan` is set
// when it met a NaN.
template <typename T, typename Conv>
at::Tensor pad_nhwc(const at::Tensor& input, const Geometry& g, int64_t zp, Conv conv, bool* saw_nan) {
  const int64_t C = g.Cin, H = g.H, W = g.W, Hp = H + 2 * g.ph, Wp = W + 2 * g.pw;
  auto xp = at::empty({g.N, Hp, Wp, C}, input.options().dtype(at::kByte));
  const bool cl = input.is_contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor x = cl ? input : input.contiguous();
  const T* src = x.data_ptr<T>();
  uint8_t* dst = xp.data_ptr<uint8_t>();
  const uint8_t z = static_cast<uint8_t>(zp);
  std::atomic<bool> nan{false};
  at::parallel_for(0, g.N * Hp, 16, [&](int64_t begin, int64_t end) {
    bool local_nan = false;
    std::vector<uint8_t> rowbuf(std::is_same_v<T, uint8_t> || cl ? 0 : C * W);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / Hp, h = row % Hp - g.ph;
      uint8_t* d = dst + row * Wp * C;
      if (h < 0 || h >= H) {
        std::memset(d, z, Wp * C);
        continue;
      }
      std::memset(d, z, g.pw * C);
      std::memset(d + (g.pw + W) * C, z, g.pw * C);
      d += g.pw * C;
      if (cl) {
        local_nan |= conv.run(src + ((n * H + h) * W) * C, d, W * C);
      } else if constexpr (std::is_same_v<T, uint8_t>) {
        const T* s = src + n * C * H * W + h * W;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t w = 0; w < W; ++w) d[w * C + c] = s[c * H * W + w];
      } else {
        // Quantize each channel's row contiguously (vectorised), then transpose the bytes.
        const T* s = src + n * C * H * W + h * W;
        for (int64_t c = 0; c < C; ++c) local_nan |= conv.run(s + c * H * W, rowbuf.data() + c * W, W);
        for (int64_t c = 0; c < C; ++c)
          for (int64_t w = 0; w < W; ++w) d[w * C + c] = rowbuf[c * W + w];
      }
    }
    if (local_nan) nan.store(true, std::memory_order_relaxed);
  });
  *saw_nan = nan.load();
  return xp;
}

// NaN input of the fused op: every output whose window reads a NaN input value of its group
// becomes NaN, in each output channel of that group, whatever residual and ReLU follow (the
// float layer gives −Σ|x − w| = NaN there, NaN + r = NaN and torch.relu(NaN) = NaN). Runs only
// when the quantizer met a NaN, so finite input pays one vector compare per 8 values and no pass.
inline void propagate_nan(const at::Tensor& input, const Geometry& g, at::Tensor& y) {
  // (N, groups, H, W): whether a pixel holds a NaN in one of the group's input channels
  const at::Tensor bad = at::isnan(input).reshape({g.N, g.groups, g.cin_g(), g.H, g.W}).any(2).contiguous();
  const bool* b = bad.data_ptr<bool>();
  float* yd = y.data_ptr<float>();
  const auto ys = y.strides();  // NCHW or channels_last: index through the strides
  const int64_t cg = g.cout_g();
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  at::parallel_for(0, g.N * g.groups * g.Ho, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t oh = row % g.Ho, gi = (row / g.Ho) % g.groups, n = row / (g.Ho * g.groups);
      const bool* plane = b + (n * g.groups + gi) * g.H * g.W;
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        bool hit = false;
        for (int64_t i = 0; i < g.kh && !hit; ++i) {
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.H) continue;  // padding: the zero point, finite
          for (int64_t j = 0; j < g.kw && !hit; ++j) {
            const int64_t iw = ow * g.sw - g.pw + j * g.dw;
            hit = iw >= 0 && iw < g.W && plane[ih * g.W + iw];
          }
        }
        if (!hit) continue;
        for (int64_t co = gi * cg; co < (gi + 1) * cg; ++co)
          yd[n * ys[0] + co * ys[1] + oh * ys[2] + ow * ys[3]] = qnan;
      }
    }
  });
}

}  // namespace u8_input
}  // namespace addersr

// CPU kernel of addersr::adder_conv2d_u8, the integer adder convolution.
//
//   Y[n, co, p] = Σ_{ci, i, j} | X[n, ci, p + (i, j)] − W[co, ci, i, j] |      (int32)
//
// X and W are uint8 on one shared grid (docs/int8.md: same scale, same zero point,
// so |x − w| ≈ s·|qx − qw|); padded taps hold the zero point `zp` (the grid value of
// a real 0). The sum is positive; the caller applies −s, biases and BN.
//
// Organisation (a GEMM whose inner operation is |a − b|, like the float kernel):
//   * the input is copied once into a zero-point-padded NHWC buffer, so that one
//     output pixel's patch is kh·kw contiguous runs of Cin/groups bytes and the
//     packing below needs no bounds checks;
//   * patches and weight rows are packed K-contiguous, K rounded up to 32 with
//     zeros on both sides (|0 − 0| adds nothing), tap order (i, j, ci) on both;
//   * the AVX2 micro-kernel keeps MR × NR accumulators in registers; one
//     _mm256_sad_epu8 computes 32 absolute differences and sums them in four
//     64-bit lanes (vpsadbw), one _mm256_add_epi64 accumulates them;
//   * on CPUs with AVX-512BW/VL (checked at run time), a 4 × 4 tile of 512-bit
//     accumulators (64 bytes of K per vpsadbw, K rounded up to 64) replaces it: it
//     holds all 16 accumulators in registers where the AVX2 tile spills with AVX2's 16
//     registers, and sustains more SADs per second (docs/benchmarks.md) (ADDERSR_U8_KERNEL=avx2 forces
//     the AVX2 tile, for tests and comparisons);
//   * work items (image, group, chunk of pixels) run under at::parallel_for, each
//     packing its chunk into a per-thread buffer sized to stay in L1.
// Non-x86 builds get a portable scalar micro-kernel with the same packing.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "adder_conv2d_geometry.h"  // Geometry, conv_geometry (shared checks), num, shape_str
#include "adder_conv2d_u8_input.h"  // Quantizer, Copy, pad_nhwc, propagate_nan

namespace addersr {
namespace {

constexpr int64_t kKAlign = 32;        // bytes per SAD step (AVX2; 64 for the AVX-512 tile)
// 3 × 4 tile. It needs 17 registers (12 accumulators, 3 weight rows, the input row, the SAD
// result), one more than AVX2 has, and GCC keeps a few accumulators on the stack; measured in
// isolation it is still 15 % faster than the spill-free 2 × 4 tile (more SADs per load).
constexpr int64_t MR = 3;              // output channels per micro-tile
constexpr int64_t NR = 4;              // output pixels per micro-tile
constexpr int64_t kChunkBytes = 16384; // packed patches per work item: stays in L1 with the weight tile

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// `input_type` is kByte for adder_conv2d_u8 and kFloat for adder_conv2d_u8_affine.
Geometry make_geometry_u8(const char* op, at::ScalarType input_type, const at::Tensor& input,
                          const at::Tensor& weight, int64_t zero_point, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.device().is_cpu(), op, ": only CPU tensors are supported (there is no CUDA kernel), got input on ",
              input.device());
  TORCH_CHECK(input.scalar_type() == input_type, op, ": input must be ", input_type == at::kByte ? "uint8" : "float32",
              ", got ", input.scalar_type());
  TORCH_CHECK(weight.scalar_type() == at::kByte, op, ": weight must be uint8, got ", weight.scalar_type());
  TORCH_CHECK(zero_point >= 0 && zero_point <= 255, op, ": zero_point must be in [0, 255], got ", num(zero_point));
  const Geometry g = conv_geometry(op, input, weight, stride, padding, dilation, groups);  // the float op's checks
  // 255·K must fit the int32 output.
  TORCH_CHECK(g.K() <= (int64_t{1} << 23), op, ": ", num(g.K()), " taps per output overflow the int32 sum");
  return g;
}

// ---------------------------------------------------------------------------
// Micro-kernels: out[r][c] = Σ_k |x[c][k] − w[r][k]| for r < rows, c < cols.
// w rows and x rows are Kp bytes apart (Kp a multiple of 32); out rows out_stride apart.

#if defined(__AVX2__)
// Four accumulators (four pixels of one channel), each four 64-bit lanes holding sums
// below 2^32, reduced to the four int32 totals [Σa, Σb, Σc, Σd].
inline __m128i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_or_si256(a, _mm256_slli_epi64(b, 32));  // [a0 b0 a1 b1 | a2 b2 a3 b3]
  const __m256i cd = _mm256_or_si256(c, _mm256_slli_epi64(d, 32));
  const __m256i s = _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// What the fused op does after the sums: y = alpha[r]·sum + beta[r] (the quantized layer's
// per-channel affine, one fma), then y += res (the block's self-shortcut, same layout as the
// output) when res is given, then y = max(y, 0) when relu. The reference
// (reference_forward_u8_affine) does the same steps in the same float32 order.
struct Epilogue {
  const float* alpha = nullptr;  // null: store the int32 sums
  const float* beta = nullptr;
  const float* res = nullptr;  // at the tile's first output element, laid out as the output
  bool relu = false;
};

// Where output (channel r, pixel c) of a tile goes, relative to its first element: r·row + c·col.
// NCHW output: row = Ho·Wo, col = 1 (four pixels of a channel are one vector store); NHWC
// (channels_last) output: row = 1, col = Cout (the channels of a pixel adjacent: scalar stores
// per row, or store_tile_nhwc's transposed vector stores for a full AVX-512 tile).
struct Strides {
  int64_t row;
  int64_t col;
};

// Row r of a tile: the four sums `s` (pixels 0..3) stored as int32, or through the epilogue.
inline void store_row(__m128i s, int r, void* out, Strides st, int64_t cols, const Epilogue& e) {
  alignas(16) int32_t tmp[NR];
  const bool vec = st.col == 1 && cols == NR;  // one vector store per row
  if (e.alpha) {
    __m128 f = _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_set1_ps(e.alpha[r]), _mm_set1_ps(e.beta[r]));
    float* o = static_cast<float*>(out) + r * st.row;
    if (e.res) {
      const float* rr = e.res + r * st.row;
      if (vec) {
        f = _mm_add_ps(f, _mm_loadu_ps(rr));
      } else {
        alignas(16) float rt[NR] = {0.f, 0.f, 0.f, 0.f};
        for (int64_t c = 0; c < cols; ++c) rt[c] = rr[c * st.col];
        f = _mm_add_ps(f, _mm_load_ps(rt));
      }
    }
    if (e.relu) f = _mm_max_ps(f, _mm_setzero_ps());
    if (vec) {
      _mm_storeu_ps(o, f);
    } else {
      float* t = reinterpret_cast<float*>(tmp);
      _mm_store_ps(t, f);
      for (int64_t c = 0; c < cols; ++c) o[c * st.col] = t[c];
    }
  } else {
    int32_t* o = static_cast<int32_t*>(out) + r * st.row;
    if (vec) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), s);
    } else {
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), s);
      for (int64_t c = 0; c < cols; ++c) o[c * st.col] = tmp[c];
    }
  }
}

// The tile's results go to `out` (laid out by `st`) as int32 sums, or, when `e.alpha` is given,
// as float32 through the epilogue above.
inline void sad_tile(const uint8_t* __restrict w, const uint8_t* __restrict x, int64_t Kp, void* out,
                     Strides st, int64_t rows, int64_t cols, const Epilogue& e) {
  __m256i acc[MR][NR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_setzero_si256();
  for (int64_t k = 0; k < Kp; k += kKAlign) {
    __m256i wv[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * Kp + k));
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + c * Kp + k));
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) acc[r][c] = _mm256_add_epi64(acc[r][c], _mm256_sad_epu8(xv, wv[r]));
    }
  }
  // Constant trip count then `if`: indexing acc[] with a run-time bound would force the
  // compiler to keep the accumulators in memory.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    store_row(reduce4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]), r, out, st, cols, e);
  }
}

// A full 4 × 4 tile into NHWC (channels_last) output: the four channels of a pixel are adjacent
// there, so the epilogue runs per channel row as in store_row (same arithmetic, same bits), then
// a 4 × 4 transpose turns rows into pixels and each pixel is one vector load (residual) and one
// vector store, instead of 16 scalar ones.
inline void store_tile_nhwc(const __m128i* s, void* out, int64_t col, const Epilogue& e) {
  __m128 f[NR];  // row r (channel r) of the tile; after the transpose, pixel c
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)  // the int32 sums travel as float bits when there is no epilogue
    f[r] = e.alpha ? _mm_fmadd_ps(_mm_cvtepi32_ps(s[r]), _mm_set1_ps(e.alpha[r]), _mm_set1_ps(e.beta[r]))
                   : _mm_castsi128_ps(s[r]);
  _MM_TRANSPOSE4_PS(f[0], f[1], f[2], f[3]);  // moves bits only
#pragma GCC unroll 4
  for (int c = 0; c < NR; ++c) {
    if (!e.alpha) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<int32_t*>(out) + c * col), _mm_castps_si128(f[c]));
      continue;
    }
    if (e.res) f[c] = _mm_add_ps(f[c], _mm_loadu_ps(e.res + c * col));
    if (e.relu) f[c] = _mm_max_ps(f[c], _mm_setzero_ps());
    _mm_storeu_ps(static_cast<float*>(out) + c * col, f[c]);
  }
}

// The AVX-512 tile: 4 output channels × 4 pixels of 512-bit accumulators (16 of AVX-512's 32
// registers), 64 bytes of K per step (Kp a multiple of 64). Compiled for AVX-512 with a target
// attribute and called only when the CPU has it (run() checks cpu_has_avx512()).
constexpr int64_t MR512 = 4;
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
void sad_tile_512(const uint8_t* __restrict w, const uint8_t* __restrict x, int64_t Kp, void* out, Strides st,
                  int64_t rows, int64_t cols, const Epilogue& e) {
  __m512i acc[MR512][NR];
#pragma GCC unroll 16
  for (int r = 0; r < MR512; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm512_setzero_si512();
  for (int64_t k = 0; k < Kp; k += 64) {
    __m512i wv[MR512];
#pragma GCC unroll 16
    for (int r = 0; r < MR512; ++r) wv[r] = _mm512_loadu_si512(w + r * Kp + k);
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c) {
      const __m512i xv = _mm512_loadu_si512(x + c * Kp + k);
#pragma GCC unroll 16
      for (int r = 0; r < MR512; ++r) acc[r][c] = _mm512_add_epi64(acc[r][c], _mm512_sad_epu8(xv, wv[r]));
    }
  }
  __m128i sums[MR512];
#pragma GCC unroll 16
  for (int r = 0; r < MR512; ++r) {
    __m256i h[NR];
#pragma GCC unroll 16
    for (int c = 0; c < NR; ++c)  // eight 64-bit partial sums -> four, then the AVX2 reduction
      // (the zero-masked extracts: GCC 12's unmasked ones warn about an undefined operand)
      h[c] = _mm256_add_epi64(_mm512_maskz_extracti64x4_epi64(0xFF, acc[r][c], 0),
                              _mm512_maskz_extracti64x4_epi64(0xFF, acc[r][c], 1));
    sums[r] = reduce4(h[0], h[1], h[2], h[3]);
  }
  if (st.row == 1 && rows == MR512 && cols == NR) {  // a full tile of NHWC output
    store_tile_nhwc(sums, out, st.col, e);
    return;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR512; ++r) {
    if (r >= rows) break;
    store_row(sums[r], r, out, st, cols, e);
  }
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return has;
}
#else
inline void sad_tile(const uint8_t* __restrict w, const uint8_t* __restrict x, int64_t Kp, void* out,
                     Strides st, int64_t rows, int64_t cols, const Epilogue& e) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      int32_t s = 0;
      for (int64_t k = 0; k < Kp; ++k) s += std::abs(int32_t(x[c * Kp + k]) - int32_t(w[r * Kp + k]));
      const int64_t at = r * st.row + c * st.col;
      if (e.alpha) {
        float y = std::fma(float(s), e.alpha[r], e.beta[r]);
        if (e.res) y += e.res[at];
        if (e.relu) y = std::max(y, 0.0f);
        static_cast<float*>(out)[at] = y;
      } else {
        static_cast<int32_t*>(out)[at] = s;
      }
    }
}
constexpr int64_t MR512 = 4;
inline void sad_tile_512(const uint8_t* __restrict w, const uint8_t* __restrict x, int64_t Kp, void* out, Strides st,
                         int64_t rows, int64_t cols, const Epilogue& e) {
  sad_tile(w, x, Kp, out, st, rows, cols, e);  // not reached: cpu_has_avx512() is false here
}
bool cpu_has_avx512() { return false; }
#endif

// ---------------------------------------------------------------------------
// Packing

// Quantizer, Copy, pad_nhwc (the padded NHWC input) and propagate_nan (NaN input of the fused op):
// in adder_conv2d_u8_input.h.
using u8_input::Copy;
using u8_input::pad_nhwc;
using u8_input::propagate_nan;
using u8_input::Quantizer;

// One group's weights (Cout/g, Cin/g, kh, kw) -> rows of Kp bytes, tap order (i, j, ci),
// zero past K; rows rounded up to the tile's mr with zero rows (their sums are discarded).
std::vector<uint8_t> pack_weights(const uint8_t* w, const Geometry& g, int64_t Kp, int64_t mr) {
  const int64_t cg = g.cout_g(), cin = g.cin_g(), rows = round_up(cg, mr);
  std::vector<uint8_t> out(rows * Kp, 0);
  for (int64_t co = 0; co < cg; ++co)
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          out[co * Kp + (i * g.kw + j) * cin + ci] = w[((co * cin + ci) * g.kh + i) * g.kw + j];
  return out;
}

// Patches of output pixels [p0, p0 + count) of image n, group gi, into cols[c][Kp]; rows
// past `count` up to a multiple of NR are zero (their sums are discarded).
void pack_patches(const uint8_t* xp, const Geometry& g, int64_t n, int64_t gi, int64_t p0, int64_t count,
                  int64_t Kp, uint8_t* cols) {
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw, C = g.Cin, cin = g.cin_g(), K = g.K();
  // With dilation 1 and one group, a kernel row's kw taps are one contiguous run.
  const bool row_runs = g.dw == 1 && g.groups == 1;
  for (int64_t c = 0; c < count; ++c) {
    const int64_t p = p0 + c, oh = p / g.Wo, ow = p % g.Wo;
    uint8_t* dst = cols + c * Kp;
    for (int64_t i = 0; i < g.kh; ++i) {
      const uint8_t* src = xp + ((n * Hp + oh * g.sh + i * g.dh) * Wp + ow * g.sw) * C + gi * cin;
      if (row_runs) {
        std::memcpy(dst + i * g.kw * cin, src, g.kw * cin);
      } else {
        for (int64_t j = 0; j < g.kw; ++j) std::memcpy(dst + (i * g.kw + j) * cin, src + j * g.dw * C, cin);
      }
    }
    std::memset(dst + K, 0, Kp - K);
  }
  const int64_t padded = round_up(count, NR);
  if (padded > count) std::memset(cols + count * Kp, 0, (padded - count) * Kp);
}

// ---------------------------------------------------------------------------
// Driver and operator entry points

// y = Σ|xp − w| per output (int32), or the epilogue of `e` (float32) when e.alpha is given;
// the output (and e.res, when given: a float32 tensor of the output's shape) is NCHW, or NHWC
// when `nhwc`.
void run(const at::Tensor& xp, const at::Tensor& weight, const Geometry& g, void* out, size_t out_elem,
         const Epilogue& e, bool nhwc) {
  // The tile: AVX-512's 4 × 4 of 512-bit accumulators where the CPU has it (unless
  // ADDERSR_U8_KERNEL=avx2), else AVX2's 3 × 4. Same sums either way (exact integers).
  const char* forced = std::getenv("ADDERSR_U8_KERNEL");
  const bool wide = cpu_has_avx512() && !(forced && std::string(forced) == "avx2");
  const int64_t mr = wide ? MR512 : MR;
  const int64_t K = g.K(), Kp = round_up(K, wide ? 64 : kKAlign), L = g.L(), cg = g.cout_g();
  const at::Tensor w = weight.contiguous();
  std::vector<std::vector<uint8_t>> wpack(g.groups);
  for (int64_t gi = 0; gi < g.groups; ++gi)
    wpack[gi] = pack_weights(w.data_ptr<uint8_t>() + gi * cg * K, g, Kp, mr);
  // Pixels per work item: the packed chunk stays within kChunkBytes (at least one tile).
  const int64_t chunk = std::max<int64_t>(NR, kChunkBytes / Kp / NR * NR);
  const int64_t n_chunks = (L + chunk - 1) / chunk;
  const uint8_t* xd = xp.data_ptr<uint8_t>();
  char* yd = static_cast<char*>(out);
  const Strides st = nhwc ? Strides{1, g.Cout} : Strides{L, 1};
  // Work items are handed out one at a time from a shared counter rather than as one static
  // range per thread: on a busy machine a descheduled thread then delays the call by one item,
  // not by its whole share. Every thread that runs drains the counter, so any thread count works.
  const int64_t items = g.N * g.groups * n_chunks;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), items), 1, [&](int64_t, int64_t) {
    std::vector<uint8_t> cols(round_up(chunk, NR) * Kp);
    for (int64_t it; (it = next.fetch_add(1, std::memory_order_relaxed)) < items;) {
      const int64_t ck = it % n_chunks, gi = (it / n_chunks) % g.groups, n = it / (n_chunks * g.groups);
      const int64_t p0 = ck * chunk, count = std::min(chunk, L - p0);
      pack_patches(xd, g, n, gi, p0, count, Kp, cols.data());
      // Weight tile outer, pixels inner: the mr weight rows stay in L1 while the chunk's
      // packed patches (≤ kChunkBytes, also L1) stream past them.
      for (int64_t r0 = 0; r0 < cg; r0 += mr) {
        const int64_t co = gi * cg + r0;
        const uint8_t* wt = wpack[gi].data() + r0 * Kp;
        Epilogue te = e;
        if (e.alpha) {
          te.alpha = e.alpha + co;
          te.beta = e.beta + co;
        }
        for (int64_t c0 = 0; c0 < count; c0 += NR) {
          const int64_t at = nhwc ? (n * L + p0 + c0) * g.Cout + co : (n * g.Cout + co) * L + p0 + c0;
          if (e.res) te.res = e.res + at;
          if (wide)
            sad_tile_512(wt, cols.data() + c0 * Kp, Kp, yd + at * out_elem, st, std::min(mr, cg - r0),
                         std::min(NR, count - c0), te);
          else
            sad_tile(wt, cols.data() + c0 * Kp, Kp, yd + at * out_elem, st, std::min(mr, cg - r0),
                     std::min(NR, count - c0), te);
        }
      }
    }
  });
}

// The output follows the input's memory format, as F.conv2d's does: a channels_last input (the
// layout pad_nhwc copies without a transpose) gives a channels_last output, so a network run in
// channels_last never transposes between adder layers.
at::MemoryFormat output_format(const at::Tensor& input) {
  return input.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                          : at::MemoryFormat::Contiguous;
}

at::Tensor adder_conv2d_u8_cpu(const at::Tensor& input, const at::Tensor& weight, int64_t zero_point,
                               at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                               int64_t groups) {
  const Geometry g = make_geometry_u8("adder_conv2d_u8", at::kByte, input, weight, zero_point, stride, padding,
                                      dilation, groups);
  const at::MemoryFormat fmt = output_format(input);
  auto y = at::empty({g.N, g.Cout, g.Ho, g.Wo}, input.options().dtype(at::kInt).memory_format(fmt));
  if (g.N == 0 || g.Cout == 0 || g.L() == 0) return y;
  bool saw_nan = false;  // uint8 input: never set
  const at::Tensor xp = pad_nhwc<uint8_t>(input, g, zero_point, Copy{}, &saw_nan);
  run(xp, weight, g, y.data_ptr<int32_t>(), sizeof(int32_t), Epilogue{}, fmt == at::MemoryFormat::ChannelsLast);
  return y;
}

// The inference layer in one call: quantize the float input onto the grid (scale, zero_point)
// while padding it, Σ|qx − qw|, and in the store the per-channel affine out_scale·Σ + out_bias,
// plus `residual` (the block's self-shortcut) and a ReLU when asked: the elementwise steps of
// an adder unit cost no extra pass over memory.
at::Tensor adder_conv2d_u8_affine_cpu(const at::Tensor& input, const at::Tensor& weight, double scale,
                                      int64_t zero_point, const at::Tensor& out_scale, const at::Tensor& out_bias,
                                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                      int64_t groups, const std::optional<at::Tensor>& residual, bool relu) {
  constexpr const char* op = "adder_conv2d_u8_affine";
  const Geometry g = make_geometry_u8(op, at::kFloat, input, weight, zero_point, stride, padding, dilation, groups);
  TORCH_CHECK(scale > 0 && std::isfinite(scale), op, ": scale must be positive and finite, got ", std::to_string(scale));
  for (const auto* t : {&out_scale, &out_bias}) {
    TORCH_CHECK(t->dim() == 1 && t->size(0) == g.Cout && t->scalar_type() == at::kFloat && t->device() == input.device(),
                op, ": out_scale and out_bias must be float32 (", num(g.Cout), ",) tensors on the input's device, got ",
                t->scalar_type(), " ", shape_str(t->sizes()));
  }
  const at::MemoryFormat fmt = output_format(input);
  at::Tensor res;
  if (residual.has_value()) {
    const at::Tensor& r = *residual;
    TORCH_CHECK(r.scalar_type() == at::kFloat && r.device() == input.device() && r.dim() == 4 &&
                    r.size(0) == g.N && r.size(1) == g.Cout && r.size(2) == g.Ho && r.size(3) == g.Wo,
                op, ": residual must be a float32 tensor of the output's shape (", num(g.N), ", ", num(g.Cout), ", ",
                num(g.Ho), ", ", num(g.Wo), ") on the input's device, got ", r.scalar_type(), " ",
                shape_str(r.sizes()));
    res = r.contiguous(fmt);  // laid out as the output
  }
  auto y = at::empty({g.N, g.Cout, g.Ho, g.Wo}, input.options().memory_format(fmt));
  if (g.N == 0 || g.Cout == 0 || g.L() == 0) return y;
  bool saw_nan = false;
  const at::Tensor xp = pad_nhwc<float>(input, g, zero_point, Quantizer{float(scale), float(zero_point)}, &saw_nan);
  const at::Tensor a = out_scale.contiguous(), b = out_bias.contiguous();
  Epilogue e;
  e.alpha = a.data_ptr<float>();
  e.beta = b.data_ptr<float>();
  e.res = res.defined() ? res.data_ptr<float>() : nullptr;
  e.relu = relu;
  run(xp, weight, g, y.data_ptr<float>(), sizeof(float), e, fmt == at::MemoryFormat::ChannelsLast);
  if (saw_nan) propagate_nan(input, g, y);
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(addersr, CPU, m) {
  m.impl("adder_conv2d_u8", &adder_conv2d_u8_cpu);
  m.impl("adder_conv2d_u8_affine", &adder_conv2d_u8_affine_cpu);
}

}  // namespace addersr

// There is no CUDA kernel; registering the CPU entry point for CUDA makes a CUDA tensor
// fail with the entry point's clear "only CPU tensors" error instead of a dispatcher error.
namespace addersr {
TORCH_LIBRARY_IMPL(addersr, CUDA, m) {
  m.impl("adder_conv2d_u8", &adder_conv2d_u8_cpu);
  m.impl("adder_conv2d_u8_affine", &adder_conv2d_u8_affine_cpu);
}
}  // namespace addersr

// Device code of the CUDA adder convolution: three implicit-GEMM kernels that
// share one register-blocked tile core.
//
//   forward      M = Cout/g (weights)  N = N·Ho·Wo (output pixels)  K = Cin/g·kh·kw (taps)
//                acc += |x - w|, then Y = -acc (+ bias)
//   grad_weight  M = Cout/g            N = Cin/g·kh·kw (taps)       K = output pixels (split)
//                acc += g·(x - w)  or  g·sign(x - w)
//   grad_input   M = Cin/g             N = N·H·W (input pixels)     K = kh·kw·Cout/g
//                acc += g·clamp(w - x, -1, 1)  or  g·sign(w - x)   (gather: no atomics)
//
// A fourth, the packed forward of adder_conv2d_amp (CUDA autocast), runs the forward's GEMM
// on pairs of taps in fp16 (see "forward, packed fp16" below); its backward is the two
// backward kernels above with a float32 grad_output (GradTypes).
//
// In the two backward GEMMs the inner op involves a value that belongs to the
// *output* element (w for dW, x for dX), so each thread keeps it in a register
// array `aux` parallel to its accumulators.
//
// Every edge is predicated: an A/B element outside the matrix is stored as 0
// in shared memory. In the forward a K index past the end therefore contributes
// |0 - 0| = 0 (zeroing only one side is the "27-tap" bug of third-party
// kernels); rows/columns past M/N are computed but never written.
//
// This header holds device code only (no runtime API calls) so that it can be
// compiled for the host: tests/test_cuda_emulation.py runs it thread by thread on
// the CPU (shim: tests/cuda_emulation/cuda_emu.h) against the float64 reference,
// in every `make test`. Use only what that shim provides (no warp intrinsics,
// atomics or dynamic shared memory) or extend it.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_fp16.h>  // __half2 and its intrinsics (the emulation's cuda_emu.h has stand-ins)
#endif

namespace addersr {
namespace cuda_kernels {

// Padding of shared-memory rows: keeps 16-byte alignment for vector loads and
// spreads the transposed stores of the grad_weight loaders over more banks.
constexpr int kSmemPad = 4;

enum class Mode { Forward, GradWeightFull, GradWeightSign, GradInputHardtanh, GradInputSign };

// Geometry of one convolution. All values fit in int32 (the host checks the
// per-sample and per-call products); element offsets into whole tensors are
// computed in int64.
struct ConvShape {
  int N, C, H, W;      // input
  int Cout, Ho, Wo;    // output
  int kh, kw;
  int sh, sw, ph, pw, dh, dw;
  int groups;
  int Cg;              // input channels per group
  int Mg;              // output channels per group
  int KHW;             // kh·kw
  int K;               // Cg·kh·kw, taps of one output value
  int HW, HoWo;
  int npix;            // N·Ho·Wo
  int nin;             // N·H·W
};

// ----------------------------------------------------------------- scalar ops

__device__ __forceinline__ float abs_val(float v) { return fabsf(v); }
__device__ __forceinline__ double abs_val(double v) { return fabs(v); }
__device__ __forceinline__ float clamp_unit(float v) { return fminf(fmaxf(v, -1.f), 1.f); }
__device__ __forceinline__ double clamp_unit(double v) { return fmin(fmax(v, -1.0), 1.0); }
// v·sign(d) with sign(0) = 0 (torch.sign), as selects: no int->float conversion.
template <typename T>
__device__ __forceinline__ T times_sign(T v, T d) {
  return d > T(0) ? v : (d < T(0) ? -v : T(0));
}

template <Mode M, typename T>
__device__ __forceinline__ void mac(T& acc, T a, T b, T aux) {
  if constexpr (M == Mode::Forward) {
    acc += abs_val(b - a);  // a = w, b = x
  } else if constexpr (M == Mode::GradWeightFull) {
    acc += a * (b - aux);  // a = g, b = x, aux = w
  } else if constexpr (M == Mode::GradWeightSign) {
    acc += times_sign(a, b - aux);
  } else if constexpr (M == Mode::GradInputHardtanh) {
    acc += b * clamp_unit(a - aux);  // a = w, b = g, aux = x
  } else {
    acc += times_sign(b, a - aux);
  }
}

// The element types a backward kernel reads and writes. G: grad_output. X: the input as
// stored (grad_input is written in X). V: the type whose values the input takes in the
// forward being differentiated: X itself for adder_conv2d; the 16-bit compute type for
// adder_conv2d_amp, whose float32 input is rounded to it on load (its weights arrive
// already rounded, in the accumulation type).
template <typename G, typename X, typename V = X>
struct GradTypes {
  using grad_t = G;
  using in_t = X;
  using value_t = V;
};

// v rounded to V, in the accumulation type (exact when v is already a V).
template <typename V, typename Acc, typename X>
__device__ __forceinline__ Acc operand(X v) {
  return static_cast<Acc>(static_cast<V>(v));
}

template <typename T>
__device__ __forceinline__ void load4(T* dst, const T* src) {
#pragma unroll
  for (int i = 0; i < 4; ++i) dst[i] = src[i];
}
template <>
__device__ __forceinline__ void load4<float>(float* dst, const float* src) {
  const float4 v = *reinterpret_cast<const float4*>(src);  // src is 16-byte aligned
  dst[0] = v.x;
  dst[1] = v.y;
  dst[2] = v.z;
  dst[3] = v.w;
}

// ----------------------------------------------------------------- tile core

// Tile configuration. NT threads form a TY×TX grid; thread (ty, tx) owns TM rows
// and TN columns of the BM×BN block tile, taken in groups of 4 consecutive
// elements spread across the tile (row group q starts at q·4·TY + ty·4), so a
// warp's vector loads from shared memory hit consecutive addresses.
template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct TileConfig {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int TY = BM / TM, TX = BN / TN, NT = TY * TX;
  static constexpr int LDA = BM + kSmemPad, LDB = BN + kSmemPad;
  static_assert(BM % TM == 0 && BN % TN == 0, "thread tile must divide block tile");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "thread tile is made of groups of 4");
  static_assert(NT % 32 == 0, "whole warps");
};

template <typename Cfg>
__device__ __forceinline__ int row_of(int r, int ty) {
  return (r / 4) * 4 * Cfg::TY + ty * 4 + (r % 4);
}
template <typename Cfg>
__device__ __forceinline__ int col_of(int c, int tx) {
  return (c / 4) * 4 * Cfg::TX + tx * 4 + (c % 4);
}

// acc[r][c] ⊕= op(As[kk][row_of(r)], Bs[kk][col_of(c)], aux[r][c]) over the BK rows of one stage.
template <Mode M, typename Cfg, typename T>
__device__ __forceinline__ void tile_mac(const T* As, const T* Bs, T (&acc)[Cfg::TM][Cfg::TN],
                                         const T (&aux)[Cfg::TM][Cfg::TN], int ty, int tx) {
#pragma unroll
  for (int kk = 0; kk < Cfg::BK; ++kk) {
    T a[Cfg::TM], b[Cfg::TN];
#pragma unroll
    for (int q = 0; q < Cfg::TM / 4; ++q) load4(a + 4 * q, As + kk * Cfg::LDA + q * 4 * Cfg::TY + ty * 4);
#pragma unroll
    for (int q = 0; q < Cfg::TN / 4; ++q) load4(b + 4 * q, Bs + kk * Cfg::LDB + q * 4 * Cfg::TX + tx * 4);
#pragma unroll
    for (int r = 0; r < Cfg::TM; ++r) {
#pragma unroll
      for (int c = 0; c < Cfg::TN; ++c) mac<M>(acc[r][c], a[r], b[c], aux[r][c]);
    }
  }
}

// The double-buffered main loop of all three GEMMs, written once. One barrier
// per stage: stage t+1 is fetched into registers (load_stage) while stage t is
// computed from shared memory, then written to the other buffer (store_stage),
// whose last readers finished before the previous barrier.
//
//   load_stage(k0)          fetch the stage that starts at reduction row k0 into the
//                           caller's registers (0 for anything outside the matrix)
//   store_stage(As, Bs)     write those registers to one buffer: As is BK×LDA, Bs BK×LDB
//   compute_stage(As, Bs)   the arithmetic of one stage, reading one buffer
//
// S is the type of a shared-memory element (a value, or a word holding a packed pair).
// The shared memory is declared here, once per instantiation; `stages` must be
// the same for every thread of the block (each one reaches every barrier).
template <typename Cfg, typename S, typename LoadStage, typename StoreStage, typename ComputeStage>
__device__ __forceinline__ void gemm_stages(const int k_begin, const int stages, LoadStage&& load_stage,
                                            StoreStage&& store_stage, ComputeStage&& compute_stage) {
  __shared__ __align__(16) S As[2][Cfg::BK * Cfg::LDA];
  __shared__ __align__(16) S Bs[2][Cfg::BK * Cfg::LDB];
  if (stages <= 0) return;
  load_stage(k_begin);
  store_stage(As[0], Bs[0]);
  __syncthreads();
  for (int t = 0; t < stages; ++t) {
    const int cur = t & 1;
    if (t + 1 < stages) load_stage(k_begin + (t + 1) * Cfg::BK);
    compute_stage(As[cur], Bs[cur]);
    if (t + 1 < stages) store_stage(As[cur ^ 1], Bs[cur ^ 1]);
    __syncthreads();
  }
}

// The main loop of the three scalar GEMMs: tile_mac on every stage.
template <Mode M, typename Cfg, typename T, typename LoadStage, typename StoreStage>
__device__ __forceinline__ void gemm_main_loop(const int k_begin, const int stages, LoadStage&& load_stage,
                                               StoreStage&& store_stage, T (&acc)[Cfg::TM][Cfg::TN],
                                               const T (&aux)[Cfg::TM][Cfg::TN], const int ty, const int tx) {
  gemm_stages<Cfg, T>(k_begin, stages, load_stage, store_stage,
                      [&](const T* As, const T* Bs) { tile_mac<M, Cfg>(As, Bs, acc, aux, ty, tx); });
}

// ----------------------------------------------------------------- forward

// The window of output pixel `pix` (of N·Ho·Wo): its image n, its index p in that image's
// output plane, and the input position (ih0, iw0) of its top-left tap.
struct OutputPixel {
  int n, p, ih0, iw0;
};
__device__ __forceinline__ OutputPixel output_pixel(int pix, const ConvShape& s) {
  OutputPixel o;
  o.n = pix / s.HoWo;
  o.p = pix - o.n * s.HoWo;
  const int oh = o.p / s.Wo, ow = o.p - oh * s.Wo;
  o.ih0 = oh * s.sh - s.ph;
  o.iw0 = ow * s.sw - s.pw;
  return o;
}

// Consecutive taps k, k+1, ... of a window as (ci, i, j): decomposed once, then stepped (a
// loader walks a run of K rows per stage this way instead of dividing for every tap).
struct TapWalker {
  int k, ci, i, j;
  __device__ __forceinline__ TapWalker(int k0, const ConvShape& s) : k(k0), ci(k0 / s.KHW) {
    const int rem = k0 - ci * s.KHW;
    i = rem / s.kw;
    j = rem - i * s.kw;
  }
  // The current tap's offset from the start of its image's group of channels, or -1 where the
  // tap falls in the padding.
  __device__ __forceinline__ int64_t offset(const OutputPixel& o, const ConvShape& s) const {
    const int ih = o.ih0 + i * s.dh, iw = o.iw0 + j * s.dw;
    return (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) ? (int64_t)ci * s.HW + ih * s.W + iw : -1;
  }
  __device__ __forceinline__ void next(const ConvShape& s) {
    ++k;
    if (++j == s.kw) {
      j = 0;
      if (++i == s.kh) {
        i = 0;
        ++ci;
      }
    }
  }
};

// Loaders: thread tid fetches A (weights, [K][Mg] per group) column tid % BM and
// B (implicit im2col) column tid % BN, each over a run of consecutive K rows of
// the stage, so the tap decomposition k -> (ci, i, j) is done once per stage and
// then stepped.
template <typename scalar_t, typename acc_t, typename Cfg>
__global__ void __launch_bounds__(Cfg::NT)
    adder_forward_kernel(const scalar_t* __restrict__ x, const acc_t* __restrict__ wt,  // wt: [g][K][Mg]
                         const acc_t* __restrict__ bias, scalar_t* __restrict__ y, const ConvShape s) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int NT = Cfg::NT, LDA = Cfg::LDA, LDB = Cfg::LDB;
  static_assert(NT % BM == 0 && BK % (NT / BM) == 0, "A loader geometry");
  static_assert(NT % BN == 0 && BK % (NT / BN) == 0, "B loader geometry");
  constexpr int A_ROWS = BK / (NT / BM);
  constexpr int B_ROWS = BK / (NT / BN);

  const int tid = threadIdx.x;
  const int ty = tid / Cfg::TX, tx = tid % Cfg::TX;
  const int g = blockIdx.z;
  const int m0 = blockIdx.y * BM;
  const int col0 = blockIdx.x * BN;

  // A loader state.
  const int a_m = tid % BM, a_r0 = (tid / BM) * A_ROWS;
  const bool a_ok = m0 + a_m < s.Mg;
  const acc_t* wg = wt + (int64_t)g * s.K * s.Mg + (a_ok ? m0 + a_m : 0);

  // B loader state: one output pixel per thread for the whole block.
  const int b_c = tid % BN, b_r0 = (tid / BN) * B_ROWS;
  const int bcol = col0 + b_c;
  const bool b_ok = bcol < s.npix;
  const OutputPixel b_px = b_ok ? output_pixel(bcol, s) : OutputPixel{0, 0, 0, 0};
  const scalar_t* xg = x + ((int64_t)b_px.n * s.C + (int64_t)g * s.Cg) * s.HW;

  acc_t ra[A_ROWS], rb[B_ROWS];
  auto load_stage = [&](int k0) {
#pragma unroll
    for (int r = 0; r < A_ROWS; ++r) {
      const int k = k0 + a_r0 + r;
      ra[r] = (a_ok && k < s.K) ? wg[(int64_t)k * s.Mg] : acc_t(0);
    }
    TapWalker t(k0 + b_r0, s);
#pragma unroll
    for (int r = 0; r < B_ROWS; ++r) {
      acc_t v = acc_t(0);
      if (b_ok && t.k < s.K) {
        const int64_t off = t.offset(b_px, s);
        if (off >= 0) v = static_cast<acc_t>(xg[off]);
      }
      rb[r] = v;
      t.next(s);
    }
  };
  auto store_stage = [&](acc_t* As, acc_t* Bs) {
#pragma unroll
    for (int r = 0; r < A_ROWS; ++r) As[(a_r0 + r) * LDA + a_m] = ra[r];
#pragma unroll
    for (int r = 0; r < B_ROWS; ++r) Bs[(b_r0 + r) * LDB + b_c] = rb[r];
  };

  acc_t acc[TM][TN], aux[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r)
#pragma unroll
    for (int c = 0; c < TN; ++c) acc[r][c] = aux[r][c] = acc_t(0);

  gemm_main_loop<Mode::Forward, Cfg>(0, (s.K + BK - 1) / BK, load_stage, store_stage, acc, aux, ty, tx);

#pragma unroll
  for (int c = 0; c < TN; ++c) {
    const int col = col0 + col_of<Cfg>(c, tx);
    if (col >= s.npix) continue;
    const int n = col / s.HoWo, p = col - n * s.HoWo;
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      const int m = m0 + row_of<Cfg>(r, ty);
      if (m >= s.Mg) continue;
      const int co = g * s.Mg + m;
      acc_t v = -acc[r][c];
      if (bias != nullptr) v += bias[co];
      y[((int64_t)n * s.Cout + co) * s.HoWo + p] = static_cast<scalar_t>(v);
    }
  }
}

// ----------------------------------------------------------------- forward, packed fp16 (autocast)
//
// addersr::adder_conv2d_amp: the operands rounded to a 16-bit compute type V (the autocast
// dtype, fp16 or bf16), Y returned in float32. The arithmetic is packed fp16 for both V:
//
//   * a shared-memory word holds two consecutive taps (k, k+1) of one weight / one pixel as
//     a __half2, so one HSUB2 and one HADD2 (|·| is an operand modifier of HADD2) do two
//     taps: one instruction per tap instead of fp32's two (FADD, FADD with |·|);
//   * each thread sums kPackedRun pair rows into a __half2 per output (each lane a run of
//     kPackedRun taps), then flushes both lanes into the fp32 accumulator (2 conversions,
//     2 FADD). Cost per tap 1 + 2/kPackedRun instructions: 1.25 at 8, against 2.
//   * bf16 operands are carried in fp16: bf16's 8 significant bits fit fp16's 11, so the
//     conversion is exact inside fp16's range, and fp16 arithmetic rounds 8x finer than
//     bf16's (bf16 also has no |·| modifier on its packed add, costing a third instruction).
//   * fp16's range: a partial sum past 65504 becomes +inf, which reaches the fp32
//     accumulator. The epilogue recomputes any such output in fp32 from global memory
//     (window_abs_sum), so large values cost time, never correctness. +inf only: a NaN
//     (a NaN input, or unwritten shared memory in the emulation) is left alone.
//
// Error (docs/adder_op.md, "Mixed precision"): with u = 2^-11, each |x - w| is rounded once
// (relative error <= u) and each lane's run adds at most kPackedRun - 1 more roundings of
// non-negative partial sums, so |Ŷ - Y| <= ((1+u)^kPackedRun - 1) · Σ|x - w| plus fp32's
// accumulation error and, for values below fp16's normal range (2^-14), an absolute 2^-25
// per operand and per difference.

// Pair rows per fp16 run (taps per lane before a flush into fp32). Speed against accuracy:
// 8 halves fp32's instruction count to 1.25 per tap, with the bound above at ~8u = 3.9e-3.
constexpr int kPackedRun = 8;
// Largest finite float: an accumulator above it is +inf (an fp16 partial sum overflowed).
constexpr float kFloatMax = 3.402823466e+38f;

// A __half2 and the 32-bit word that carries it through shared memory (a bit copy).
__device__ __forceinline__ uint32_t word_of(__half2 h) {
  uint32_t w;
  memcpy(&w, &h, sizeof w);
  return w;
}
__device__ __forceinline__ __half2 half2_of(uint32_t w) {
  __half2 h;
  memcpy(&h, &w, sizeof h);
  return h;
}
// Four consecutive words of shared memory (16-byte aligned) as four __half2.
__device__ __forceinline__ void load4_half2(__half2* dst, const uint32_t* src) {
  const float4 v = *reinterpret_cast<const float4*>(src);
  memcpy(dst, &v, sizeof v);
}

// The fp16 operand of the kernel: v rounded to V, then carried in fp16 (exact for V = fp16,
// and for V = bf16 inside fp16's range).
template <typename V, typename X>
__device__ __forceinline__ __half half_operand(X v) {
  return __float2half_rn(operand<V, float>(v));
}

// acc[r][c] += Σ over the stage's BK pair rows of |x - w|, in runs of kPackedRun pair rows.
template <typename Cfg>
__device__ __forceinline__ void packed_tile_mac(const uint32_t* As, const uint32_t* Bs,
                                                float (&acc)[Cfg::TM][Cfg::TN], int ty, int tx) {
  static_assert(Cfg::BK % kPackedRun == 0, "whole runs per stage");
#pragma unroll
  for (int p0 = 0; p0 < Cfg::BK; p0 += kPackedRun) {
    __half2 run[Cfg::TM][Cfg::TN];
#pragma unroll
    for (int r = 0; r < Cfg::TM; ++r)
#pragma unroll
      for (int c = 0; c < Cfg::TN; ++c) run[r][c] = half2_of(0u);
#pragma unroll
    for (int p = p0; p < p0 + kPackedRun; ++p) {
      __half2 a[Cfg::TM], b[Cfg::TN];
#pragma unroll
      for (int q = 0; q < Cfg::TM / 4; ++q) load4_half2(a + 4 * q, As + p * Cfg::LDA + q * 4 * Cfg::TY + ty * 4);
#pragma unroll
      for (int q = 0; q < Cfg::TN / 4; ++q) load4_half2(b + 4 * q, Bs + p * Cfg::LDB + q * 4 * Cfg::TX + tx * 4);
#pragma unroll
      for (int r = 0; r < Cfg::TM; ++r)
#pragma unroll
        for (int c = 0; c < Cfg::TN; ++c) run[r][c] = __hadd2(run[r][c], __habs2(__hsub2(b[c], a[r])));
    }
#pragma unroll
    for (int r = 0; r < Cfg::TM; ++r)
#pragma unroll
      for (int c = 0; c < Cfg::TN; ++c) acc[r][c] += __low2float(run[r][c]) + __high2float(run[r][c]);
  }
}

// Σ|x - w| of one output in fp32, straight from global memory: the rare path for outputs
// whose fp16 partial sums overflowed. w: the K weights of the output channel, rounded to V.
template <typename X, typename V>
__device__ float window_abs_sum(const X* __restrict__ xg, const float* __restrict__ w, const ConvShape& s,
                                const OutputPixel& o) {
  float sum = 0.f;
  for (TapWalker t(0, s); t.k < s.K; t.next(s)) {
    const int64_t off = t.offset(o, s);
    sum += fabsf((off >= 0 ? operand<V, float>(xg[off]) : 0.f) - w[t.k]);
  }
  return sum;
}

// The implicit GEMM of adder_forward_kernel with pair rows as its K index: a stage is BK
// pair rows (2·BK taps). Tap k of a row past K is 0 on both sides (|0 - 0| = 0).
//   x:   the input, X = float or V
//   wt2: [g][ceil(K/2)][Mg] words, each the __half2 (w[k], w[k+1]) of taps k = 2·pair
//   w32: [Cout][K] the weights rounded to V, as float (for window_abs_sum)
template <typename X, typename V, typename Cfg>
__global__ void __launch_bounds__(Cfg::NT)
    adder_forward_packed_kernel(const X* __restrict__ x, const uint32_t* __restrict__ wt2,
                                const float* __restrict__ w32, const float* __restrict__ bias,
                                float* __restrict__ y, const ConvShape s) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int NT = Cfg::NT, LDA = Cfg::LDA, LDB = Cfg::LDB;
  static_assert(NT % BM == 0 && BK % (NT / BM) == 0, "A loader geometry");
  static_assert(NT % BN == 0 && BK % (NT / BN) == 0, "B loader geometry");
  constexpr int A_ROWS = BK / (NT / BM);  // pair rows per thread
  constexpr int B_ROWS = BK / (NT / BN);

  const int tid = threadIdx.x;
  const int ty = tid / Cfg::TX, tx = tid % Cfg::TX;
  const int g = blockIdx.z;
  const int m0 = blockIdx.y * BM;
  const int col0 = blockIdx.x * BN;
  const int pairs = (s.K + 1) / 2;

  const int a_m = tid % BM, a_r0 = (tid / BM) * A_ROWS;
  const bool a_ok = m0 + a_m < s.Mg;
  const uint32_t* wg = wt2 + (int64_t)g * pairs * s.Mg + (a_ok ? m0 + a_m : 0);

  const int b_c = tid % BN, b_r0 = (tid / BN) * B_ROWS;
  const int bcol = col0 + b_c;
  const bool b_ok = bcol < s.npix;
  const OutputPixel b_px = b_ok ? output_pixel(bcol, s) : OutputPixel{0, 0, 0, 0};
  const X* xg = x + ((int64_t)b_px.n * s.C + (int64_t)g * s.Cg) * s.HW;

  uint32_t ra[A_ROWS], rb[B_ROWS];
  auto load_stage = [&](int p0) {
#pragma unroll
    for (int r = 0; r < A_ROWS; ++r) {
      const int p = p0 + a_r0 + r;
      ra[r] = (a_ok && p < pairs) ? wg[(int64_t)p * s.Mg] : 0u;
    }
    TapWalker t(2 * (p0 + b_r0), s);  // taps 2·(p0 + b_r0) onward
    __half tap[2];
#pragma unroll
    for (int r = 0; r < B_ROWS; ++r) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        tap[h] = __float2half_rn(0.f);
        if (b_ok && t.k < s.K) {
          const int64_t off = t.offset(b_px, s);
          if (off >= 0) tap[h] = half_operand<V>(xg[off]);
        }
        t.next(s);
      }
      rb[r] = word_of(__halves2half2(tap[0], tap[1]));
    }
  };
  auto store_stage = [&](uint32_t* As, uint32_t* Bs) {
#pragma unroll
    for (int r = 0; r < A_ROWS; ++r) As[(a_r0 + r) * LDA + a_m] = ra[r];
#pragma unroll
    for (int r = 0; r < B_ROWS; ++r) Bs[(b_r0 + r) * LDB + b_c] = rb[r];
  };

  float acc[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r)
#pragma unroll
    for (int c = 0; c < TN; ++c) acc[r][c] = 0.f;

  gemm_stages<Cfg, uint32_t>(0, (pairs + BK - 1) / BK, load_stage, store_stage,
                             [&](const uint32_t* As, const uint32_t* Bs) { packed_tile_mac<Cfg>(As, Bs, acc, ty, tx); });

#pragma unroll
  for (int c = 0; c < TN; ++c) {
    const int col = col0 + col_of<Cfg>(c, tx);
    if (col >= s.npix) continue;
    const int n = col / s.HoWo, p = col - n * s.HoWo;
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      const int m = m0 + row_of<Cfg>(r, ty);
      if (m >= s.Mg) continue;
      const int co = g * s.Mg + m;
      float sum = acc[r][c];
      if (sum > kFloatMax)  // +inf: an fp16 partial sum overflowed
        sum = window_abs_sum<X, V>(x + ((int64_t)n * s.C + (int64_t)g * s.Cg) * s.HW, w32 + (int64_t)co * s.K, s,
                                   output_pixel(col, s));
      float v = -sum;
      if (bias != nullptr) v += bias[co];
      y[((int64_t)n * s.Cout + co) * s.HoWo + p] = v;
    }
  }
}

// ----------------------------------------------------------------- grad_weight

// Split-K over output pixels: block (split, tap tile, co tile, group) reduces
// pixels [split·pps, min(npix, (split+1)·pps)) and writes its partial sums to
// part[split][Cout][K] (fp32/fp64); a second kernel adds the splits in a fixed
// order, so the result is deterministic. Both loaders walk pixels with
// consecutive threads (coalesced reads of G and X along a row of the image).
template <typename IO, typename acc_t, typename Cfg, Mode M>
__global__ void __launch_bounds__(Cfg::NT)
    adder_grad_weight_kernel(const typename IO::grad_t* __restrict__ go, const typename IO::in_t* __restrict__ x,
                             const acc_t* __restrict__ w,  // [Cout][K]
                             acc_t* __restrict__ part, const ConvShape s, const int pix_per_split,
                             const int tap_tiles) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int NT = Cfg::NT, LDA = Cfg::LDA, LDB = Cfg::LDB;
  static_assert(NT % BK == 0, "loader geometry: whole pixel rows");
  constexpr int GROUPS = NT / BK;  // loader thread groups along M and N
  static_assert(BM % GROUPS == 0 && BN % GROUPS == 0, "loader geometry");
  constexpr int A_COLS = BM / GROUPS;
  constexpr int B_COLS = BN / GROUPS;

  const int tid = threadIdx.x;
  const int ty = tid / Cfg::TX, tx = tid % Cfg::TX;
  const int split = blockIdx.x / tap_tiles;
  const int k0 = (blockIdx.x - split * tap_tiles) * BN;  // first tap of the tile
  const int m0 = blockIdx.y * BM;
  const int g = blockIdx.z;
  const int pix_begin = split * pix_per_split;
  const int pix_end = s.npix - pix_begin < pix_per_split ? s.npix : pix_begin + pix_per_split;

  // Loader roles: pixel row kk of the stage, and a run of co (A) / taps (B).
  const int l_kk = tid % BK;
  const int a_c0 = (tid / BK) * A_COLS;
  const int b_c0 = (tid / BK) * B_COLS;

  // Tap decomposition of this thread's B columns, fixed for the whole block.
  int t_ci[B_COLS], t_di[B_COLS], t_dj[B_COLS];
  bool t_ok[B_COLS];
#pragma unroll
  for (int c = 0; c < B_COLS; ++c) {
    const int k = k0 + b_c0 + c;
    t_ok[c] = k < s.K;
    const int kc = t_ok[c] ? k : 0;
    t_ci[c] = kc / s.KHW;
    const int rem = kc - t_ci[c] * s.KHW;
    const int i = rem / s.kw;
    t_di[c] = i * s.dh;
    t_dj[c] = (rem - i * s.kw) * s.dw;
  }

  acc_t ra[A_COLS], rb[B_COLS];
  auto load_stage = [&](int p0) {
    const int pix = p0 + l_kk;
    const bool ok = pix < pix_end;
    const OutputPixel o = ok ? output_pixel(pix, s) : OutputPixel{0, 0, 0, 0};
    const int n = o.n, ih0 = o.ih0, iw0 = o.iw0;
    const typename IO::grad_t* gp = go + ((int64_t)n * s.Cout + (int64_t)g * s.Mg) * s.HoWo + o.p;
#pragma unroll
    for (int c = 0; c < A_COLS; ++c) {
      const int m = m0 + a_c0 + c;
      ra[c] = (ok && m < s.Mg) ? static_cast<acc_t>(gp[(int64_t)m * s.HoWo]) : acc_t(0);
    }
    const typename IO::in_t* xp = x + ((int64_t)n * s.C + (int64_t)g * s.Cg) * s.HW;
#pragma unroll
    for (int c = 0; c < B_COLS; ++c) {
      acc_t v = acc_t(0);
      const int ih = ih0 + t_di[c], iw = iw0 + t_dj[c];
      if (ok && t_ok[c] && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
        v = operand<typename IO::value_t, acc_t>(xp[(int64_t)t_ci[c] * s.HW + ih * s.W + iw]);
      rb[c] = v;
    }
  };
  auto store_stage = [&](acc_t* As, acc_t* Bs) {
#pragma unroll
    for (int c = 0; c < A_COLS; ++c) As[l_kk * LDA + a_c0 + c] = ra[c];
#pragma unroll
    for (int c = 0; c < B_COLS; ++c) Bs[l_kk * LDB + b_c0 + c] = rb[c];
  };

  // aux = W[co][k] of each accumulator (0 outside the matrix: never written).
  acc_t acc[TM][TN], aux[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int m = m0 + row_of<Cfg>(r, ty);
#pragma unroll
    for (int c = 0; c < TN; ++c) {
      const int k = k0 + col_of<Cfg>(c, tx);
      acc[r][c] = acc_t(0);
      aux[r][c] = (m < s.Mg && k < s.K) ? w[((int64_t)g * s.Mg + m) * s.K + k] : acc_t(0);
    }
  }

  const int stages = pix_end > pix_begin ? (pix_end - pix_begin + BK - 1) / BK : 0;
  gemm_main_loop<M, Cfg>(pix_begin, stages, load_stage, store_stage, acc, aux, ty, tx);

  acc_t* out = part + (int64_t)split * s.Cout * s.K;
#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int m = m0 + row_of<Cfg>(r, ty);
    if (m >= s.Mg) continue;
#pragma unroll
    for (int c = 0; c < TN; ++c) {
      const int k = k0 + col_of<Cfg>(c, tx);
      if (k < s.K) out[((int64_t)g * s.Mg + m) * s.K + k] = acc[r][c];
    }
  }
}

// dW[i] = Σ_split part[split][i], in split order (deterministic), written in the weight's type.
template <typename scalar_t, typename acc_t>
__global__ void adder_grad_weight_reduce_kernel(const acc_t* __restrict__ part, scalar_t* __restrict__ dw,
                                                const int64_t numel, const int splits) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < numel; i += stride) {
    acc_t sum = acc_t(0);
    for (int sp = 0; sp < splits; ++sp) sum += part[(int64_t)sp * numel + i];
    dw[i] = static_cast<scalar_t>(sum);
  }
}

// ----------------------------------------------------------------- grad_input

// Gather formulation: each input pixel q sums over the taps (i, j) whose output
// position p = (q + pad - (i, j)·dil) / stride is integral and inside the
// output, and over the Cout/g channels of its group. The reduction index is
// kr = t·Mg + co (tap-major), so a stage mostly shares one tap and the validity
// test is recomputed only when the tap changes. Every dX element is written by
// exactly one thread: no atomics, deterministic.
template <typename IO, typename acc_t, typename Cfg, Mode M>
__global__ void __launch_bounds__(Cfg::NT)
    adder_grad_input_kernel(const typename IO::grad_t* __restrict__ go, const typename IO::in_t* __restrict__ x,
                            const acc_t* __restrict__ wp,  // [g][KHW][Mg][Cg]
                            typename IO::in_t* __restrict__ dx, const ConvShape s) {
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int NT = Cfg::NT, LDA = Cfg::LDA, LDB = Cfg::LDB;
  static_assert(NT % BM == 0 && BK % (NT / BM) == 0, "A loader geometry");
  static_assert(NT % BN == 0 && BK % (NT / BN) == 0, "B loader geometry");
  constexpr int A_ROWS = BK / (NT / BM);
  constexpr int B_ROWS = BK / (NT / BN);

  const int tid = threadIdx.x;
  const int ty = tid / Cfg::TX, tx = tid % Cfg::TX;
  const int g = blockIdx.z;
  const int m0 = blockIdx.y * BM;    // first input channel (within the group)
  const int col0 = blockIdx.x * BN;  // first input pixel
  const int R = s.KHW * s.Mg;        // reduction length

  // A loader: weights, input channel column a_m.
  const int a_m = tid % BM, a_r0 = (tid / BM) * A_ROWS;
  const bool a_ok = m0 + a_m < s.Cg;
  const acc_t* wg = wp + (int64_t)g * R * s.Cg + (a_ok ? m0 + a_m : 0);

  // B loader: grad_output gathered for input pixel bcol.
  const int b_c = tid % BN, b_r0 = (tid / BN) * B_ROWS;
  const int bcol = col0 + b_c;
  const bool b_ok = bcol < s.nin;
  int bn = 0, bih = 0, biw = 0;
  if (b_ok) {
    bn = bcol / s.HW;
    const int q = bcol - bn * s.HW;
    bih = q / s.W;
    biw = q - bih * s.W;
  }
  const typename IO::grad_t* gn = go + ((int64_t)bn * s.Cout + (int64_t)g * s.Mg) * s.HoWo;

  // Which output position (if any) tap t of this pixel reads from.
  auto tap_offset = [&](int t, int& off) -> bool {
    if (!b_ok || t >= s.KHW) return false;
    const int i = t / s.kw, j = t - i * s.kw;
    const int ohs = bih + s.ph - i * s.dh, ows = biw + s.pw - j * s.dw;
    if (ohs < 0 || ows < 0 || ohs % s.sh != 0 || ows % s.sw != 0) return false;
    const int oh = ohs / s.sh, ow = ows / s.sw;
    if (oh >= s.Ho || ow >= s.Wo) return false;
    off = oh * s.Wo + ow;
    return true;
  };

  acc_t ra[A_ROWS], rb[B_ROWS];
  auto load_stage = [&](int k0) {
#pragma unroll
    for (int r = 0; r < A_ROWS; ++r) {
      const int kr = k0 + a_r0 + r;
      ra[r] = (a_ok && kr < R) ? wg[(int64_t)kr * s.Cg] : acc_t(0);
    }
    const int kr = k0 + b_r0;
    int t = kr / s.Mg, co = kr - t * s.Mg;
    int off = 0;
    bool valid = tap_offset(t, off);
#pragma unroll
    for (int r = 0; r < B_ROWS; ++r) {
      rb[r] = valid ? static_cast<acc_t>(gn[(int64_t)co * s.HoWo + off]) : acc_t(0);
      if (++co == s.Mg) {
        co = 0;
        ++t;
        valid = tap_offset(t, off);
      }
    }
  };
  auto store_stage = [&](acc_t* As, acc_t* Bs) {
#pragma unroll
    for (int r = 0; r < A_ROWS; ++r) As[(a_r0 + r) * LDA + a_m] = ra[r];
#pragma unroll
    for (int r = 0; r < B_ROWS; ++r) Bs[(b_r0 + r) * LDB + b_c] = rb[r];
  };

  // aux = X at each accumulator's (input channel, input pixel).
  acc_t acc[TM][TN], aux[TM][TN];
#pragma unroll
  for (int c = 0; c < TN; ++c) {
    const int col = col0 + col_of<Cfg>(c, tx);
    const bool cok = col < s.nin;
    const int n = cok ? col / s.HW : 0;
    const int q = col - n * s.HW;
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      const int ci = m0 + row_of<Cfg>(r, ty);
      acc[r][c] = acc_t(0);
      aux[r][c] = (cok && ci < s.Cg)
                      ? operand<typename IO::value_t, acc_t>(x[((int64_t)n * s.C + (int64_t)g * s.Cg + ci) * s.HW + q])
                      : acc_t(0);
    }
  }

  gemm_main_loop<M, Cfg>(0, (R + BK - 1) / BK, load_stage, store_stage, acc, aux, ty, tx);

#pragma unroll
  for (int c = 0; c < TN; ++c) {
    const int col = col0 + col_of<Cfg>(c, tx);
    if (col >= s.nin) continue;
    const int n = col / s.HW, q = col - n * s.HW;
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      const int ci = m0 + row_of<Cfg>(r, ty);
      if (ci < s.Cg)
        dx[((int64_t)n * s.C + (int64_t)g * s.Cg + ci) * s.HW + q] = static_cast<typename IO::in_t>(acc[r][c]);
    }
  }
}

// ----------------------------------------------------------------- configurations

// 64×128 block tile, 16-deep stages, 4×8 accumulators per thread, 256 threads.
// fp64 halves the tile so two stages of shared memory stay well under 48 KiB.
template <typename acc_t>
struct GemmConfig {
  using type = TileConfig<64, 128, 16, 4, 8>;
};
template <>
struct GemmConfig<double> {
  using type = TileConfig<64, 64, 8, 4, 4>;
};
// grad_weight: the N side (taps) is short (Cin/g·k²), so a square 64×64 tile.
template <typename acc_t>
struct GradWeightConfig {
  using type = TileConfig<64, 64, 16, 4, 4>;
};
template <>
struct GradWeightConfig<double> {
  using type = TileConfig<64, 64, 8, 4, 4>;
};
// The packed forward: BK counts pair rows, so a stage is 32 taps, two fp16 runs.
using PackedConfig = TileConfig<64, 128, 2 * kPackedRun, 4, 8>;

}  // namespace cuda_kernels
}  // namespace addersr

// CPU kernels of addersr::adder_conv2d and its two backward operators.
//
// The adder convolution is a "GEMM" whose inner operation is |x - w| instead of
// x * w, so it is organised like a GEMM (see docs/adder_op.md):
//   * work items are (image, group, chunk of output pixels); each item packs its
//     input patches into a small per-thread panel buffer (never more than one
//     chunk's im2col), zero-filled at padded taps and tail pixels;
//   * a register-blocked micro-kernel (at::vec, AVX2 on x86-64) keeps a tile of
//     accumulators in registers while streaming the packed panels;
//   * the full-precision weight gradient uses the exact identity
//       Σ G·(X − W) = conv2d_weight_grad(X, G) − W·Σ G
//     so oneDNN's convolution backward does the heavy part.
// float32 runs the AVX-512 kernels of adder_conv2d_cpu_avx512.cpp instead where the CPU has
// AVX-512 (checked at run time; ADDERSR_FLOAT_KERNEL=avx2 forces the kernels here).
// fp16/bf16 inputs are computed in fp32 and cast back (fp32 accumulation).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "adder_conv2d_geometry.h"  // csrc/, on the include path
#include "cpu/adder_conv2d_cpu_avx512.h"
#include "cpu/adder_conv2d_cpu_pack.h"

namespace addersr {
namespace {

using at::vec::Vectorized;

// Micro-tile sizes. Forward: MR output channels × NR pixels of accumulators:
// 5 × 2 vectors = 10 registers, plus 2 input vectors, the broadcast weight, the
// abs mask, the constant 1 and a temporary = all 16 AVX2 registers. With MR = 6
// two accumulators spill, and their store/reload chain halves the throughput.
// Backward input: KR taps × NR pixels.
constexpr int64_t MR = 5;
constexpr int64_t KR = 4;
// Taps per forward K block: 256 × NR floats = 16 KiB of packed input per pixel panel.
constexpr int64_t kForwardKBlock = 256;
template <typename T>
constexpr int64_t nr() { return 2 * Vectorized<T>::size(); }
// Pixels per work item ("chunk"): packed buffers hold K × kChunk values, far less
// than one image's im2col, and stay in L2.
constexpr int64_t kChunkPanels = 8;
template <typename T>
constexpr int64_t chunk_pixels() { return kChunkPanels * nr<T>(); }

using cpu_pack::pack_columns;
using cpu_pack::pack_grad_rows;

// ---------------------------------------------------------------------------
// Packing (im2col of a chunk: cpu_pack::pack_columns, shared with the AVX-512 kernels)

// Packs one group's weights (Cout/g × K, row-major) into MR-row panels:
// out[panel][k][r], rows beyond Cout/g zero.
template <typename T>
std::vector<T> pack_weight_rows(const T* w, int64_t rows, int64_t K) {
  const int64_t n_panels = (rows + MR - 1) / MR;
  std::vector<T> out(n_panels * K * MR, T(0));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) out[((r / MR) * K + k) * MR + r % MR] = w[r * K + k];
  return out;
}

// Packs one group's weights into KR-tap panels for the input gradient:
// out[kpanel][co][r] = W[co][kpanel·KR + r], taps beyond K zero.
template <typename T>
std::vector<T> pack_weight_taps(const T* w, int64_t rows, int64_t K) {
  const int64_t n_panels = (K + KR - 1) / KR;
  std::vector<T> out(n_panels * rows * KR, T(0));
  for (int64_t co = 0; co < rows; ++co)
    for (int64_t k = 0; k < K; ++k) out[((k / KR) * rows + co) * KR + k % KR] = w[co * K + k];
  return out;
}

// ---------------------------------------------------------------------------
// Micro-kernels

// An empty asm that claims to modify `v`: the optimiser can no longer treat it as a
// known constant (used to keep deliberate fma(a, 1, c) instructions).
template <typename Vec>
inline void hide_constant(Vec&) {}
#if defined(__GNUC__) && defined(CPU_CAPABILITY_AVX2)
inline void hide_constant(Vectorized<float>& v) {
  __m256 r = v;
  asm("" : "+x"(r));
  v = r;
}
inline void hide_constant(Vectorized<double>& v) {
  __m256d r = v;
  asm("" : "+x"(r));
  v = r;
}
#endif

// out[r][c] = (first ? bias[r] : out[r][c]) − Σ_k |x[k][c] − w[k][r]| for r < rows,
// c < cols, k over one K block. x rows are CP apart (packed columns), w is the
// block's part of one MR-row weight panel.
template <typename T>
inline void forward_tile(const T* __restrict wp, const T* __restrict xp, int64_t K, bool first, const T* bias,
                         T* out, int64_t out_stride, int64_t rows, int64_t cols) {
  using Vec = Vectorized<T>;
  constexpr int64_t V = Vec::size(), CP = chunk_pixels<T>();
  // acc += |x − w| costs a subtract, an and-not (abs) and an add. Subtract and add both
  // compete for the FP add ports, so the add is issued as fma(|x − w|, 1, acc) on the
  // FMA ports instead: exactly the same rounding, more throughput on AVX2 cores.
  Vec one(T(1));
  hide_constant(one);  // keep the compiler from folding fma(a, 1, c) back into a + c
  Vec acc[MR][2];
  for (int64_t r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = Vec(T(0));
  for (int64_t k = 0; k < K; ++k) {
    const Vec x0 = Vec::loadu(xp + k * CP), x1 = Vec::loadu(xp + k * CP + V);
    const T* wk = wp + k * MR;
#pragma GCC unroll 8
    for (int64_t r = 0; r < MR; ++r) {
      const Vec wv(wk[r]);
      acc[r][0] = at::vec::fmadd((x0 - wv).abs(), one, acc[r][0]);
      acc[r][1] = at::vec::fmadd((x1 - wv).abs(), one, acc[r][1]);
    }
  }
  // Constant trip count (then `if`): a loop to `rows` would index acc[] at run time and
  // force the compiler to keep a memory copy of every accumulator inside the k loop.
#pragma GCC unroll 8
  for (int64_t r = 0; r < MR; ++r) {
    if (r >= rows) break;
    T* o = out + r * out_stride;
    // The first K block starts from the bias, later ones from the partial sums.
    const Vec b0 = first ? Vec(bias ? bias[r] : T(0)) : Vec::loadu(o, std::min<int64_t>(cols, V));
    (b0 - acc[r][0]).store(o, std::min<int64_t>(cols, V));
    if (cols > V) {
      const Vec b1 = first ? Vec(bias ? bias[r] : T(0)) : Vec::loadu(o + V, cols - V);
      (b1 - acc[r][1]).store(o + V, cols - V);
    }
  }
}

// dcol[r][c] = Σ_co g[co][c] · φ(w[co][r] − x[r][c]) for r < taps, c < cols,
// φ = clamp(·, −1, 1) ("hardtanh") or sign ("sign"). x and g rows are CP apart,
// wt is one KR-tap weight panel.
template <typename T, bool kSign>
inline void grad_input_tile(const T* __restrict wt, const T* __restrict xp, const T* __restrict gp,
                            int64_t cout_g, T* dcol, int64_t dcol_stride, int64_t taps, int64_t cols) {
  using Vec = Vectorized<T>;
  constexpr int64_t V = Vec::size(), CP = chunk_pixels<T>();
  const Vec one(T(1)), mone(T(-1)), zero(T(0));
  Vec acc[KR][2];
  for (int64_t r = 0; r < KR; ++r) acc[r][0] = acc[r][1] = zero;
  // The KR×NR patch values are re-read from L1 for every channel rather than held
  // in registers: the accumulators, two grad vectors and the constants fill the
  // 16 AVX2 registers already, and spilling costs more than the loads.
  for (int64_t co = 0; co < cout_g; ++co) {
    const Vec g0 = Vec::loadu(gp + co * CP), g1 = Vec::loadu(gp + co * CP + V);
    const T* wc = wt + co * KR;
#pragma GCC unroll 8
    for (int64_t r = 0; r < KR; ++r) {
      const Vec wv(wc[r]);
      Vec t0 = wv - Vec::loadu(xp + r * CP), t1 = wv - Vec::loadu(xp + r * CP + V);
      if constexpr (kSign) {
        t0 = ((t0 > zero) & one) - ((t0 < zero) & one);
        t1 = ((t1 > zero) & one) - ((t1 < zero) & one);
      } else {
        t0 = at::vec::clamp(t0, mone, one);
        t1 = at::vec::clamp(t1, mone, one);
      }
      acc[r][0] = at::vec::fmadd(t0, g0, acc[r][0]);
      acc[r][1] = at::vec::fmadd(t1, g1, acc[r][1]);
    }
  }
#pragma GCC unroll 8
  for (int64_t r = 0; r < KR; ++r) {  // constant trip count: see forward_tile
    if (r >= taps) break;
    T* o = dcol + r * dcol_stride;
    acc[r][0].store(o, std::min<int64_t>(cols, V));
    if (cols > V) acc[r][1].store(o + V, cols - V);
  }
}

// dw[co][k] += Σ_c g[co][c] · sign(x[k][c] − w[co][k]) over one packed chunk
// (x: K rows, g: Cout/g rows, both CP long and zero past the chunk's pixels).
template <typename T>
void grad_weight_sign_chunk(const T* w, const T* xp, const T* gp, int64_t cout_g, int64_t K, T* dw) {
  using Vec = Vectorized<T>;
  constexpr int64_t V = Vec::size(), CP = chunk_pixels<T>();
  const Vec one(T(1)), zero(T(0));
  for (int64_t co = 0; co < cout_g; ++co) {
    const T* gc = gp + co * CP;
    for (int64_t k = 0; k < K; ++k) {
      const Vec wv(w[co * K + k]);
      const T* xk = xp + k * CP;
      Vec acc = zero;
      for (int64_t v = 0; v < CP; v += V) {
        const Vec t = Vec::loadu(xk + v) - wv;
        const Vec s = ((t > zero) & one) - ((t < zero) & one);
        acc = at::vec::fmadd(s, Vec::loadu(gc + v), acc);
      }
      dw[co * K + k] += at::vec::vec_reduce_all<T>([](Vec a, Vec b) { return a + b; }, acc);
    }
  }
}

// ---------------------------------------------------------------------------
// Drivers

template <typename T>
void forward_impl(const at::Tensor& x, const at::Tensor& w, const T* bias, const Geometry& g, at::Tensor& y) {
  constexpr int64_t NR = nr<T>(), CP = chunk_pixels<T>();
  const int64_t K = g.K(), L = g.L(), cg = g.cout_g();
  const int64_t n_chunks = (L + CP - 1) / CP;
  const T* xd = x.data_ptr<T>();
  const T* wd = w.data_ptr<T>();
  T* yd = y.data_ptr<T>();
  std::vector<std::vector<T>> wpack(g.groups);
  for (int64_t gi = 0; gi < g.groups; ++gi) wpack[gi] = pack_weight_rows(wd + gi * cg * K, cg, K);
  const int64_t items = g.N * g.groups * n_chunks;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(K * CP);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t chunk = it % n_chunks, gi = (it / n_chunks) % g.groups, n = it / (n_chunks * g.groups);
      const int64_t p0 = chunk * CP, count = std::min(CP, L - p0);
      pack_columns(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, p0, count, K, CP, cols.data());
      // K blocks of kForwardKBlock taps keep one pixel panel's inputs (kb × NR values)
      // in L1 while every MR-row weight panel of the group streams past it.
      for (int64_t k0 = 0; k0 < K; k0 += kForwardKBlock) {
        const int64_t kb = std::min(kForwardKBlock, K - k0);
        for (int64_t c0 = 0; c0 < count; c0 += NR) {
          for (int64_t r0 = 0; r0 < cg; r0 += MR) {
            const T* wp = wpack[gi].data() + ((r0 / MR) * K + k0) * MR;
            T* yrow = yd + (n * g.Cout + gi * cg + r0) * L + p0;
            const T* b = bias ? bias + gi * cg + r0 : nullptr;
            forward_tile<T>(wp, cols.data() + k0 * CP + c0, kb, k0 == 0, b, yrow + c0, L, std::min(MR, cg - r0),
                            std::min(NR, count - c0));
          }
        }
      }
    }
  });
}

// Input gradient of one image in two steps: the column gradient dcols
// ((groups·K) × L, one image's im2col) from packed chunks here, then col2im
// (cpu_pack::grad_input_schedule runs both).
template <typename T, bool kSign>
struct GradInputImage {
  const Geometry& g;
  const T* xd;
  const T* gd;
  const std::vector<std::vector<T>>& wpack;  // per group, KR-tap panels

  int64_t k_rows() const { return (g.K() + KR - 1) / KR * KR; }
  int64_t n_chunks() const { return (g.L() + chunk_pixels<T>() - 1) / chunk_pixels<T>(); }
  int64_t items() const { return g.groups * n_chunks(); }  // (group, chunk) pairs of one image

  // dcols columns of the (group, chunk) items [begin, end) of image n.
  void columns(int64_t n, int64_t begin, int64_t end, T* dcols) const {
    constexpr int64_t NR = nr<T>(), CP = chunk_pixels<T>();
    const int64_t K = g.K(), L = g.L(), cg = g.cout_g(), nc = n_chunks();
    std::vector<T> cols(k_rows() * CP), gpan(cg * CP);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t chunk = it % nc, gi = it / nc;
      const int64_t p0 = chunk * CP, count = std::min(CP, L - p0);
      pack_columns(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, p0, count, k_rows(), CP, cols.data());
      pack_grad_rows(gd + (n * g.Cout + gi * cg) * L, cg, L, p0, count, CP, gpan.data());
      for (int64_t k0 = 0; k0 < K; k0 += KR) {
        const T* wt = wpack[gi].data() + (k0 / KR) * cg * KR;
        T* drow = dcols + (gi * K + k0) * L + p0;
        for (int64_t c0 = 0; c0 < count; c0 += NR) {
          grad_input_tile<T, kSign>(wt, cols.data() + k0 * CP + c0, gpan.data() + c0, cg, drow + c0, L,
                                    std::min(KR, K - k0), std::min(NR, count - c0));
        }
      }
    }
  }
};

template <typename T, bool kSign>
void grad_input_impl(const at::Tensor& gout, const at::Tensor& x, const at::Tensor& w, const Geometry& g,
                     at::Tensor& gx) {
  const int64_t cg = g.cout_g();
  std::vector<std::vector<T>> wpack(g.groups);
  for (int64_t gi = 0; gi < g.groups; ++gi)
    wpack[gi] = pack_weight_taps(w.data_ptr<T>() + gi * cg * g.K(), cg, g.K());
  const GradInputImage<T, kSign> img{g, x.data_ptr<T>(), gout.data_ptr<T>(), wpack};
  cpu_pack::grad_input_schedule<T>(
      g, img.items(), [&](int64_t n, int64_t begin, int64_t end, T* dcols) { img.columns(n, begin, end, dcols); },
      gx.data_ptr<T>());
}

template <typename T>
void grad_weight_sign_impl(const at::Tensor& gout, const at::Tensor& x, const at::Tensor& w, const Geometry& g,
                           at::Tensor& gw) {
  constexpr int64_t CP = chunk_pixels<T>();
  const int64_t K = g.K(), L = g.L(), cg = g.cout_g();
  const int64_t n_chunks = (L + CP - 1) / CP;
  const T* xd = x.data_ptr<T>();
  const T* wd = w.data_ptr<T>();
  const T* gd = gout.data_ptr<T>();
  // One partial dW per thread, summed at the end.
  const int64_t n_threads = at::get_num_threads();
  std::vector<T> partial(n_threads * g.Cout * K, T(0));
  const int64_t items = g.N * g.groups * n_chunks;
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    T* mine = partial.data() + at::get_thread_num() * g.Cout * K;
    std::vector<T> cols(K * CP), gpan(cg * CP);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t chunk = it % n_chunks, gi = (it / n_chunks) % g.groups, n = it / (n_chunks * g.groups);
      const int64_t p0 = chunk * CP, count = std::min(CP, L - p0);
      pack_columns(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, p0, count, K, CP, cols.data());
      pack_grad_rows(gd + (n * g.Cout + gi * cg) * L, cg, L, p0, count, CP, gpan.data());
      grad_weight_sign_chunk<T>(wd + gi * cg * K, cols.data(), gpan.data(), cg, K, mine + gi * cg * K);
    }
  });
  T* out = gw.data_ptr<T>();
  for (int64_t i = 0; i < g.Cout * K; ++i) {
    T s = 0;
    for (int64_t t = 0; t < n_threads; ++t) s += partial[t * g.Cout * K + i];
    out[i] = s;
  }
}

// ---------------------------------------------------------------------------
// Operator entry points

// fp16/bf16 run in fp32; returns the compute dtype.
at::ScalarType compute_type(const at::Tensor& t) {
  return (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) ? at::kFloat : t.scalar_type();
}

at::Tensor adder_conv2d_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                            at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            c10::string_view /*weight_grad*/, c10::string_view /*input_grad*/) {
  const Geometry g = make_geometry("adder_conv2d", input, weight, stride, padding, dilation, groups);
  check_bias("adder_conv2d", bias, input, g);
  const auto ct = compute_type(input);
  auto x = input.to(ct).contiguous();
  auto w = weight.to(ct).contiguous();
  at::Tensor b = bias.has_value() && bias->defined() ? bias->to(ct).contiguous() : at::Tensor();
  auto y = at::empty({g.N, g.Cout, g.Ho, g.Wo}, x.options());
  if (g.N > 0 && ct == at::kFloat && cpu_avx512::enabled()) {
    cpu_avx512::forward(x.data_ptr<float>(), w.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, g,
                        y.data_ptr<float>());
  } else if (g.N > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "adder_conv2d_cpu", [&] {
      forward_impl<scalar_t>(x, w, b.defined() ? b.data_ptr<scalar_t>() : nullptr, g, y);
    });
  }
  return y.to(input.scalar_type());
}

at::Tensor adder_conv2d_grad_input_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                       const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef dilation, int64_t groups, c10::string_view mode) {
  constexpr const char* op = "adder_conv2d_grad_input";
  const Geometry g = make_geometry(op, input, weight, stride, padding, dilation, groups);
  check_grad_output(op, grad_output, input, g);
  const bool sign = parse_input_grad_mode(op, mode);
  const auto ct = compute_type(input);
  auto x = input.to(ct).contiguous();
  auto w = weight.to(ct).contiguous();
  auto go = grad_output.to(ct).contiguous();
  auto gx = at::empty(x.sizes(), x.options());
  if (g.N > 0 && ct == at::kFloat && cpu_avx512::enabled()) {
    cpu_avx512::grad_input(go.data_ptr<float>(), x.data_ptr<float>(), w.data_ptr<float>(), g, sign,
                           gx.data_ptr<float>());
  } else if (g.N > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "adder_conv2d_grad_input_cpu", [&] {
      if (sign) grad_input_impl<scalar_t, true>(go, x, w, g, gx);
      else grad_input_impl<scalar_t, false>(go, x, w, g, gx);
    });
  }
  return gx.to(input.scalar_type());
}

at::Tensor adder_conv2d_grad_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                        at::IntArrayRef dilation, int64_t groups, c10::string_view mode) {
  constexpr const char* op = "adder_conv2d_grad_weight";
  const Geometry g = make_geometry(op, input, weight, stride, padding, dilation, groups);
  check_grad_output(op, grad_output, input, g);
  const bool sign = parse_weight_grad_mode(op, mode);
  const auto ct = compute_type(input);
  auto w = weight.to(ct).contiguous();
  if (g.N == 0) return at::zeros_like(weight, at::MemoryFormat::Contiguous);
  auto x = input.to(ct).contiguous();
  auto go = grad_output.to(ct).contiguous();
  at::Tensor gw;
  if (sign) {
    gw = at::empty(w.sizes(), w.options());
    if (ct == at::kFloat && cpu_avx512::enabled()) {
      cpu_avx512::grad_weight_sign(go.data_ptr<float>(), x.data_ptr<float>(), w.data_ptr<float>(), g,
                                   gw.data_ptr<float>());
    } else {
      AT_DISPATCH_FLOATING_TYPES(ct, "adder_conv2d_grad_weight_cpu", [&] {
        grad_weight_sign_impl<scalar_t>(go, x, w, g, gw);
      });
    }
  } else {
    // Σ_{n,p} G·(X − W) = conv2d_weight_grad(X, G) − W · Σ_{n,p} G   (exact; zero padding
    // makes padded taps contribute G·(0 − W) on both sides).
    auto grads = at::convolution_backward(go, x, w, c10::nullopt, stride, padding, dilation, /*transposed=*/false,
                                          /*output_padding=*/{0, 0}, groups, {false, true, false});
    gw = std::get<1>(grads).contiguous();
    gw.sub_(w * go.sum({0, 2, 3}).view({-1, 1, 1, 1}));
  }
  return gw.to(weight.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(addersr, CPU, m) {
  m.impl("adder_conv2d", &adder_conv2d_cpu);
  m.impl("adder_conv2d_grad_input", &adder_conv2d_grad_input_cpu);
  m.impl("adder_conv2d_grad_weight", &adder_conv2d_grad_weight_cpu);
}

}  // namespace addersr

// AVX-512 kernels of the float32 adder convolution, chosen at run time (enabled()).
//
// The build targets AVX2 (setup.py), so every function that uses 512-bit intrinsics carries
// a target attribute and runs only after enabled() has checked the CPU. Same organisation
// as the AVX2 kernels of adder_conv2d_cpu.cpp (packed chunks of output pixels, register
// tiles, cpu_pack's im2col and col2im), with three changes that AVX-512 makes possible:
//
//   * forward: Σ|x − w| = Σx + Σw − 2·Σmin(x, w). The register tile accumulates Σmin(x, w),
//     one vminps and one vaddps per 16 products where |x − w| needs vsubps, vandps and
//     vaddps: on cores where 512-bit arithmetic issues on two ports that is the bound of the
//     loop. Σx over a patch is summed once per pixel from the packed columns (shared by
//     every output channel), Σw once per filter, in double. docs/benchmarks.md measures the
//     speed and the rounding error of this form against the direct one.
//   * input gradient: hardtanh(d) = vrangeps(d, 1) (the operand of smaller magnitude, with
//     d's sign) and sign(d) = vfixupimmps(d) (a per-class table: ±0 → 0, negative → −1,
//     positive → +1, NaN → 0 as in the reference), one instruction each instead of two to five.
//   * the sign weight gradient vectorises over output channels, so its accumulators need no
//     horizontal reduction (the AVX2 kernel reduces one vector per weight per chunk).
//
//   * with stride 1 (forward: along W) and image rows that fill most of a 48-pixel tile (EDSR,
//     VDSR), the forward reads its taps from a zero-padded copy of the image and the input
//     gradient reads G from a zero-bordered copy of it, instead of packed columns (im2col) and
//     a column gradient plus col2im: the packing cost as much as the arithmetic.
//
// 32 vector registers allow larger tiles than AVX2's 16: forward 8 channels × 48 pixels.
#include "cpu/adder_conv2d_cpu_avx512.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/adder_conv2d_cpu_pack.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace addersr {
namespace cpu_avx512 {

#if defined(__AVX2__)
namespace {

#define ADDERSR_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))

constexpr int64_t V = 16;  // floats per vector
// Forward tile: FMR output channels × FNR vectors of pixels = 24 accumulators, plus FNR input
// vectors and a broadcast weight: 28 of the 32 registers.
constexpr int FMR = 8, FNR = 3;
// Input-gradient tile: GKR taps × GNR vectors of pixels (8 accumulators, 8 input vectors held
// across the channel loop, 2 gradient vectors, the weight and the constant 1).
constexpr int GKR = 4, GNR = 2;
// Sign weight gradient: WKR taps × up to WMV vectors of output channels.
constexpr int WKR = 4, WMV = 4;
// Pixels per work item ("chunk"): a multiple of both tiles' widths (48 and 32). The packed
// columns (K × CP floats, 442 KiB at K = 576) stay in L2 while one forward weight panel
// (K × FMR floats) stays in L1.
constexpr int64_t CP = 192;

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// Lanes [0, n) of a vector, n clamped to [0, 16].
ADDERSR_AVX512 inline __mmask16 first_lanes(int64_t n) {
  return n >= V ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// min(a, b) as vminps. The zero-masked form with every lane selected compiles to the plain
// instruction; the unmasked intrinsic of GCC 12 warns about its undefined pass-through operand.
ADDERSR_AVX512 inline __m512 min_ps(__m512 a, __m512 b) { return _mm512_maskz_min_ps(__mmask16(0xFFFF), a, b); }

// Work items [0, items) handed out one at a time from a shared counter (as in the u8 kernel):
// a thread descheduled on a busy machine then delays the call by one item, not by its share.
// `fn(item, scratch_index)` runs on every item; scratch_index < at::get_num_threads().
template <typename Fn>
void for_each_item(int64_t items, const Fn& fn) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(at::get_num_threads(), items), 1, [&](int64_t, int64_t) {
    const int64_t me = at::get_thread_num();
    for (int64_t it; (it = next.fetch_add(1, std::memory_order_relaxed)) < items;) fn(it, me);
  });
}

// ---------------------------------------------------------------------------
// Forward

// The forward reads tap k of a pixel panel at xp + off[k]: off[k] = k·CP in packed columns
// (im2col), or the tap's offset in a zero-padded copy of the image (the direct path, where the
// FNR·16 pixels of a panel are consecutive pixels of one output row).

// sx[c] = Σ_k x[off[k] + c] for the FNR·16 pixels c of a panel: the Σx term of every channel.
ADDERSR_AVX512 void panel_sums(const float* xp, const int64_t* off, int64_t K, float* sx) {
  __m512 s[FNR];
#pragma GCC unroll 4
  for (int v = 0; v < FNR; ++v) s[v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k)
#pragma GCC unroll 4
    for (int v = 0; v < FNR; ++v) s[v] = _mm512_add_ps(s[v], _mm512_loadu_ps(xp + off[k] + v * V));
#pragma GCC unroll 4
  for (int v = 0; v < FNR; ++v) _mm512_storeu_ps(sx + v * V, s[v]);
}

// out[r][c] = base[r] − sx[c] + 2·Σ_k min(x[k][c], w[k][r]) for r < rows, c < cols, where
// base[r] = bias[r] − Σ_k w[k][r]: that is bias − Σ_k |x − w|. x[k] is at xp + off[k]; w is
// one FMR-row weight panel (w[k][r] at wp[k·FMR + r]).
ADDERSR_AVX512 void forward_tile(const float* __restrict wp, const float* __restrict xp, const int64_t* off,
                                 int64_t K, const float* base, const float* sx, float* out, int64_t out_stride,
                                 int64_t rows, int64_t cols) {
  __m512 acc[FMR][FNR];
#pragma GCC unroll 8
  for (int r = 0; r < FMR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < FNR; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 xv[FNR];
    const float* xk = xp + off[k];
#pragma GCC unroll 4
    for (int v = 0; v < FNR; ++v) xv[v] = _mm512_loadu_ps(xk + v * V);
    const float* wk = wp + k * FMR;
#pragma GCC unroll 8
    for (int r = 0; r < FMR; ++r) {
      const __m512 wv = _mm512_set1_ps(wk[r]);
#pragma GCC unroll 4
      for (int v = 0; v < FNR; ++v) acc[r][v] = _mm512_add_ps(acc[r][v], min_ps(xv[v], wv));
    }
  }
  __m512 nsx[FNR];  // base − Σx, per pixel
  __mmask16 mask[FNR];
#pragma GCC unroll 4
  for (int v = 0; v < FNR; ++v) {
    nsx[v] = _mm512_loadu_ps(sx + v * V);
    mask[v] = first_lanes(cols - v * V);
  }
  // Constant trip count, then `if`: a loop to `rows` would index acc[] at run time and keep
  // the accumulators in memory throughout the k loop.
#pragma GCC unroll 8
  for (int r = 0; r < FMR; ++r) {
    if (r >= rows) break;
    const __m512 b = _mm512_set1_ps(base[r]);
#pragma GCC unroll 4
    for (int v = 0; v < FNR; ++v) {
      const __m512 y = _mm512_fmadd_ps(acc[r][v], _mm512_set1_ps(2.0f), _mm512_sub_ps(b, nsx[v]));
      _mm512_mask_storeu_ps(out + r * out_stride + v * V, mask[v], y);
    }
  }
}

// One group's weights (cg × K, row-major) as FMR-row panels out[panel][k][r] (rows past cg
// zero), and base[co] = bias[co] − Σ_k w[co][k], the sum in double.
void pack_forward_weights(const float* w, const float* bias, int64_t cg, int64_t K, float* out, float* base) {
  for (int64_t co = 0; co < cg; ++co) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      out[((co / FMR) * K + k) * FMR + co % FMR] = w[co * K + k];
      s += w[co * K + k];
    }
    base[co] = float((bias ? double(bias[co]) : 0.0) - s);
  }
}

// ---------------------------------------------------------------------------
// Input gradient

// sign(d) as vfixupimmps(d, d, kSignTable): one 4-bit token per input class (class 0 lowest):
// QNaN and SNaN → +0 (8), ±0 → +0 (8), +1 → +1 (10), −inf → −1 (9), +inf → +1 (10),
// negative → −1 (9), positive → +1 (10). A NaN gives 0, as in the reference and the AVX2
// kernels (which build the sign from two comparisons).
constexpr int32_t kSignTable = int32_t(0xA9A9A888u);

ADDERSR_AVX512 inline __m512 sign_of(__m512 d, __m512i sign_table) {
  return _mm512_fixupimm_ps(d, d, sign_table, 0);
}

// The input gradient's φ(d), d = w − x: the exact sign, or AdderNet's HardTanh clamp(d, −1, 1)
// (vrangeps imm 0b0010: the operand of smaller magnitude, with the sign of d). One instruction.
template <bool kSign>
ADDERSR_AVX512 inline __m512 input_grad_phi(__m512 d, __m512 one, __m512i sign_table) {
  return kSign ? sign_of(d, sign_table) : _mm512_range_ps(d, one, 0x2);
}

// dcol[r][c] = Σ_co g[co][c] · φ(w[co][r] − x[r][c]) for r < taps, c < cols, φ = clamp(·, −1, 1)
// or sign. x and g rows are CP apart; wt is one GKR-tap weight panel (wt[co][r]).
template <bool kSign>
ADDERSR_AVX512 void grad_input_tile(const float* __restrict wt, const float* __restrict xp,
                                    const float* __restrict gp, int64_t cout_g, float* dcol, int64_t dcol_stride,
                                    int64_t taps, int64_t cols) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512i sign_table = _mm512_set1_epi32(kSignTable);
  __m512 xv[GKR][GNR], acc[GKR][GNR];
#pragma GCC unroll 4
  for (int r = 0; r < GKR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < GNR; ++v) {
      xv[r][v] = _mm512_loadu_ps(xp + r * CP + v * V);
      acc[r][v] = _mm512_setzero_ps();
    }
  for (int64_t co = 0; co < cout_g; ++co) {
    __m512 gv[GNR];
#pragma GCC unroll 4
    for (int v = 0; v < GNR; ++v) gv[v] = _mm512_loadu_ps(gp + co * CP + v * V);
#pragma GCC unroll 4
    for (int r = 0; r < GKR; ++r) {
      const __m512 wv = _mm512_set1_ps(wt[co * GKR + r]);
#pragma GCC unroll 4
      for (int v = 0; v < GNR; ++v) {
        const __m512 phi = input_grad_phi<kSign>(_mm512_sub_ps(wv, xv[r][v]), one, sign_table);
        acc[r][v] = _mm512_fmadd_ps(phi, gv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < GKR; ++r) {  // constant trip count: see forward_tile
    if (r >= taps) break;
#pragma GCC unroll 4
    for (int v = 0; v < GNR; ++v) _mm512_mask_storeu_ps(dcol + r * dcol_stride + v * V, first_lanes(cols - v * V), acc[r][v]);
  }
}

// One group's weights as GKR-tap panels out[kpanel][co][r] = w[co][kpanel·GKR + r] (taps past K zero).
std::vector<float> pack_tap_panels(const float* w, int64_t cg, int64_t K) {
  const int64_t panels = (K + GKR - 1) / GKR;
  std::vector<float> out(panels * cg * GKR, 0.0f);
  for (int64_t co = 0; co < cg; ++co)
    for (int64_t k = 0; k < K; ++k) out[((k / GKR) * cg + co) * GKR + k % GKR] = w[co * K + k];
  return out;
}

// ---------------------------------------------------------------------------
// Sign weight gradient

// dwt[r][co] += Σ_{c < count} g[c][co] · sign(x[r][c] − w[r][co]) for r < WKR, co < MV·16.
// Transposed layouts (channels contiguous): wt and dwt rows are cgp apart, gt rows (one per
// pixel) cgp apart; x rows CP apart (packed columns).
template <int MV>
ADDERSR_AVX512 void grad_weight_sign_tile(const float* __restrict wt, const float* __restrict xp,
                                          const float* __restrict gt, int64_t cgp, int64_t count, float* dwt) {
  const __m512i sign_table = _mm512_set1_epi32(kSignTable);
  __m512 acc[WKR][MV];
#pragma GCC unroll 4
  for (int r = 0; r < WKR; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m) acc[r][m] = _mm512_setzero_ps();
  for (int64_t c = 0; c < count; ++c) {
    __m512 gv[MV];
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m) gv[m] = _mm512_loadu_ps(gt + c * cgp + m * V);
#pragma GCC unroll 4
    for (int r = 0; r < WKR; ++r) {
      const __m512 xb = _mm512_set1_ps(xp[r * CP + c]);
#pragma GCC unroll 4
      for (int m = 0; m < MV; ++m) {
        const __m512 d = _mm512_sub_ps(xb, _mm512_loadu_ps(wt + r * cgp + m * V));
        acc[r][m] = _mm512_fmadd_ps(sign_of(d, sign_table), gv[m], acc[r][m]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < WKR; ++r)
#pragma GCC unroll 4
    for (int m = 0; m < MV; ++m) {
      float* o = dwt + r * cgp + m * V;
      _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[r][m]));
    }
}

// The tile over output-channel vectors [m0, m0 + mv), mv in 1..WMV.
void grad_weight_sign_tiles(const float* wt, const float* xp, const float* gt, int64_t cgp, int64_t count,
                            float* dwt) {
  for (int64_t m0 = 0; m0 < cgp / V; m0 += WMV) {
    const int64_t o = m0 * V;
    switch (std::min<int64_t>(WMV, cgp / V - m0)) {
      case 4: grad_weight_sign_tile<4>(wt + o, xp, gt + o, cgp, count, dwt + o); break;
      case 3: grad_weight_sign_tile<3>(wt + o, xp, gt + o, cgp, count, dwt + o); break;
      case 2: grad_weight_sign_tile<2>(wt + o, xp, gt + o, cgp, count, dwt + o); break;
      default: grad_weight_sign_tile<1>(wt + o, xp, gt + o, cgp, count, dwt + o); break;
    }
  }
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return has;
}

}  // namespace

bool enabled() {
  const char* forced = std::getenv("ADDERSR_FLOAT_KERNEL");
  return cpu_has_avx512() && !(forced && std::strcmp(forced, "avx2") == 0);
}

namespace {

// Every group's weights as FMR-row panels, and base = bias − Σw per output channel.
struct ForwardWeights {
  int64_t group_w;           // floats of one group's panels
  std::vector<float> panels;
  std::vector<float> base;

  ForwardWeights(const float* wd, const float* bias, const Geometry& g)
      : group_w((g.cout_g() + FMR - 1) / FMR * g.K() * FMR), panels(g.groups * group_w, 0.0f), base(g.Cout) {
    const int64_t cg = g.cout_g(), K = g.K();
    for (int64_t gi = 0; gi < g.groups; ++gi)
      pack_forward_weights(wd + gi * cg * K, bias ? bias + gi * cg : nullptr, cg, K, panels.data() + gi * group_w,
                           base.data() + gi * cg);
  }
  const float* panel(int64_t gi, int64_t r0, int64_t K) const { return panels.data() + gi * group_w + r0 * K; }
};

// The direct path reads taps from a zero-padded copy of the image instead of packed columns,
// which saves the im2col (K values written per output pixel, as much memory traffic as the
// tile's own loads). It needs a panel's pixels to be consecutive in memory: stride 1 along W,
// and panels within one output row, so it is taken only where whole rows fill most lanes.
bool use_direct_forward(const Geometry& g) {
  const int64_t panel = FNR * V, lanes = (g.Wo + panel - 1) / panel * panel;
  return g.sw == 1 && 4 * g.Wo >= 3 * lanes;
}

// Channels [0, cin_g) of one image's group `x` (CHW) into `out` (cin_g × Hp × Wp, zero border).
void pad_image(const float* x, const Geometry& g, float* out) {
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw;
  for (int64_t c = 0; c < g.cin_g(); ++c) {
    float* o = out + c * Hp * Wp;
    std::fill(o, o + g.ph * Wp, 0.0f);
    for (int64_t h = 0; h < g.H; ++h) {
      float* row = o + (g.ph + h) * Wp;
      std::fill(row, row + g.pw, 0.0f);
      std::copy(x + (c * g.H + h) * g.W, x + (c * g.H + h + 1) * g.W, row + g.pw);
      std::fill(row + g.pw + g.W, row + Wp, 0.0f);
    }
    std::fill(o + (g.ph + g.H) * Wp, o + Hp * Wp, 0.0f);
  }
}

void forward_direct(const float* xd, const ForwardWeights& fw, const Geometry& g, float* yd) {
  const int64_t K = g.K(), L = g.L(), cg = g.cout_g(), panel = FNR * V;
  const int64_t Hp = g.H + 2 * g.ph, Wp = g.W + 2 * g.pw, panels_per_row = (g.Wo + panel - 1) / panel;
  // Tap k = (ci, i, j) of output pixel (oh, ow) is padded[ci][oh·sh + i·dh][ow + j·dw].
  std::vector<int64_t> off(K);
  for (int64_t ci = 0; ci < g.cin_g(); ++ci)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) off[(ci * g.kh + i) * g.kw + j] = (ci * Hp + i * g.dh) * Wp + j * g.dw;
  // Work items: blocks of output rows, about 8 per image, in (image, group, block) order. Static
  // ranges of items keep each thread on few images, so it pads each of them once.
  const int64_t rows_per_item = std::max<int64_t>(1, (g.Ho + 7) / 8), blocks = (g.Ho + rows_per_item - 1) / rows_per_item;
  const int64_t padded_size = g.cin_g() * Hp * Wp + panel;  // + a panel: the last one reads past Wo
  at::parallel_for(0, g.N * g.groups * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> padded(padded_size, 0.0f), sx(rows_per_item * panels_per_row * panel);
    int64_t padded_image = -1;
    for (int64_t it = begin; it < end; ++it) {
      const int64_t block = it % blocks, image = it / blocks, gi = image % g.groups, n = image / g.groups;
      if (image != padded_image) {
        pad_image(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, padded.data());
        padded_image = image;
      }
      const int64_t oh0 = block * rows_per_item, oh1 = std::min(g.Ho, oh0 + rows_per_item);
      // Σx of every panel first: one pass over the taps per panel, shared by all weight panels.
      for (int64_t oh = oh0; oh < oh1; ++oh)
        for (int64_t pc = 0; pc < panels_per_row; ++pc)
          panel_sums(padded.data() + oh * g.sh * Wp + pc * panel, off.data(), K,
                     sx.data() + ((oh - oh0) * panels_per_row + pc) * panel);
      for (int64_t r0 = 0; r0 < cg; r0 += FMR) {
        float* yrows = yd + (n * g.Cout + gi * cg + r0) * L;
        for (int64_t oh = oh0; oh < oh1; ++oh)
          for (int64_t pc = 0; pc < panels_per_row; ++pc) {
            const int64_t ow0 = pc * panel;
            forward_tile(fw.panel(gi, r0, K), padded.data() + oh * g.sh * Wp + ow0, off.data(), K,
                         fw.base.data() + gi * cg + r0, sx.data() + ((oh - oh0) * panels_per_row + pc) * panel,
                         yrows + oh * g.Wo + ow0, L, std::min<int64_t>(FMR, cg - r0), std::min(panel, g.Wo - ow0));
          }
      }
    }
  });
}

// Any geometry: chunks of CP output pixels packed as columns (cpu_pack::pack_columns).
void forward_packed(const float* xd, const ForwardWeights& fw, const Geometry& g, float* yd) {
  const int64_t K = g.K(), L = g.L(), cg = g.cout_g(), n_chunks = (L + CP - 1) / CP, panel = FNR * V;
  std::vector<int64_t> off(K);
  for (int64_t k = 0; k < K; ++k) off[k] = k * CP;
  const int64_t threads = at::get_num_threads();
  std::vector<std::vector<float>> cols(threads), sx(threads);
  for_each_item(g.N * g.groups * n_chunks, [&](int64_t it, int64_t me) {
    if (cols[me].empty()) {
      cols[me].resize(K * CP);
      sx[me].resize(CP);
    }
    const int64_t chunk = it % n_chunks, gi = (it / n_chunks) % g.groups, n = it / (n_chunks * g.groups);
    const int64_t p0 = chunk * CP, count = std::min(CP, L - p0);
    cpu_pack::pack_columns(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, p0, count, K, CP, cols[me].data());
    for (int64_t c0 = 0; c0 < count; c0 += panel) panel_sums(cols[me].data() + c0, off.data(), K, sx[me].data() + c0);
    // Weight panel outer: its K × FMR weights stay in L1 while the chunk's columns stream
    // past from L2 (the columns are the larger operand of a tile, read once per panel).
    for (int64_t r0 = 0; r0 < cg; r0 += FMR) {
      float* yrow = yd + (n * g.Cout + gi * cg + r0) * L + p0;
      for (int64_t c0 = 0; c0 < count; c0 += panel) {
        forward_tile(fw.panel(gi, r0, K), cols[me].data() + c0, off.data(), K, fw.base.data() + gi * cg + r0,
                     sx[me].data() + c0, yrow + c0, L, std::min<int64_t>(FMR, cg - r0), std::min(panel, count - c0));
      }
    }
  });
}

}  // namespace

void forward(const float* xd, const float* wd, const float* bias, const Geometry& g, float* yd) {
  const ForwardWeights fw(wd, bias, g);
  if (use_direct_forward(g)) forward_direct(xd, fw, g, yd);
  else forward_packed(xd, fw, g, yd);
}

namespace {

// Any geometry: column gradients of packed chunks, then col2im (cpu_pack::grad_input_schedule).
void grad_input_packed(const float* gd, const float* xd, const float* wd, const Geometry& g, bool sign, float* gxd) {
  const int64_t K = g.K(), L = g.L(), cg = g.cout_g(), k_rows = round_up(K, GKR);
  const int64_t n_chunks = (L + CP - 1) / CP;
  std::vector<std::vector<float>> wpack(g.groups);
  for (int64_t gi = 0; gi < g.groups; ++gi) wpack[gi] = pack_tap_panels(wd + gi * cg * K, cg, K);
  const auto columns = [&](int64_t n, int64_t begin, int64_t end, float* dcols) {
    std::vector<float> cols(k_rows * CP), gpan(cg * CP);
    for (int64_t it = begin; it < end; ++it) {
      const int64_t chunk = it % n_chunks, gi = it / n_chunks;
      const int64_t p0 = chunk * CP, count = std::min(CP, L - p0);
      cpu_pack::pack_columns(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, p0, count, k_rows, CP, cols.data());
      cpu_pack::pack_grad_rows(gd + (n * g.Cout + gi * cg) * L, cg, L, p0, count, CP, gpan.data());
      // Pixel panel outer: its cg × 32 gradient values stay in L1 across all taps.
      for (int64_t c0 = 0; c0 < count; c0 += GNR * V) {
        for (int64_t k0 = 0; k0 < K; k0 += GKR) {
          const float* wt = wpack[gi].data() + (k0 / GKR) * cg * GKR;
          float* drow = dcols + (gi * K + k0) * L + p0 + c0;
          const float* xp = cols.data() + k0 * CP + c0;
          const int64_t taps = std::min<int64_t>(GKR, K - k0), w = std::min(GNR * V, count - c0);
          if (sign) grad_input_tile<true>(wt, xp, gpan.data() + c0, cg, drow, L, taps, w);
          else grad_input_tile<false>(wt, xp, gpan.data() + c0, cg, drow, L, taps, w);
        }
      }
    }
  };
  cpu_pack::grad_input_schedule<float>(g, g.groups * n_chunks, columns, gxd);
}

// Direct input gradient (stride 1): every tap that reads input pixel q sees the same x = X[q], so
//   dX[ci][q] = Σ_{co, i, j} G[co][q + pad − (i, j)·dilation] · φ(W[co][ci][i][j] − X[ci][q])
// with G zero outside the output. A tile holds DC input channels × DNR vectors of one input
// row in registers, with their accumulators, and streams G rows (shared by the DC channels)
// from a zero-bordered copy of the image's gradient: no column gradient, no col2im.
constexpr int DC = 4, DNR = 3;

template <bool kSign>
ADDERSR_AVX512 void grad_input_direct_tile(const float* __restrict wq, const float* __restrict gp,
                                           const int64_t* goff, int64_t taps, int64_t cout_g, int64_t g_plane,
                                           const float* x, int64_t x_plane, int64_t rows, int64_t cols, float* gx) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512i sign_table = _mm512_set1_epi32(kSignTable);
  __m512 xv[DC][DNR], acc[DC][DNR];
  __mmask16 mask[DNR];
#pragma GCC unroll 4
  for (int v = 0; v < DNR; ++v) mask[v] = first_lanes(cols - v * V);
#pragma GCC unroll 4
  for (int c = 0; c < DC; ++c)
#pragma GCC unroll 4
    for (int v = 0; v < DNR; ++v) {  // lanes past the row, or channels past `rows`: zero, never stored
      xv[c][v] = c < rows ? _mm512_maskz_loadu_ps(mask[v], x + c * x_plane + v * V) : _mm512_setzero_ps();
      acc[c][v] = _mm512_setzero_ps();
    }
  for (int64_t co = 0; co < cout_g; ++co) {
    const float* gco = gp + co * g_plane;
    const float* wco = wq + co * taps * DC;
    for (int64_t t = 0; t < taps; ++t) {
      __m512 gv[DNR];
#pragma GCC unroll 4
      for (int v = 0; v < DNR; ++v) gv[v] = _mm512_loadu_ps(gco + goff[t] + v * V);
#pragma GCC unroll 4
      for (int c = 0; c < DC; ++c) {
        const __m512 wv = _mm512_set1_ps(wco[t * DC + c]);
#pragma GCC unroll 4
        for (int v = 0; v < DNR; ++v) {
          const __m512 phi = input_grad_phi<kSign>(_mm512_sub_ps(wv, xv[c][v]), one, sign_table);
          acc[c][v] = _mm512_fmadd_ps(phi, gv[v], acc[c][v]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < DC; ++c) {  // constant trip count: see forward_tile
    if (c >= rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < DNR; ++v) _mm512_mask_storeu_ps(gx + c * x_plane + v * V, mask[v], acc[c][v]);
  }
}

bool use_direct_grad_input(const Geometry& g) {
  const int64_t panel = DNR * V, lanes = (g.W + panel - 1) / panel * panel;
  return g.sh == 1 && g.sw == 1 && 4 * g.W >= 3 * lanes;
}

void grad_input_direct(const float* gd, const float* xd, const float* wd, const Geometry& g, bool sign, float* gxd) {
  const int64_t cg = g.cout_g(), cin = g.cin_g(), taps = g.kh * g.kw, panel = DNR * V;
  // G row oh + top, column ow + left of the bordered copy holds G[oh][ow]; input pixel (ih, iw)
  // reads tap (i, j) at row ih + ph − i·dh + top, column iw + pw − j·dw + left, both ≥ 0.
  const int64_t top = std::max<int64_t>(0, (g.kh - 1) * g.dh - g.ph), left = std::max<int64_t>(0, (g.kw - 1) * g.dw - g.pw);
  const int64_t Hg = top + std::max(g.Ho, g.H + g.ph), Wg = left + std::max(g.Wo, g.W + g.pw);
  const int64_t g_plane = Hg * Wg, panels_per_row = (g.W + panel - 1) / panel;
  std::vector<int64_t> goff(taps);  // tap (i, j) relative to G row ih + top, column iw + left
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j) goff[i * g.kw + j] = (g.ph - i * g.dh) * Wg + (g.pw - j * g.dw);
  // Weights per (group, block of DC input channels): wq[co][tap][c], channels past cin zero.
  const int64_t cblocks = (cin + DC - 1) / DC, block_w = cg * taps * DC;
  std::vector<float> wq(g.groups * cblocks * block_w, 0.0f);
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t co = 0; co < cg; ++co)
      for (int64_t ci = 0; ci < cin; ++ci)
        for (int64_t t = 0; t < taps; ++t)
          wq[(gi * cblocks + ci / DC) * block_w + (co * taps + t) * DC + ci % DC] = wd[((gi * cg + co) * cin + ci) * taps + t];
  // Work items (image, group, channel block, input row), static ranges: a thread copies the
  // gradient of each image it meets once.
  const int64_t per_image = cblocks * g.H;
  at::parallel_for(0, g.N * g.groups * per_image, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> gpad(cg * g_plane + panel, 0.0f);  // + a panel: the last one reads past W
    int64_t padded_image = -1;
    for (int64_t it = begin; it < end; ++it) {
      const int64_t image = it / per_image, gi = image % g.groups, n = image / g.groups;
      const int64_t cb = (it % per_image) / g.H, ih = it % g.H;
      if (image != padded_image) {
        const float* src = gd + (n * g.Cout + gi * cg) * g.L();
        for (int64_t co = 0; co < cg; ++co)
          for (int64_t oh = 0; oh < g.Ho; ++oh)
            std::copy(src + (co * g.Ho + oh) * g.Wo, src + (co * g.Ho + oh + 1) * g.Wo,
                      gpad.data() + co * g_plane + (oh + top) * Wg + left);
        padded_image = image;
      }
      const int64_t c0 = cb * DC, rows = std::min<int64_t>(DC, cin - c0);
      const int64_t plane = g.H * g.W, at = (n * g.Cin + gi * cin + c0) * plane + ih * g.W;
      for (int64_t pc = 0; pc < panels_per_row; ++pc) {
        const int64_t iw0 = pc * panel, cols = std::min(panel, g.W - iw0);
        const float* gp = gpad.data() + (ih + top) * Wg + left + iw0;
        const float* wblock = wq.data() + (gi * cblocks + cb) * block_w;
        if (sign) grad_input_direct_tile<true>(wblock, gp, goff.data(), taps, cg, g_plane, xd + at + iw0, plane, rows, cols, gxd + at + iw0);
        else grad_input_direct_tile<false>(wblock, gp, goff.data(), taps, cg, g_plane, xd + at + iw0, plane, rows, cols, gxd + at + iw0);
      }
    }
  });
}

}  // namespace

void grad_input(const float* gd, const float* xd, const float* wd, const Geometry& g, bool sign, float* gxd) {
  if (use_direct_grad_input(g)) grad_input_direct(gd, xd, wd, g, sign, gxd);
  else grad_input_packed(gd, xd, wd, g, sign, gxd);
}

void grad_weight_sign(const float* gd, const float* xd, const float* wd, const Geometry& g, float* gw) {
  const int64_t K = g.K(), L = g.L(), cg = g.cout_g(), n_chunks = (L + CP - 1) / CP;
  const int64_t cgp = round_up(cg, V), k_rows = round_up(K, WKR), group_t = k_rows * cgp;
  // Weights transposed to wt[gi][k][co], channels padded to whole vectors with zeros.
  std::vector<float> wt(g.groups * group_t, 0.0f);
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t co = 0; co < cg; ++co)
      for (int64_t k = 0; k < K; ++k) wt[gi * group_t + k * cgp + co] = wd[(gi * cg + co) * K + k];
  // One partial (transposed) gradient per thread, summed at the end.
  const int64_t threads = at::get_num_threads();
  std::vector<float> partial(threads * g.groups * group_t, 0.0f);
  std::vector<std::vector<float>> cols(threads), gt(threads);
  for_each_item(g.N * g.groups * n_chunks, [&](int64_t it, int64_t me) {
    if (cols[me].empty()) {
      cols[me].resize(k_rows * CP);
      gt[me].assign(CP * cgp, 0.0f);  // channels past cg stay zero
    }
    const int64_t chunk = it % n_chunks, gi = (it / n_chunks) % g.groups, n = it / (n_chunks * g.groups);
    const int64_t p0 = chunk * CP, count = std::min(CP, L - p0);
    cpu_pack::pack_columns(xd + (n * g.Cin + gi * g.cin_g()) * g.H * g.W, g, p0, count, k_rows, CP, cols[me].data());
    const float* gsrc = gd + (n * g.Cout + gi * cg) * L + p0;
    for (int64_t co = 0; co < cg; ++co)
      for (int64_t c = 0; c < count; ++c) gt[me][c * cgp + co] = gsrc[co * L + c];
    float* dwt = partial.data() + (me * g.groups + gi) * group_t;
    for (int64_t k0 = 0; k0 < k_rows; k0 += WKR)
      grad_weight_sign_tiles(wt.data() + gi * group_t + k0 * cgp, cols[me].data() + k0 * CP, gt[me].data(), cgp,
                             count, dwt + k0 * cgp);
  });
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t co = 0; co < cg; ++co)
      for (int64_t k = 0; k < K; ++k) {
        float s = 0;
        for (int64_t t = 0; t < threads; ++t) s += partial[(t * g.groups + gi) * group_t + k * cgp + co];
        gw[(gi * cg + co) * K + k] = s;
      }
}

#else  // no AVX2 build (non-x86): the AVX-512 kernels do not exist

bool enabled() { return false; }
void forward(const float*, const float*, const float*, const Geometry&, float*) {
  TORCH_CHECK(false, "adder_conv2d: the AVX-512 kernels are not in this build");
}
void grad_input(const float*, const float*, const float*, const Geometry&, bool, float*) {
  TORCH_CHECK(false, "adder_conv2d: the AVX-512 kernels are not in this build");
}
void grad_weight_sign(const float*, const float*, const float*, const Geometry&, float*) {
  TORCH_CHECK(false, "adder_conv2d: the AVX-512 kernels are not in this build");
}

#endif

}  // namespace cpu_avx512
}  // namespace addersr

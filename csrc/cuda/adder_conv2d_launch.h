// Launch plans of the CUDA adder-convolution kernels: the 32-bit kernel shape,
// grid sizes and the split-K choice of grad_weight.
//
// Plain host C++ (no ATen, no CUDA runtime), shared by adder_conv2d_cuda.cu and
// the CPU emulation of the device code (tests/cuda_emulation/), so the emulation
// launches the kernels exactly as the extension does.
#pragma once

#include <algorithm>
#include <cstdint>

#include "adder_conv2d_kernels.cuh"

namespace addersr {
namespace cuda_launch {

using cuda_kernels::ConvShape;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The kernels' 32-bit shape of a checked geometry: addersr::Geometry
// (adder_conv2d_geometry.h), or any type with its fields, after the caller has
// checked that every product fits in int32.
template <typename Geometry>
ConvShape kernel_shape(const Geometry& g) {
  ConvShape s;
  s.N = (int)g.N;
  s.C = (int)g.Cin;
  s.H = (int)g.H;
  s.W = (int)g.W;
  s.Cout = (int)g.Cout;
  s.Ho = (int)g.Ho;
  s.Wo = (int)g.Wo;
  s.kh = (int)g.kh;
  s.kw = (int)g.kw;
  s.sh = (int)g.sh;
  s.sw = (int)g.sw;
  s.ph = (int)g.ph;
  s.pw = (int)g.pw;
  s.dh = (int)g.dh;
  s.dw = (int)g.dw;
  s.groups = (int)g.groups;
  s.Cg = (int)(g.Cin / g.groups);
  s.Mg = (int)(g.Cout / g.groups);
  s.KHW = (int)(g.kh * g.kw);
  s.K = s.Cg * s.KHW;
  s.HW = (int)(g.H * g.W);
  s.HoWo = (int)(g.Ho * g.Wo);
  s.npix = (int)(g.N * g.Ho * g.Wo);
  s.nin = (int)(g.N * g.H * g.W);
  return s;
}

// A grid (x, y, z) in blocks; y and z must stay <= 65535 (the caller checks y).
struct Grid {
  int64_t x, y, z;
};

// Forward: x over output pixels, y over output channels of a group, z over groups.
template <typename Cfg>
Grid forward_grid(const ConvShape& s) {
  return {ceil_div(s.npix, Cfg::BN), ceil_div(s.Mg, Cfg::BM), s.groups};
}

// grad_input: x over input pixels, y over input channels of a group, z over groups.
template <typename Cfg>
Grid grad_input_grid(const ConvShape& s) {
  return {ceil_div(s.nin, Cfg::BN), ceil_div(s.Cg, Cfg::BM), s.groups};
}

// grad_weight: number of pixel splits. Enough blocks to fill the GPU a few
// times over, at least kMinPixelsPerSplit pixels each, partial buffer bounded.
constexpr int64_t kMinPixelsPerSplit = 512;
constexpr int64_t kMaxSplits = 1024;
constexpr int64_t kMaxPartialElements = int64_t(1) << 26;  // 256 MiB of fp32
constexpr int kReduceThreads = 256;

struct GradWeightPlan {
  int64_t tap_tiles;         // tiles along K (taps)
  int64_t m_tiles;           // tiles along the output channels of a group
  int64_t splits;            // pixel ranges reduced by separate blocks (>= 1, none empty)
  int64_t pixels_per_split;  // a multiple of the stage depth BK
  Grid grid;                 // x = split·tap_tiles + tap tile, y = m tile, z = group
  int64_t reduce_blocks;     // blocks of kReduceThreads for the reduction over splits
};

// Needs s.npix > 0 and Cout·K > 0 (the caller returns zeros otherwise).
template <typename Cfg>
GradWeightPlan grad_weight_plan(const ConvShape& s, int64_t sms) {
  GradWeightPlan p;
  const int64_t wnumel = (int64_t)s.Cout * s.K;
  p.tap_tiles = ceil_div(s.K, Cfg::BN);
  p.m_tiles = ceil_div(s.Mg, Cfg::BM);
  const int64_t out_tiles = p.tap_tiles * p.m_tiles * s.groups;
  int64_t splits = std::min(ceil_div(4 * sms, out_tiles), ceil_div(s.npix, kMinPixelsPerSplit));
  splits = std::min({splits, kMaxSplits, std::max<int64_t>(1, kMaxPartialElements / wnumel)});
  splits = std::max<int64_t>(splits, 1);
  // Whole stages per split, and no empty split.
  p.pixels_per_split = ceil_div(ceil_div(s.npix, splits), Cfg::BK) * Cfg::BK;
  p.splits = ceil_div(s.npix, p.pixels_per_split);
  p.grid = {p.splits * p.tap_tiles, p.m_tiles, s.groups};
  p.reduce_blocks = std::min<int64_t>(ceil_div(wnumel, kReduceThreads), 8 * sms);
  return p;
}

}  // namespace cuda_launch
}  // namespace addersr

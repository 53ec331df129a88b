// CUDA kernels of the addersr::adder_conv2d operators (schemas: csrc/adder_conv2d.cpp).
//
// Host side only: argument sanity checks, layout preparation, launches. The
// device code and the tiling it uses are described in adder_conv2d_kernels.cuh.
// User-facing checks with friendly messages live in addersr_plugin/ops; the
// TORCH_CHECKs here guard direct torch.ops calls and must never be reachable
// with valid Python-side arguments.
//
// Inputs of any memory layout are made contiguous NCHW here; outputs are
// always contiguous NCHW in the input's dtype. fp16/bf16 accumulate in fp32,
// fp64 in fp64. Weights are re-laid out (tiny tensors) in the accumulation
// type so that every tile load is coalesced.
#include <ATen/ATen.h>
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "adder_conv2d_geometry.h"  // csrc/, on the include path
#include "adder_conv2d_kernels.cuh"

namespace addersr {
namespace {

using cuda_kernels::ConvShape;
using cuda_kernels::Mode;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_fits_int(const char* op, const char* what, int64_t v) {
  TORCH_CHECK(v <= INT_MAX, op, ": ", what, " = ", v,
              " exceeds the 32-bit index range of the CUDA kernel; split the batch or the image");
}

// Geometry checks of the three operators: the common ones of adder_conv2d_geometry.h
// (as on the CPU) plus the limits of the CUDA kernels' 32-bit indexing and grid.
Geometry cuda_geometry(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.is_cuda(), op, ": the CUDA kernel got an input on ", input.device());
  const Geometry g = make_geometry(op, input, weight, stride, padding, dilation, groups);
  TORCH_CHECK(groups <= 65535, op, ": at most 65535 groups are supported by the CUDA kernel, got ", groups);
  check_fits_int(op, "C*H*W", g.Cin * g.H * g.W);
  check_fits_int(op, "Cout*Ho*Wo", g.Cout * g.L());
  check_fits_int(op, "N*Ho*Wo", g.N * g.L());
  check_fits_int(op, "N*H*W", g.N * g.H * g.W);
  check_fits_int(op, "Cout*Cin/groups*kh*kw", g.Cout * g.K());
  // Spatial indices (oh·stride - pad + i·dilation and the like) are int32 in the kernels.
  check_fits_int(op, "the spatial index range",
                 std::max(g.H + g.sh * g.Ho + g.dh * g.kh + g.ph, g.W + g.sw * g.Wo + g.dw * g.kw + g.pw));
  return g;
}

// The kernels' 32-bit shape (cuda_geometry checked that every product fits).
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
  s.Cg = (int)g.cin_g();
  s.Mg = (int)g.cout_g();
  s.KHW = (int)(g.kh * g.kw);
  s.K = (int)g.K();
  s.HW = (int)(g.H * g.W);
  s.HoWo = (int)g.L();
  s.npix = (int)(g.N * g.L());
  s.nin = (int)(g.N * g.H * g.W);
  return s;
}

// ---------------------------------------------------------------- forward

at::Tensor adder_conv2d_cuda(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                             c10::string_view /*weight_grad*/, c10::string_view /*input_grad*/) {
  constexpr const char* op = "adder_conv2d";
  const Geometry g = cuda_geometry(op, input, weight, stride, padding, dilation, groups);
  const ConvShape s = kernel_shape(g);
  const bool has_bias = bias.has_value() && bias->defined();
  check_bias(op, bias, input, g);
  c10::cuda::CUDAGuard guard(input.device());
  at::Tensor out = at::empty({s.N, s.Cout, s.Ho, s.Wo}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;

  const at::Tensor x = input.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "adder_conv2d_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    using Cfg = typename cuda_kernels::GemmConfig<acc_t>::type;
    const auto acc_opts = input.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    // [Cout][K] -> [g][K][Mg]: consecutive threads load consecutive output channels.
    const at::Tensor wt =
        weight.to(acc_opts).reshape({s.groups, s.Mg, s.K}).transpose(1, 2).contiguous();
    at::Tensor b;
    if (has_bias) b = bias->to(acc_opts).contiguous();
    const dim3 grid((unsigned)ceil_div(s.npix, Cfg::BN), (unsigned)ceil_div(s.Mg, Cfg::BM), (unsigned)s.groups);
    TORCH_CHECK(grid.y <= 65535, op, ": too many output channels per group for the CUDA kernel");
    cuda_kernels::adder_forward_kernel<scalar_t, acc_t, Cfg>
        <<<grid, Cfg::NT, 0, at::cuda::getCurrentCUDAStream()>>>(
            x.data_ptr<scalar_t>(), wt.data_ptr<acc_t>(), has_bias ? b.data_ptr<acc_t>() : nullptr,
            out.data_ptr<scalar_t>(), s);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// ---------------------------------------------------------------- grad_input

at::Tensor adder_conv2d_grad_input_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                        at::IntArrayRef dilation, int64_t groups, c10::string_view mode) {
  constexpr const char* op = "adder_conv2d_grad_input";
  const Geometry g = cuda_geometry(op, input, weight, stride, padding, dilation, groups);
  const ConvShape s = kernel_shape(g);
  check_grad_output(op, grad_output, input, g);
  const bool sign = parse_input_grad_mode(op, mode);
  c10::cuda::CUDAGuard guard(input.device());
  at::Tensor dx = at::empty({s.N, s.C, s.H, s.W}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (dx.numel() == 0) return dx;

  const at::Tensor x = input.contiguous();
  const at::Tensor go = grad_output.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "adder_conv2d_grad_input_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    using Cfg = typename cuda_kernels::GemmConfig<acc_t>::type;
    const auto acc_opts = input.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    // [Cout][Cg][kh*kw] -> [g][kh*kw][Mg][Cg]: reduction index (tap, co), consecutive threads on ci.
    const at::Tensor wp =
        weight.to(acc_opts).reshape({s.groups, s.Mg, s.Cg, s.KHW}).permute({0, 3, 1, 2}).contiguous();
    const dim3 grid((unsigned)ceil_div(s.nin, Cfg::BN), (unsigned)ceil_div(s.Cg, Cfg::BM), (unsigned)s.groups);
    TORCH_CHECK(grid.y <= 65535, op, ": too many input channels per group for the CUDA kernel");
    const auto stream = at::cuda::getCurrentCUDAStream();
    if (sign) {
      cuda_kernels::adder_grad_input_kernel<scalar_t, acc_t, Cfg, Mode::GradInputSign><<<grid, Cfg::NT, 0, stream>>>(
          go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), wp.data_ptr<acc_t>(), dx.data_ptr<scalar_t>(), s);
    } else {
      cuda_kernels::adder_grad_input_kernel<scalar_t, acc_t, Cfg, Mode::GradInputHardtanh>
          <<<grid, Cfg::NT, 0, stream>>>(go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), wp.data_ptr<acc_t>(),
                                         dx.data_ptr<scalar_t>(), s);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dx;
}

// ---------------------------------------------------------------- grad_weight

// Number of pixel splits for grad_weight: enough blocks to fill the GPU a few
// times over, at least kMinPixelsPerSplit pixels each, partial buffer bounded.
constexpr int64_t kMinPixelsPerSplit = 512;
constexpr int64_t kMaxSplits = 1024;
constexpr int64_t kMaxPartialElements = int64_t(1) << 26;  // 256 MiB of fp32

at::Tensor adder_conv2d_grad_weight_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                         at::IntArrayRef dilation, int64_t groups, c10::string_view mode) {
  constexpr const char* op = "adder_conv2d_grad_weight";
  const Geometry g = cuda_geometry(op, input, weight, stride, padding, dilation, groups);
  const ConvShape s = kernel_shape(g);
  check_grad_output(op, grad_output, input, g);
  const bool sign = parse_weight_grad_mode(op, mode);
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t wnumel = (int64_t)s.Cout * s.K;
  if (s.npix == 0 || wnumel == 0) {
    // An empty sum: the gradient is exactly zero.
    return at::zeros(weight.sizes(), weight.options().memory_format(at::MemoryFormat::Contiguous));
  }
  at::Tensor dw = at::empty(weight.sizes(), weight.options().memory_format(at::MemoryFormat::Contiguous));

  const at::Tensor x = input.contiguous();
  const at::Tensor go = grad_output.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "adder_conv2d_grad_weight_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    using Cfg = typename cuda_kernels::GradWeightConfig<acc_t>::type;
    const auto acc_opts = input.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    const at::Tensor w = weight.to(acc_opts).contiguous();  // [Cout][K]

    const int64_t tap_tiles = ceil_div(s.K, Cfg::BN);
    const int64_t m_tiles = ceil_div(s.Mg, Cfg::BM);
    const int64_t out_tiles = tap_tiles * m_tiles * s.groups;
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    int64_t splits = std::min(ceil_div(4 * sms, out_tiles), ceil_div(s.npix, kMinPixelsPerSplit));
    splits = std::min({splits, kMaxSplits, std::max<int64_t>(1, kMaxPartialElements / wnumel)});
    splits = std::max<int64_t>(splits, 1);
    // Whole stages per split, and no empty split.
    const int64_t pps = ceil_div(ceil_div(s.npix, splits), Cfg::BK) * Cfg::BK;
    splits = ceil_div(s.npix, pps);
    TORCH_CHECK(m_tiles <= 65535, op, ": too many output channels per group for the CUDA kernel");
    TORCH_CHECK(splits * tap_tiles <= INT_MAX, op, ": too many taps for the CUDA kernel");

    at::Tensor part = at::empty({splits, s.Cout, s.K}, acc_opts);
    const dim3 grid((unsigned)(splits * tap_tiles), (unsigned)m_tiles, (unsigned)s.groups);
    const auto stream = at::cuda::getCurrentCUDAStream();
    if (sign) {
      cuda_kernels::adder_grad_weight_kernel<scalar_t, acc_t, Cfg, Mode::GradWeightSign>
          <<<grid, Cfg::NT, 0, stream>>>(go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), w.data_ptr<acc_t>(),
                                         part.data_ptr<acc_t>(), s, (int)pps, (int)tap_tiles);
    } else {
      cuda_kernels::adder_grad_weight_kernel<scalar_t, acc_t, Cfg, Mode::GradWeightFull>
          <<<grid, Cfg::NT, 0, stream>>>(go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), w.data_ptr<acc_t>(),
                                         part.data_ptr<acc_t>(), s, (int)pps, (int)tap_tiles);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    constexpr int kReduceThreads = 256;
    const int64_t reduce_blocks = std::min<int64_t>(ceil_div(wnumel, kReduceThreads), 8 * sms);
    cuda_kernels::adder_grad_weight_reduce_kernel<scalar_t, acc_t>
        <<<(unsigned)reduce_blocks, kReduceThreads, 0, stream>>>(part.data_ptr<acc_t>(), dw.data_ptr<scalar_t>(),
                                                                 wnumel, (int)splits);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dw;
}

}  // namespace

TORCH_LIBRARY_IMPL(addersr, CUDA, m) {
  m.impl("adder_conv2d", &adder_conv2d_cuda);
  m.impl("adder_conv2d_grad_input", &adder_conv2d_grad_input_cuda);
  m.impl("adder_conv2d_grad_weight", &adder_conv2d_grad_weight_cuda);
}

}  // namespace addersr

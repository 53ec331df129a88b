// CUDA kernels of the addersr::adder_conv2d operators (schemas: csrc/adder_conv2d.cpp).
//
// Host side only: argument sanity checks, layout preparation, launches. The
// device code and the tiling it uses are described in adder_conv2d_kernels.cuh;
// grids and the split-K plan are in adder_conv2d_launch.h (plain C++, shared with
// the CPU emulation of the device code, tests/test_cuda_emulation.py).
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
#include <type_traits>

#include "adder_conv2d_geometry.h"  // csrc/, on the include path
#include "adder_conv2d_kernels.cuh"
#include "adder_conv2d_launch.h"

namespace addersr {
namespace {

using cuda_kernels::ConvShape;
using cuda_kernels::Mode;

void check_fits_int(const char* op, const char* what, int64_t v) {
  TORCH_CHECK(v <= INT_MAX, op, ": ", what, " = ", num(v),
              " exceeds the 32-bit index range of the CUDA kernel; split the batch or the image");
}

// ---------------------------------------------------------------- the common prologue

// The checked geometry of a call and the kernels' 32-bit shape of it.
struct KernelCall {
  Geometry g;
  ConvShape s;
};

// Geometry checks of the three operators: the common ones of adder_conv2d_geometry.h
// (as on the CPU) plus the limits of the CUDA kernels' 32-bit indexing and grid.
KernelCall kernel_call(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.is_cuda(), op, ": the CUDA kernel got an input on ", input.device());
  const Geometry g = make_geometry(op, input, weight, stride, padding, dilation, groups);
  TORCH_CHECK(groups <= 65535, op, ": at most 65535 groups are supported by the CUDA kernel, got ", num(groups));
  check_fits_int(op, "C*H*W", g.Cin * g.H * g.W);
  check_fits_int(op, "Cout*Ho*Wo", g.Cout * g.L());
  check_fits_int(op, "N*Ho*Wo", g.N * g.L());
  check_fits_int(op, "N*H*W", g.N * g.H * g.W);
  check_fits_int(op, "Cout*Cin/groups*kh*kw", g.Cout * g.K());
  // Spatial indices (oh·stride - pad + i·dilation and the like) are int32 in the kernels.
  check_fits_int(op, "the spatial index range",
                 std::max(g.H + g.sh * g.Ho + g.dh * g.kh + g.ph, g.W + g.sw * g.Wo + g.dw * g.kw + g.pw));
  return {g, cuda_launch::kernel_shape(g)};
}

// The element type of the tensors and the accumulation type of the kernels:
// fp16/bf16 accumulate in fp32, fp32 in fp32, fp64 in fp64.
template <typename Scalar, typename Acc>
struct Types {
  using scalar_t = Scalar;
  using acc_t = Acc;
};

// Runs body(Types<scalar_t, acc_t>{}, acc_options) for the input's dtype, with the
// input's device current (the stream and device properties the launches use).
// acc_options: the input's options in the accumulation type, for re-laid-out weights.
// (AT_DISPATCH needs a constant name: dtypes it rejects are named in its error.)
template <typename Body>
void dispatch(const at::Tensor& input, Body&& body) {
  c10::cuda::CUDAGuard guard(input.device());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "addersr::adder_conv2d (CUDA)", [&] {
    using acc_t = at::acc_type<scalar_t, /*is_cuda=*/true>;
    body(Types<scalar_t, acc_t>{}, input.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  });
}

// body(std::integral_constant<Mode, ...>) with `if_false` or `if_true`: one launch site for both modes.
template <Mode if_false, Mode if_true, typename Body>
void with_mode(bool flag, Body&& body) {
  if (flag) {
    body(std::integral_constant<Mode, if_true>{});
  } else {
    body(std::integral_constant<Mode, if_false>{});
  }
}

// kernel<<<grid, threads, 0, current stream>>>(args...), after checking the grid's limits.
template <typename... Params, typename... Args>
void launch(const char* op, void (*kernel)(Params...), const cuda_launch::Grid& grid, int threads, Args... args) {
  TORCH_CHECK(grid.x <= INT_MAX && grid.y <= 65535 && grid.z <= 65535, op, ": the CUDA grid (", num(grid.x), ", ",
              num(grid.y), ", ", num(grid.z), ") exceeds the device limits; too many channels per group or taps");
  kernel<<<dim3((unsigned)grid.x, (unsigned)grid.y, (unsigned)grid.z), threads, 0,
           at::cuda::getCurrentCUDAStream()>>>(args...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// ---------------------------------------------------------------- forward

at::Tensor adder_conv2d_cuda(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                             c10::string_view /*weight_grad*/, c10::string_view /*input_grad*/) {
  constexpr const char* op = "adder_conv2d";
  const KernelCall call = kernel_call(op, input, weight, stride, padding, dilation, groups);
  const ConvShape& s = call.s;
  check_bias(op, bias, input, call.g);
  const bool has_bias = bias.has_value() && bias->defined();
  at::Tensor out = at::empty({s.N, s.Cout, s.Ho, s.Wo}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;

  const at::Tensor x = input.contiguous();
  dispatch(input, [&](auto types, const at::TensorOptions& acc_opts) {
    using scalar_t = typename decltype(types)::scalar_t;
    using acc_t = typename decltype(types)::acc_t;
    using Cfg = typename cuda_kernels::GemmConfig<acc_t>::type;
    // [Cout][K] -> [g][K][Mg]: consecutive threads load consecutive output channels.
    const at::Tensor wt = weight.to(acc_opts).reshape({s.groups, s.Mg, s.K}).transpose(1, 2).contiguous();
    at::Tensor b;
    if (has_bias) b = bias->to(acc_opts).contiguous();
    launch(op, cuda_kernels::adder_forward_kernel<scalar_t, acc_t, Cfg>, cuda_launch::forward_grid<Cfg>(s), Cfg::NT,
           x.data_ptr<scalar_t>(), wt.data_ptr<acc_t>(), has_bias ? b.data_ptr<acc_t>() : nullptr,
           out.data_ptr<scalar_t>(), s);
  });
  return out;
}

// ---------------------------------------------------------------- grad_input

at::Tensor adder_conv2d_grad_input_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                        const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                        at::IntArrayRef dilation, int64_t groups, c10::string_view mode) {
  constexpr const char* op = "adder_conv2d_grad_input";
  const KernelCall call = kernel_call(op, input, weight, stride, padding, dilation, groups);
  const ConvShape& s = call.s;
  check_grad_output(op, grad_output, input, call.g);
  const bool sign = parse_input_grad_mode(op, mode);
  at::Tensor dx = at::empty({s.N, s.C, s.H, s.W}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (dx.numel() == 0) return dx;

  const at::Tensor x = input.contiguous();
  const at::Tensor go = grad_output.contiguous();
  dispatch(input, [&](auto types, const at::TensorOptions& acc_opts) {
    using scalar_t = typename decltype(types)::scalar_t;
    using acc_t = typename decltype(types)::acc_t;
    using Cfg = typename cuda_kernels::GemmConfig<acc_t>::type;
    // [Cout][Cg][kh*kw] -> [g][kh*kw][Mg][Cg]: reduction index (tap, co), consecutive threads on ci.
    const at::Tensor wp =
        weight.to(acc_opts).reshape({s.groups, s.Mg, s.Cg, s.KHW}).permute({0, 3, 1, 2}).contiguous();
    with_mode<Mode::GradInputHardtanh, Mode::GradInputSign>(sign, [&](auto m) {
      launch(op, cuda_kernels::adder_grad_input_kernel<scalar_t, acc_t, Cfg, decltype(m)::value>,
             cuda_launch::grad_input_grid<Cfg>(s), Cfg::NT, go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
             wp.data_ptr<acc_t>(), dx.data_ptr<scalar_t>(), s);
    });
  });
  return dx;
}

// ---------------------------------------------------------------- grad_weight

at::Tensor adder_conv2d_grad_weight_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                         const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                         at::IntArrayRef dilation, int64_t groups, c10::string_view mode) {
  constexpr const char* op = "adder_conv2d_grad_weight";
  const KernelCall call = kernel_call(op, input, weight, stride, padding, dilation, groups);
  const ConvShape& s = call.s;
  check_grad_output(op, grad_output, input, call.g);
  const bool sign = parse_weight_grad_mode(op, mode);
  const int64_t wnumel = (int64_t)s.Cout * s.K;
  if (s.npix == 0 || wnumel == 0) {
    // An empty sum: the gradient is exactly zero.
    return at::zeros(weight.sizes(), weight.options().memory_format(at::MemoryFormat::Contiguous));
  }
  at::Tensor dw = at::empty(weight.sizes(), weight.options().memory_format(at::MemoryFormat::Contiguous));

  const at::Tensor x = input.contiguous();
  const at::Tensor go = grad_output.contiguous();
  dispatch(input, [&](auto types, const at::TensorOptions& acc_opts) {
    using scalar_t = typename decltype(types)::scalar_t;
    using acc_t = typename decltype(types)::acc_t;
    using Cfg = typename cuda_kernels::GradWeightConfig<acc_t>::type;
    const at::Tensor w = weight.to(acc_opts).contiguous();  // [Cout][K]
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const cuda_launch::GradWeightPlan plan = cuda_launch::grad_weight_plan<Cfg>(s, sms);
    at::Tensor part = at::empty({plan.splits, s.Cout, s.K}, acc_opts);  // partial sums per split
    with_mode<Mode::GradWeightFull, Mode::GradWeightSign>(sign, [&](auto m) {
      launch(op, cuda_kernels::adder_grad_weight_kernel<scalar_t, acc_t, Cfg, decltype(m)::value>, plan.grid,
             Cfg::NT, go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), w.data_ptr<acc_t>(), part.data_ptr<acc_t>(),
             s, (int)plan.pixels_per_split, (int)plan.tap_tiles);
    });
    launch(op, cuda_kernels::adder_grad_weight_reduce_kernel<scalar_t, acc_t>, {plan.reduce_blocks, 1, 1},
           cuda_launch::kReduceThreads, part.data_ptr<acc_t>(), dw.data_ptr<scalar_t>(), wnumel, (int)plan.splits);
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

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
//
// adder_conv2d_amp (CUDA autocast, csrc/adder_conv2d_amp.h) runs the packed fp16 forward
// kernel and the backward kernels with float32 grad_output and the input rounded to the
// compute dtype on load; its weights are rounded on the host, in the re-layout.
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

#include "adder_conv2d_amp.h"       // csrc/, on the include path
#include "adder_conv2d_geometry.h"
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

// The limits of the CUDA kernels' 32-bit indexing and grid, on a geometry that passed the
// checks every backend shares (adder_conv2d_geometry.h, adder_conv2d_amp.h).
KernelCall checked_call(const char* op, const Geometry& g) {
  TORCH_CHECK(g.groups <= 65535, op, ": at most 65535 groups are supported by the CUDA kernel, got ", num(g.groups));
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

KernelCall kernel_call(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.is_cuda(), op, ": the CUDA kernel got an input on ", input.device());
  return checked_call(op, make_geometry(op, input, weight, stride, padding, dilation, groups));
}

KernelCall amp_kernel_call(const char* op, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                           at::ScalarType compute_dtype) {
  TORCH_CHECK(input.is_cuda(), op, ": the CUDA kernel got an input on ", input.device());
  return checked_call(op, amp_geometry(op, input, weight, stride, padding, dilation, groups, compute_dtype));
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
      launch(op, cuda_kernels::adder_grad_input_kernel<cuda_kernels::GradTypes<scalar_t, scalar_t>, acc_t, Cfg,
                                                       decltype(m)::value>,
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
      launch(op,
             cuda_kernels::adder_grad_weight_kernel<cuda_kernels::GradTypes<scalar_t, scalar_t>, acc_t, Cfg,
                                                    decltype(m)::value>,
             plan.grid,
             Cfg::NT, go.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), w.data_ptr<acc_t>(), part.data_ptr<acc_t>(),
             s, (int)plan.pixels_per_split, (int)plan.tap_tiles);
    });
    launch(op, cuda_kernels::adder_grad_weight_reduce_kernel<scalar_t, acc_t>, {plan.reduce_blocks, 1, 1},
           cuda_launch::kReduceThreads, part.data_ptr<acc_t>(), dw.data_ptr<scalar_t>(), wnumel, (int)plan.splits);
  });
  return dw;
}

// ---------------------------------------------------------------- adder_conv2d_amp

// The element types of an amp call: X, the input as stored (float or V); V, the compute
// dtype the operands are rounded to (at::Half or at::BFloat16).
template <typename X, typename V>
struct AmpTypes {
  using in_t = X;
  using value_t = V;
};

// Runs body(AmpTypes<X, V>{}) for the call's input dtype and compute dtype (checked before).
template <typename Body>
void dispatch_amp(const at::Tensor& input, at::ScalarType compute_dtype, Body&& body) {
  c10::cuda::CUDAGuard guard(input.device());
  auto for_value = [&](auto value) {
    using V = decltype(value);
    if (input.scalar_type() == at::kFloat) {
      body(AmpTypes<float, V>{});
    } else {
      body(AmpTypes<V, V>{});
    }
  };
  if (compute_dtype == at::kHalf) {
    for_value(at::Half{});
  } else {
    for_value(at::BFloat16{});
  }
}

// [Cout][K] float weights (already rounded to the compute dtype) -> [g][ceil(K/2)][Mg] words,
// each the fp16 pair (w[2p], w[2p+1]) of one output channel; an odd K is padded with 0.
at::Tensor packed_weight_pairs(const at::Tensor& w_val, const ConvShape& s) {
  at::Tensor w = w_val.to(at::kHalf).reshape({s.groups, s.Mg, s.K});
  if (s.K % 2) w = at::constant_pad_nd(w, {0, 1}, 0);
  return w.reshape({s.groups, s.Mg, (s.K + 1) / 2, 2}).permute({0, 2, 1, 3}).contiguous().view(at::kInt);
}

at::Tensor adder_conv2d_amp_cuda(const at::Tensor& input, const at::Tensor& weight,
                                 const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                 c10::string_view /*weight_grad*/, c10::string_view /*input_grad*/,
                                 at::ScalarType compute_dtype) {
  constexpr const char* op = "adder_conv2d_amp";
  const KernelCall call = amp_kernel_call(op, input, weight, stride, padding, dilation, groups, compute_dtype);
  const ConvShape& s = call.s;
  check_amp_bias(op, bias, input, call.g);
  const bool has_bias = bias.has_value() && bias->defined();
  const at::TensorOptions f32 = input.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
  at::Tensor out = at::empty({s.N, s.Cout, s.Ho, s.Wo}, f32);
  if (out.numel() == 0) return out;

  const at::Tensor x = input.contiguous();
  const at::Tensor w_val = amp_operand(weight, compute_dtype).contiguous();  // [Cout][K], the overflow path's
  const at::Tensor wt2 = packed_weight_pairs(w_val, s);
  at::Tensor b;
  if (has_bias) b = bias->contiguous();
  using Cfg = cuda_kernels::PackedConfig;
  dispatch_amp(input, compute_dtype, [&](auto types) {
    using X = typename decltype(types)::in_t;
    using V = typename decltype(types)::value_t;
    launch(op, cuda_kernels::adder_forward_packed_kernel<X, V, Cfg>, cuda_launch::forward_grid<Cfg>(s), Cfg::NT,
           x.data_ptr<X>(), reinterpret_cast<const uint32_t*>(wt2.data_ptr<int32_t>()), w_val.data_ptr<float>(),
           has_bias ? b.data_ptr<float>() : nullptr, out.data_ptr<float>(), s);
  });
  return out;
}

at::Tensor adder_conv2d_amp_grad_input_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                            at::IntArrayRef dilation, int64_t groups, c10::string_view mode,
                                            at::ScalarType compute_dtype) {
  constexpr const char* op = "adder_conv2d_amp_grad_input";
  const KernelCall call = amp_kernel_call(op, input, weight, stride, padding, dilation, groups, compute_dtype);
  const ConvShape& s = call.s;
  check_amp_grad_output(op, grad_output, input, call.g);
  const bool sign = parse_input_grad_mode(op, mode);
  at::Tensor dx = at::empty({s.N, s.C, s.H, s.W}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (dx.numel() == 0) return dx;

  const at::Tensor x = input.contiguous();
  const at::Tensor go = grad_output.contiguous();
  // [Cout][Cg][kh*kw] -> [g][kh*kw][Mg][Cg], the values rounded to the compute dtype.
  const at::Tensor wp = amp_operand(weight, compute_dtype)
                            .reshape({s.groups, s.Mg, s.Cg, s.KHW})
                            .permute({0, 3, 1, 2})
                            .contiguous();
  using Cfg = typename cuda_kernels::GemmConfig<float>::type;
  dispatch_amp(input, compute_dtype, [&](auto types) {
    using X = typename decltype(types)::in_t;
    using IO = cuda_kernels::GradTypes<float, X, typename decltype(types)::value_t>;
    with_mode<Mode::GradInputHardtanh, Mode::GradInputSign>(sign, [&](auto m) {
      launch(op, cuda_kernels::adder_grad_input_kernel<IO, float, Cfg, decltype(m)::value>,
             cuda_launch::grad_input_grid<Cfg>(s), Cfg::NT, go.data_ptr<float>(), x.data_ptr<X>(),
             wp.data_ptr<float>(), dx.data_ptr<X>(), s);
    });
  });
  return dx;
}

at::Tensor adder_conv2d_amp_grad_weight_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                             const at::Tensor& weight, at::IntArrayRef stride,
                                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                             c10::string_view mode, at::ScalarType compute_dtype) {
  constexpr const char* op = "adder_conv2d_amp_grad_weight";
  const KernelCall call = amp_kernel_call(op, input, weight, stride, padding, dilation, groups, compute_dtype);
  const ConvShape& s = call.s;
  check_amp_grad_output(op, grad_output, input, call.g);
  const bool sign = parse_weight_grad_mode(op, mode);
  const int64_t wnumel = (int64_t)s.Cout * s.K;
  const at::TensorOptions w_opts = weight.options().memory_format(at::MemoryFormat::Contiguous);
  if (s.npix == 0 || wnumel == 0) return at::zeros(weight.sizes(), w_opts);  // an empty sum
  at::Tensor dw = at::empty(weight.sizes(), w_opts);

  const at::Tensor x = input.contiguous();
  const at::Tensor go = grad_output.contiguous();
  const at::Tensor w = amp_operand(weight, compute_dtype).contiguous();  // [Cout][K]
  using Cfg = typename cuda_kernels::GradWeightConfig<float>::type;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const cuda_launch::GradWeightPlan plan = cuda_launch::grad_weight_plan<Cfg>(s, sms);
  at::Tensor part = at::empty({plan.splits, s.Cout, s.K}, input.options().dtype(at::kFloat));
  dispatch_amp(input, compute_dtype, [&](auto types) {
    using X = typename decltype(types)::in_t;
    using V = typename decltype(types)::value_t;
    using IO = cuda_kernels::GradTypes<float, X, V>;
    with_mode<Mode::GradWeightFull, Mode::GradWeightSign>(sign, [&](auto m) {
      launch(op, cuda_kernels::adder_grad_weight_kernel<IO, float, Cfg, decltype(m)::value>, plan.grid, Cfg::NT,
             go.data_ptr<float>(), x.data_ptr<X>(), w.data_ptr<float>(), part.data_ptr<float>(), s,
             (int)plan.pixels_per_split, (int)plan.tap_tiles);
    });
    // The sum over splits, written in the weight's dtype: Float (a float32 parameter) or V.
    if (weight.scalar_type() == at::kFloat) {
      launch(op, cuda_kernels::adder_grad_weight_reduce_kernel<float, float>, {plan.reduce_blocks, 1, 1},
             cuda_launch::kReduceThreads, part.data_ptr<float>(), dw.data_ptr<float>(), wnumel, (int)plan.splits);
    } else {
      launch(op, cuda_kernels::adder_grad_weight_reduce_kernel<V, float>, {plan.reduce_blocks, 1, 1},
             cuda_launch::kReduceThreads, part.data_ptr<float>(), dw.data_ptr<V>(), wnumel, (int)plan.splits);
    }
  });
  return dw;
}

}  // namespace

TORCH_LIBRARY_IMPL(addersr, CUDA, m) {
  m.impl("adder_conv2d", &adder_conv2d_cuda);
  m.impl("adder_conv2d_grad_input", &adder_conv2d_grad_input_cuda);
  m.impl("adder_conv2d_grad_weight", &adder_conv2d_grad_weight_cuda);
  m.impl("adder_conv2d_amp", &adder_conv2d_amp_cuda);
  m.impl("adder_conv2d_amp_grad_input", &adder_conv2d_amp_grad_input_cuda);
  m.impl("adder_conv2d_amp_grad_weight", &adder_conv2d_amp_grad_weight_cuda);
}

}  // namespace addersr

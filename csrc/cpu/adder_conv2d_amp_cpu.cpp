// CPU kernels of addersr::adder_conv2d_amp and its backward operators (checks and
// semantics: csrc/adder_conv2d_amp.h). Autocast on the CPU keeps running the float32 op
// (docs/adder_op.md, "Mixed precision"); these kernels exist so that the op is complete on
// every backend (direct calls, opcheck, the meta-vs-CPU comparisons). They round the
// operands to the compute dtype and run the float32 kernels on those values through the
// dispatcher: float32 arithmetic, so they are at least as exact as the packed CUDA kernel.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "adder_conv2d_amp.h"  // csrc/, on the include path

namespace addersr {
namespace {

using Forward = at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, at::IntArrayRef,
                           at::IntArrayRef, at::IntArrayRef, int64_t, c10::string_view, c10::string_view);
using Backward = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                            at::IntArrayRef, at::IntArrayRef, int64_t, c10::string_view);

template <typename Signature>
c10::TypedOperatorHandle<Signature> float_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

at::Tensor adder_conv2d_amp_cpu(const at::Tensor& input, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                c10::string_view weight_grad, c10::string_view input_grad,
                                at::ScalarType compute_dtype) {
  constexpr const char* op = "adder_conv2d_amp";
  const Geometry g = amp_geometry(op, input, weight, stride, padding, dilation, groups, compute_dtype);
  check_amp_bias(op, bias, input, g);
  static const auto forward = float_op<Forward>("addersr::adder_conv2d");
  return forward.call(amp_operand(input, compute_dtype), amp_operand(weight, compute_dtype), bias, stride, padding,
                      dilation, groups, weight_grad, input_grad);
}

// One backward of the amp op: checks under the amp op's name, then the float32 backward `backward`
// on the rounded operands; the result in the dtype of the operand it is the gradient of. Each
// caller looks its handle up once (a `static`): a dispatcher lookup is a hash-table search.
at::Tensor amp_backward(const char* op, const c10::TypedOperatorHandle<Backward>& backward,
                        const at::Tensor& grad_output, const at::Tensor& input,
                        const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t groups, c10::string_view mode,
                        at::ScalarType compute_dtype, at::ScalarType result_dtype) {
  const Geometry g = amp_geometry(op, input, weight, stride, padding, dilation, groups, compute_dtype);
  check_amp_grad_output(op, grad_output, input, g);
  return backward
      .call(grad_output, amp_operand(input, compute_dtype), amp_operand(weight, compute_dtype), stride, padding,
            dilation, groups, mode)
      .to(result_dtype);
}

at::Tensor adder_conv2d_amp_grad_input_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                           const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                                           at::IntArrayRef dilation, int64_t groups, c10::string_view mode,
                                           at::ScalarType compute_dtype) {
  static const auto backward = float_op<Backward>("addersr::adder_conv2d_grad_input");
  return amp_backward("adder_conv2d_amp_grad_input", backward, grad_output, input, weight,
                      stride, padding, dilation, groups, mode, compute_dtype, input.scalar_type());
}

at::Tensor adder_conv2d_amp_grad_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                            const at::Tensor& weight, at::IntArrayRef stride,
                                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                            c10::string_view mode, at::ScalarType compute_dtype) {
  static const auto backward = float_op<Backward>("addersr::adder_conv2d_grad_weight");
  return amp_backward("adder_conv2d_amp_grad_weight", backward, grad_output, input,
                      weight, stride, padding, dilation, groups, mode, compute_dtype, weight.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(addersr, CPU, m) {
  m.impl("adder_conv2d_amp", &adder_conv2d_amp_cpu);
  m.impl("adder_conv2d_amp_grad_input", &adder_conv2d_amp_grad_input_cpu);
  m.impl("adder_conv2d_amp_grad_weight", &adder_conv2d_amp_grad_weight_cpu);
}

}  // namespace addersr

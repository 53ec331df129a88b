// Argument checks of addersr::adder_conv2d_amp and its backward operators, shared by the
// CPU and CUDA kernels (schemas: csrc/adder_conv2d.cpp; semantics: docs/adder_op.md,
// "Mixed precision").
//
// The op is the adder convolution as CUDA autocast runs it: input and weight rounded to a
// 16-bit compute dtype (float16 or bfloat16), a float32 result. The input may arrive in
// float32 or already in the compute dtype, the weight likewise (a float32 parameter is
// rounded inside the op, so its gradient stays float32); bias and grad_output are float32.
#pragma once

#include <ATen/ATen.h>

#include "adder_conv2d_geometry.h"

namespace addersr {

inline bool is_amp_compute_dtype(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16; }

// The geometry of an adder_conv2d_amp call, after its dtype checks.
inline Geometry amp_geometry(const char* op, const at::Tensor& input, const at::Tensor& weight,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                             int64_t groups, at::ScalarType compute_dtype) {
  TORCH_CHECK(is_amp_compute_dtype(compute_dtype), op, ": compute_dtype must be Half or BFloat16, got ",
              compute_dtype);
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == compute_dtype, op, ": input dtype ",
              input.scalar_type(), " must be Float or the compute dtype ", compute_dtype);
  TORCH_CHECK(weight.scalar_type() == at::kFloat || weight.scalar_type() == compute_dtype, op, ": weight dtype ",
              weight.scalar_type(), " must be Float or the compute dtype ", compute_dtype);
  return conv_geometry(op, input, weight, stride, padding, dilation, groups);
}

// The bias of adder_conv2d_amp: (Cout,) float32 on the input's device, added to the float32 result.
inline void check_amp_bias(const char* op, const c10::optional<at::Tensor>& bias, const at::Tensor& input,
                           const Geometry& g) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.Cout, op, ": bias must have shape (", num(g.Cout), ",), got ",
              shape_str(bias->sizes()));
  TORCH_CHECK(bias->scalar_type() == at::kFloat, op, ": bias dtype ", bias->scalar_type(),
              " must be Float (the output's dtype)");
  TORCH_CHECK(bias->device() == input.device(), op, ": bias is on ", bias->device(), " but input is on ",
              input.device());
}

// grad_output of the amp backward operators: float32 (the forward's output dtype).
inline void check_amp_grad_output(const char* op, const at::Tensor& grad_output, const at::Tensor& input,
                                  const Geometry& g) {
  TORCH_CHECK(grad_output.scalar_type() == at::kFloat, op, ": grad_output dtype ", grad_output.scalar_type(),
              " must be Float (the forward's output dtype)");
  TORCH_CHECK(grad_output.device() == input.device(), op, ": grad_output is on ", grad_output.device(),
              " but input is on ", input.device());
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.N && grad_output.size(1) == g.Cout &&
                  grad_output.size(2) == g.Ho && grad_output.size(3) == g.Wo,
              op, ": grad_output must have shape (", num(g.N), ", ", num(g.Cout), ", ", num(g.Ho), ", ", num(g.Wo),
              "), got ", shape_str(grad_output.sizes()));
}

// The operands' values in float32: t rounded to the compute dtype, then widened (exact).
inline at::Tensor amp_operand(const at::Tensor& t, at::ScalarType compute_dtype) {
  return t.to(compute_dtype).to(at::kFloat);
}

}  // namespace addersr

// Shape bookkeeping and argument checks shared by the CPU and CUDA kernels.
//
// The Python wrapper (addersr_plugin/ops/adder_conv2d.py) gives users named,
// friendly errors; these TORCH_CHECKs guard direct calls of torch.ops.addersr.*.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace addersr {

// Error messages carry numbers as ready-made strings: with some torch/compiler combinations a
// TORCH_CHECK that streams an integer or an IntArrayRef into its message has crashed the process
// instead of raising (seen once with torch 2.11 and g++ 13, CPU and CUDA paths alike), while
// messages of strings, dtypes and devices raised normally. num() and shape_str() keep every
// message a concatenation of strings (tests/ops/test_ops_cuda.py and test_ops_direct_calls.py).
inline std::string num(int64_t v) { return std::to_string(static_cast<long long>(v)); }

// "(a, b, c)" (or "(a,)") for an error message.
inline std::string shape_str(at::IntArrayRef sizes) {
  std::string s = "(";
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(sizes[i]);
  }
  return s + (sizes.size() == 1 ? ",)" : ")");
}

struct Geometry {
  int64_t N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, Ho, Wo;
  int64_t cin_g() const { return Cin / groups; }
  int64_t cout_g() const { return Cout / groups; }
  int64_t K() const { return cin_g() * kh * kw; }  // taps per output value
  int64_t L() const { return Ho * Wo; }            // output pixels per image
};

// The shape, device and geometry checks every adder convolution shares (float and uint8 ops):
// everything but the element types, which each op checks itself first.
inline Geometry conv_geometry(const char* op, const at::Tensor& input, const at::Tensor& weight,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                              int64_t groups) {
  TORCH_CHECK(input.dim() == 4, op, ": input must be 4-D (N, C, H, W), got ", shape_str(input.sizes()));
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be 4-D (Cout, Cin/groups, kh, kw), got ", shape_str(weight.sizes()));
  TORCH_CHECK(input.device() == weight.device(), op, ": weight is on ", weight.device(), " but input is on ",
              input.device());
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
              ": stride, padding and dilation must have two values");
  TORCH_CHECK(stride[0] > 0 && stride[1] > 0, op, ": stride must be positive, got ", shape_str(stride));
  TORCH_CHECK(dilation[0] > 0 && dilation[1] > 0, op, ": dilation must be positive, got ", shape_str(dilation));
  TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0, op, ": padding must be non-negative, got ", shape_str(padding));
  TORCH_CHECK(groups > 0, op, ": groups must be positive, got ", num(groups));
  Geometry g;
  g.N = input.size(0); g.Cin = input.size(1); g.H = input.size(2); g.W = input.size(3);
  g.Cout = weight.size(0); g.kh = weight.size(2); g.kw = weight.size(3);
  g.sh = stride[0]; g.sw = stride[1]; g.ph = padding[0]; g.pw = padding[1];
  g.dh = dilation[0]; g.dw = dilation[1]; g.groups = groups;
  TORCH_CHECK(g.Cout % groups == 0, op, ": out channels ", num(g.Cout), " are not divisible by groups=", num(groups));
  TORCH_CHECK(g.Cin == weight.size(1) * groups, op, ": input has ", num(g.Cin), " channels but weight expects ",
              num(weight.size(1)), " per group x groups=", num(groups));
  // With no input channel the tap loop never runs and the kernels would return the output
  // buffer unwritten; the op is undefined there, so it is rejected (same text in Python).
  TORCH_CHECK(g.Cin > 0, op, ": input has zero channels (Cin == 0); an adder convolution needs at least one "
              "input channel");
  TORCH_CHECK(g.kh > 0 && g.kw > 0, op, ": kernel size must be positive");
  g.Ho = (g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  g.Wo = (g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  TORCH_CHECK(g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1 >= 0 && g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1 >= 0 &&
                  g.Ho > 0 && g.Wo > 0,
              op, ": output size would be non-positive for input ", shape_str(input.sizes()), " and weight ",
              shape_str(weight.sizes()));
  return g;
}

// The float op's checks: floating-point input, weight of the same dtype, then the shared ones.
inline Geometry make_geometry(const char* op, const at::Tensor& input, const at::Tensor& weight,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                              int64_t groups) {
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), op, ": weight dtype ", weight.scalar_type(),
              " does not match input dtype ", input.scalar_type());
  TORCH_CHECK(input.is_floating_point(), op, ": input must be floating point, got ", input.scalar_type());
  return conv_geometry(op, input, weight, stride, padding, dilation, groups);
}

inline void check_bias(const char* op, const c10::optional<at::Tensor>& bias, const at::Tensor& input,
                       const Geometry& g) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.Cout, op, ": bias must have shape (", num(g.Cout), ",), got ",
              shape_str(bias->sizes()));
  TORCH_CHECK(bias->scalar_type() == input.scalar_type(), op, ": bias dtype ", bias->scalar_type(),
              " does not match input dtype ", input.scalar_type());
  TORCH_CHECK(bias->device() == input.device(), op, ": bias is on ", bias->device(), " but input is on ",
              input.device());
}

inline void check_grad_output(const char* op, const at::Tensor& grad_output, const at::Tensor& input,
                              const Geometry& g) {
  TORCH_CHECK(grad_output.device() == input.device(), op, ": grad_output is on ", grad_output.device(),
              " but input is on ", input.device());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(), op, ": grad_output dtype ",
              grad_output.scalar_type(), " does not match input dtype ", input.scalar_type());
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.N && grad_output.size(1) == g.Cout &&
                  grad_output.size(2) == g.Ho && grad_output.size(3) == g.Wo,
              op, ": grad_output must have shape (", num(g.N), ", ", num(g.Cout), ", ", num(g.Ho), ", ",
              num(g.Wo), "), got ",
              shape_str(grad_output.sizes()));
}

// The backward operators' `mode` argument. Returns true for "sign", false for "hardtanh".
inline bool parse_input_grad_mode(const char* op, c10::string_view mode) {
  TORCH_CHECK(mode == "hardtanh" || mode == "sign", op, ": unknown mode '", std::string(mode),
              "'; expected 'hardtanh' or 'sign'");
  return mode == "sign";
}

// Returns true for "sign", false for "full".
inline bool parse_weight_grad_mode(const char* op, c10::string_view mode) {
  TORCH_CHECK(mode == "full" || mode == "sign", op, ": unknown mode '", std::string(mode),
              "'; expected 'full' or 'sign'");
  return mode == "sign";
}

}  // namespace addersr

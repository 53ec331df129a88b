// The one definition of the addersr operator library.
//
// Schemas live here and nowhere else in C++; the backend kernels register
// implementations with TORCH_LIBRARY_IMPL in csrc/cpu and csrc/cuda. The
// Python side (addersr_plugin/ops) adds register_fake and register_autograd.
// The schema strings are mirrored in addersr_plugin/ops/_schema.py for the
// pure-PyTorch fallback; tests/test_ops_registration.py asserts they agree.
#include <Python.h>
#include <torch/library.h>

// An importable, empty Python module: loading it runs the static
// TORCH_LIBRARY initialisers below.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "addersr native kernels", -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(addersr, m) {
  // weight_grad / input_grad are carried by the forward so that the autograd
  // formula (registered in Python) can see them; the forward ignores them.
  m.def(
      "adder_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, str weight_grad, "
      "str input_grad) -> Tensor");
  m.def(
      "adder_conv2d_grad_input(Tensor grad_output, Tensor input, Tensor weight, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode) -> Tensor");
  m.def(
      "adder_conv2d_grad_weight(Tensor grad_output, Tensor input, Tensor weight, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode) -> Tensor");
  // The op as CUDA autocast runs it (docs/adder_op.md, "Mixed precision"; checks in
  // adder_conv2d_amp.h): input and weight rounded to compute_dtype (Half or BFloat16), each
  // arriving in Float or in that dtype; bias and the result Float. The CUDA forward computes
  // in packed fp16 with fp32 accumulation. The backward takes a Float grad_output and returns
  // grad_input in the input's dtype, grad_weight in the weight's.
  m.def(
      "adder_conv2d_amp(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, str weight_grad, str input_grad, "
      "ScalarType compute_dtype) -> Tensor");
  m.def(
      "adder_conv2d_amp_grad_input(Tensor grad_output, Tensor input, Tensor weight, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode, "
      "ScalarType compute_dtype) -> Tensor");
  m.def(
      "adder_conv2d_amp_grad_weight(Tensor grad_output, Tensor input, Tensor weight, "
      "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode, "
      "ScalarType compute_dtype) -> Tensor");
  // Integer inference (docs/int8.md): uint8 input and weight on one grid, padded with
  // zero_point; returns the int32 sums Σ|qx − qw|. CPU only (csrc/cpu/adder_conv2d_u8_cpu.cpp).
  m.def(
      "adder_conv2d_u8(Tensor input, Tensor weight, int zero_point, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups) -> Tensor");
  // The same on a float32 input quantized on the fly (q = clamp(round(x / scale) + zero_point)),
  // returning float32 out_scale[c]·Σ + out_bias[c] (+ residual, then ReLU, when asked): one
  // quantized inference layer, with its unit's shortcut and activation, in one call.
  m.def(
      "adder_conv2d_u8_affine(Tensor input, Tensor weight, float scale, int zero_point, "
      "Tensor out_scale, Tensor out_bias, int[2] stride, int[2] padding, int[2] dilation, "
      "int groups, Tensor? residual=None, bool relu=False) -> Tensor");
}

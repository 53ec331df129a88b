// AVX-512 kernels of the float32 adder convolution (adder_conv2d_cpu_avx512.cpp).
//
// The float CPU operators (adder_conv2d_cpu.cpp) call these for float32 tensors when
// enabled() says so, and their AVX2 (at::vec) kernels otherwise. Pointers are to contiguous
// NCHW / (Cout, Cin/groups, kh, kw) data; every output is overwritten.
#pragma once

#include <cstdint>

#include "adder_conv2d_geometry.h"  // csrc/, on the include path

namespace addersr {
namespace cpu_avx512 {

// True when this CPU has AVX-512 F/DQ/VL/BW (checked at run time, the build itself targets
// AVX2) and the environment variable ADDERSR_FLOAT_KERNEL is not "avx2" (which forces the
// AVX2 kernels, for tests and comparisons). Read at every call, so a process can switch.
bool enabled();

// y = bias − Σ|x − w| per output (bias may be null).
void forward(const float* x, const float* w, const float* bias, const Geometry& g, float* y);

// gx = Σ G·φ(W − X), φ = hardtanh (sign = false) or sign (sign = true).
void grad_input(const float* grad_output, const float* x, const float* w, const Geometry& g, bool sign, float* gx);

// gw = Σ G·sign(X − W) (the weight_grad="sign" mode; "full" is a convolution gradient).
void grad_weight_sign(const float* grad_output, const float* x, const float* w, const Geometry& g, float* gw);

}  // namespace cpu_avx512
}  // namespace addersr

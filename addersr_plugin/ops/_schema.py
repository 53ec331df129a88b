"""Schemas of the ``addersr`` operator library.

The C++ extension defines them in ``csrc/adder_conv2d.cpp`` (one ``TORCH_LIBRARY``).
They are repeated here only so the pure-PyTorch fallback can define the very same
operators when the extension is missing; a test asserts both copies agree.
"""

LIBRARY = "addersr"

SCHEMAS = {
    "adder_conv2d": (
        "adder_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
        "int[2] padding, int[2] dilation, int groups, str weight_grad, "
        "str input_grad) -> Tensor"
    ),
    "adder_conv2d_grad_input": (
        "adder_conv2d_grad_input(Tensor grad_output, Tensor input, Tensor weight, "
        "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode) -> Tensor"
    ),
    "adder_conv2d_grad_weight": (
        "adder_conv2d_grad_weight(Tensor grad_output, Tensor input, Tensor weight, "
        "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode) -> Tensor"
    ),
    "adder_conv2d_amp": (
        "adder_conv2d_amp(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
        "int[2] padding, int[2] dilation, int groups, str weight_grad, str input_grad, "
        "ScalarType compute_dtype) -> Tensor"
    ),
    "adder_conv2d_amp_grad_input": (
        "adder_conv2d_amp_grad_input(Tensor grad_output, Tensor input, Tensor weight, "
        "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode, "
        "ScalarType compute_dtype) -> Tensor"
    ),
    "adder_conv2d_amp_grad_weight": (
        "adder_conv2d_amp_grad_weight(Tensor grad_output, Tensor input, Tensor weight, "
        "int[2] stride, int[2] padding, int[2] dilation, int groups, str mode, "
        "ScalarType compute_dtype) -> Tensor"
    ),
    "adder_conv2d_u8": (
        "adder_conv2d_u8(Tensor input, Tensor weight, int zero_point, int[2] stride, "
        "int[2] padding, int[2] dilation, int groups) -> Tensor"
    ),
    "adder_conv2d_u8_affine": (
        "adder_conv2d_u8_affine(Tensor input, Tensor weight, float scale, int zero_point, "
        "Tensor out_scale, Tensor out_bias, int[2] stride, int[2] padding, int[2] dilation, "
        "int groups, Tensor? residual=None, bool relu=False) -> Tensor"
    ),
}

WEIGHT_GRAD_MODES = ("full", "sign")
INPUT_GRAD_MODES = ("hardtanh", "sign")

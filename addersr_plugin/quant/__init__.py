"""8-bit integer inference of adder networks (docs/int8.md).

Each :class:`~addersr_plugin.nn.AdderConv2d` of a trained network becomes a
:class:`QuantAdderConv2d` on the SAD kernel ``addersr::adder_conv2d_u8``: one grid shared by its
input and weights (calibrated), weights clamped to the grid with the exact bias correction,
the following BatchNorm folded into a per-channel affine on the int32 sums. Everything else
stays float.

    qnet, report = quantize_model(net, calib_batches)         # Python API
    save_int8(qnet, "net_int8.pth", network_g, scale, report)
    qnet, scale, report = load_int8("net_int8.pth")
"""

from .calibrate import METHODS, CalibrationError, choose_grid, collect
from .checkpoint import (FORMAT, VERSION, QuantCheckpointError, build_int8, check_int8, is_int8_checkpoint,
                         load_int8, read_int8, save_int8)
from .convert import convert, fidelity, psnr, quantize_model
from .grid import Grid, clamp_weights, dequantize, fake_quantize, grid_for_range, quantize
from .layer import QuantAdderConv2d, bn_affine

__all__ = ["METHODS", "CalibrationError", "choose_grid", "collect", "FORMAT", "VERSION", "QuantCheckpointError",
           "build_int8", "check_int8", "is_int8_checkpoint", "load_int8", "read_int8", "save_int8", "convert",
           "fidelity", "psnr", "quantize_model", "Grid", "clamp_weights", "dequantize", "fake_quantize",
           "grid_for_range", "quantize", "QuantAdderConv2d", "bn_affine"]

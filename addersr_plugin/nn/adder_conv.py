"""``AdderConv2d``: the adder convolution as a layer, with AdderNet's adaptive learning rate.

Adaptive learning rate (ALR, AdderNet Eq. 12): the weight gradient of every adder layer is
rescaled to ``eta * sqrt(k) * g / ||g||_2`` with ``k = weight.numel()`` and one L2 norm per
layer. The op stays a pure adder convolution; the rescaling is a gradient hook installed
with ``Tensor.register_hook`` on the weight parameter.

Why ``register_hook`` and not ``register_post_accumulate_grad_hook``:

* ``register_hook`` on a leaf runs on the gradient *of one backward pass* before it is
  added to ``.grad``. This is what the official AdderNet code does (it rescales inside
  the op's backward), so gradient accumulation over several backward calls sums
  individually normalised micro-batch gradients, as there.
* A post-accumulate hook would see ``.grad`` after accumulation and normalise the running
  sum again on every backward, weighting earlier micro-batches differently.

Under ``DistributedDataParallel`` the hook runs on each rank's *local* gradient, before
DDP's reducer (a hook on the same ``AccumulateGrad`` node that runs after tensor hooks)
copies it into the all-reduce bucket; the weight's final ``.grad`` is the mean over ranks
of the locally normalised gradients, so its norm is at most ``eta * sqrt(k)``
(``tests/nn/test_nn_alr_ddp.py`` checks this with two gloo processes). This matches the
official code under ``DataParallel``, where each replica normalises its own gradient.

Tensor hooks do not survive ``copy.deepcopy``, pickling, ``load_state_dict(assign=True)``
or a module conversion that replaces parameters: each of them makes a new ``Parameter``.
So the layer re-installs the hook in ``forward`` whenever its weight lacks it.
"""

from __future__ import annotations

import math
import weakref
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..ops import adder_conv2d, to_pair

IntPair = Union[int, Sequence[int]]
INIT_MODES = ("normal", "scaled")
_HOOK_TAG = "__addersr_alr__"  # attribute on our hook functions, to find them on a Parameter


def _pair(name: str, value: IntPair) -> Tuple[int, int]:
    return to_pair(name, value, owner="AdderConv2d")


def adaptive_lr_scale(grad: Tensor, eta: float) -> Tensor:
    """AdderNet's adaptive learning rate: ``eta * sqrt(numel) * grad / ||grad||_2``.

    Computed in float64 for a float64 gradient and in float32 otherwise (fp16/bf16 norms
    would overflow), so float64 training gets float64-exact gradients. A zero gradient
    stays zero (no division by zero, no NaN); there is no host synchronisation.
    """
    cdt = torch.float64 if grad.dtype == torch.float64 else torch.float32
    g = grad.to(cdt)
    norm = torch.linalg.vector_norm(g)
    factor = eta * math.sqrt(grad.numel()) / norm.clamp_min(torch.finfo(cdt).tiny)
    factor = torch.where(norm > 0, factor, torch.zeros_like(factor))
    return (g * factor).to(grad.dtype)


class AdderConv2d(nn.Module):
    """Adder convolution layer ``Y = -sum |X - W| (+ bias)`` with ``nn.Conv2d``'s geometry.

    Args:
        in_channels, out_channels (int): channel counts; both divisible by ``groups``.
        kernel_size, stride, padding, dilation (int or pair): as ``nn.Conv2d`` (zero padding).
        groups (int): channel groups. Default: 1.
        bias (bool): learnable per-channel bias. Default: False (AdderSR follows every adder
            layer with BatchNorm, whose shift makes a bias redundant).
        eta (float or None): adaptive learning rate coefficient (AdderNet's 0.2); ``None``
            leaves the weight gradient untouched. See the module docstring for the hook and
            its behaviour under DDP.
        weight_grad (str): ``"full"`` (AdderNet, ``X - W``) or ``"sign"`` (exact gradient).
        input_grad (str): ``"hardtanh"`` (AdderNet) or ``"sign"`` (exact gradient).
        init (str): ``"normal"``: weights ~ N(0, 1), as AdderNet. ``"scaled"``: weights ~
            N(0, 1/fan_in) with ``fan_in = in_channels/groups * kh * kw`` (LeCun/Kaiming-like
            std, gain 1), so weights start on the scale of normalised features divided
            across the taps rather than at unit scale.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = False,
                 eta: Optional[float] = 0.2, weight_grad: str = "full", input_grad: str = "hardtanh",
                 init: str = "normal"):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"AdderConv2d: {name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"AdderConv2d: in_channels={in_channels} and out_channels={out_channels} "
                             f"must both be divisible by groups={groups}")
        if eta is not None and not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0):
            raise ValueError(f"AdderConv2d: eta must be a positive finite number or None, got {eta!r}")
        if init not in INIT_MODES:
            raise ValueError(f"AdderConv2d: unknown init {init!r}; expected one of {INIT_MODES}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.stride = _pair("stride", stride)
        self.padding = _pair("padding", padding)
        self.dilation = _pair("dilation", dilation)
        self.groups = groups
        self.eta = eta
        self.weight_grad = weight_grad
        self.input_grad = input_grad
        self.init = init
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        self._install_alr_hook()

    def reset_parameters(self) -> None:
        fan_in = self.weight[0].numel()
        std = 1.0 if self.init == "normal" else 1.0 / math.sqrt(fan_in)
        nn.init.normal_(self.weight, 0.0, std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _install_alr_hook(self) -> None:
        """Attach the ALR hook to the current weight Parameter unless it already carries one.

        We look for our hook in the Parameter's own hook table rather than keeping a flag:
        a flag would be copied by pickling and deepcopy while the hook itself is not.
        The hook holds the layer weakly and reads ``eta`` when it fires, so changing
        ``layer.eta`` (or setting it to None) takes effect at the next backward.
        """
        weight = self.weight
        if not weight.requires_grad:
            return
        hooks = weight._backward_hooks or {}
        if any(getattr(h, _HOOK_TAG, False) for h in hooks.values()):
            return
        layer_ref = weakref.ref(self)

        # Re-installed by forward after unpickling, so not serialising it is expected.
        @torch.utils.hooks.unserializable_hook
        def alr_hook(grad: Tensor) -> Optional[Tensor]:
            layer = layer_ref()
            if layer is None or layer.eta is None or layer.weight is not weight:
                return None
            return adaptive_lr_scale(grad, layer.eta)

        setattr(alr_hook, _HOOK_TAG, True)
        weight.register_hook(alr_hook)

    def forward(self, input: Tensor) -> Tensor:
        if not torch.compiler.is_compiling():
            self._install_alr_hook()
        return adder_conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                            self.groups, weight_grad=self.weight_grad, input_grad=self.input_grad)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        s += f", eta={self.eta}"
        if self.weight_grad != "full" or self.input_grad != "hardtanh":
            s += f", weight_grad={self.weight_grad!r}, input_grad={self.input_grad!r}"
        return s

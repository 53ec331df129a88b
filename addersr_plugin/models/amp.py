"""Mixed-precision training of ``AdderSRModel``: ``train.use_amp`` and ``train.amp_bf16``.

The option names are traiNNer-redux's: ``use_amp: true`` runs the training forward and the losses
under ``torch.autocast``, in float16 or, with ``amp_bf16: true``, bfloat16. The float convolutions
then run in that dtype; the adder layers return float32 whatever it is (``ops.AUTOCAST_DTYPE``),
computing in half precision on CUDA and in float32 on the CPU (docs/adder_op.md "Mixed
precision"). float16 needs a ``torch.amp.GradScaler`` (its range is too
small for small gradients); bfloat16 has float32's range and needs none. Only torch here: the model
wires this into its step (docs/training.md, "Mixed precision").
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch


def parse_amp_options(train_opt: dict, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype that ``train.use_amp`` / ``train.amp_bf16`` ask for on ``device``; None: off.

    ValueError, naming the option, for a value that is not a bool and for a combination that
    cannot work: float16 on the CPU (CPU autocast is meaningful in bfloat16 only: float16 has no
    fast CPU kernels and would need a GradScaler for nothing) and bfloat16 on a GPU without it.
    """
    use_amp, bf16 = train_opt.get("use_amp", False), train_opt.get("amp_bf16", False)
    for name, value in (("train.use_amp", use_amp), ("train.amp_bf16", bf16)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    if not use_amp:
        return None
    if device.type == "cpu" and not bf16:
        raise ValueError("train.use_amp on the CPU needs train.amp_bf16: true: CPU autocast is meaningful "
                         "in bfloat16 only (float16 has no fast CPU kernels)")
    if device.type == "cuda" and bf16 and not torch.cuda.is_bf16_supported():
        raise ValueError(f"train.amp_bf16: {torch.cuda.get_device_name(device)} does not support bfloat16; "
                         "set train.amp_bf16: false (float16 with a GradScaler) or train.use_amp: false")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train.use_amp is supported on cpu and cuda, not {device.type}")
    return torch.bfloat16 if bf16 else torch.float16


class MixedPrecision:
    """Autocast for the forward, and the GradScaler of a float16 run, around one optimizer.

    ``dtype=None`` is plain float32 training: every method then does what the model did before.
    With a scaler, :meth:`backward` leaves the gradients *unscaled*, so the caller's clipping and
    non-finite check see the true gradient; a non-finite one is either the scaler's overflow
    (:meth:`overflowed`: skip the step, lower the scale; the training is fine) or a real one.
    """

    def __init__(self, device_type: str, dtype: Optional[torch.dtype]):
        self.device_type, self.dtype = device_type, dtype
        self.scaler = torch.amp.GradScaler(device_type) if dtype == torch.float16 else None
        self.skipped = 0  # steps the scaler skipped (overflows of the scaled gradients)
        self._scale = 1.0  # the scale of the current step's backward

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            return
        self._scale = self.scaler.get_scale()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)  # before clipping and the non-finite check: true gradients

    def overflowed(self) -> bool:
        """Whether this step's non-finite gradient is the scaler's overflow rather than the training's.

        The scaler multiplies the loss by its scale (2^16 at first) and halves it after every overflow.
        Above 1 a non-finite gradient may be that multiplication overflowing float16; at a scale of 1
        or below the gradient overflows unscaled, so it is the training's and counts as a non-finite
        skip. A diverged run thus reaches ``nonfinite_max_skips`` after at most ~16 extra steps.
        """
        return self.scaler is not None and self._scale > 1

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)  # unscale_ has run: the step uses the true gradients
        self.scaler.update()

    def skip(self) -> None:
        """End a step whose gradient was non-finite without touching the weights.

        An overflow lowers the scale (``update`` reads the infs ``unscale_`` found); any other
        non-finite step keeps the scale, which was not the cause.
        """
        if self.scaler is None:
            return
        if self.overflowed():
            self.skipped += 1
            self.scaler.update()
        else:
            self.scaler.update(float(self._scale))

    def log(self) -> dict:
        if self.scaler is None:
            return {}
        return {"amp_skipped": float(self.skipped), "amp_scale": float(self.scaler.get_scale())}

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict() if self.scaler is not None else None, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.skipped = int(state.get("skipped", 0))


__all__ = ["MixedPrecision", "parse_amp_options"]

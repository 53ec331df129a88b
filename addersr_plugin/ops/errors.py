"""Warnings and errors of the operator layer (a module of its own: every ops module may import it)."""


class AdderExtensionWarning(UserWarning):
    """The compiled adder kernels are unavailable for some backend; the reference runs instead."""


__all__ = ["AdderExtensionWarning"]

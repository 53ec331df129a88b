"""Everything that makes basicsr 1.4.2 (PyPI) work on current Python/torch/torchvision and with this plugin.

One module per fix, named for what it fixes; :func:`apply` applies them all, idempotently (a
no-op where basicsr already behaves), and ``addersr_plugin/__init__.py`` calls it before
anything imports basicsr:

* :mod:`.preimport`: the ``torchvision.transforms.functional_tensor`` alias and ``distutils``,
  which must precede ``import basicsr`` (so this package never imports basicsr at import time);
* :mod:`.resume_on_cpu`: ``--auto_resume`` without a GPU, from the run's own state folder, past
  a state file a kill cut short;
* :mod:`.ddp_on_cpu`: torchrun on CPU machines (gloo), rank-0 validation without collectives;
* :mod:`.shared_lmdb`: train and val datasets reading one LMDB in one process;
* :mod:`.outputs_in_cwd`: basicsr's own entry points write under the working directory;
* :mod:`.registration`: the plugin's architectures and models in basicsr's registries.

The installed startup hook (``_addersr_plugin_hook``, top of site-packages) runs the pre-import
fixes and then ``import addersr_plugin`` as soon as anything imports basicsr, so the fixes hold
for basicsr's own entry points too (``python -m basicsr.train``).
"""

from __future__ import annotations

from .ddp_on_cpu import patch_distributed
from .outputs_in_cwd import patch_entry_root
from .preimport import PATCHED, alias_functional_tensor, ensure_distutils
from .registration import ArchNameClashError, register_arch, register_model
from .resume_on_cpu import load_resume_state, patch_resume
from .shared_lmdb import patch_lmdb_backend


def apply() -> None:
    """Apply every compatibility fix; safe to call any number of times."""
    alias_functional_tensor()
    ensure_distutils()
    # Only now may basicsr be imported.
    patch_resume()
    patch_distributed()
    patch_lmdb_backend()
    patch_entry_root()


__all__ = ["apply", "alias_functional_tensor", "ensure_distutils", "load_resume_state", "patch_resume",
           "patch_distributed", "patch_lmdb_backend", "patch_entry_root", "register_arch", "register_model",
           "ArchNameClashError", "PATCHED"]

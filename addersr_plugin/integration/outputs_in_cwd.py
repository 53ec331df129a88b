"""basicsr's own entry points write their outputs under the working directory, not site-packages.

``python -m basicsr.train -opt FILE``, ``python -m basicsr.test`` or ``python .../basicsr/train.py``
derive their output root from basicsr's own file, which puts ``experiments/``, ``results/`` and
``tb_logger/`` inside site-packages when basicsr is installed there: such a root is replaced by
the working directory (a BasicSR checkout keeps its own root). Their ``__main__`` copy of
``train.py`` also gets the CPU-safe resume (:mod:`.resume_on_cpu`).
"""

from __future__ import annotations

import collections
import importlib
import os
import sys

from .preimport import PATCHED
from .resume_on_cpu import load_resume_state


def _installed_basicsr_root(root_path) -> bool:
    """True when ``root_path`` is the site-packages folder basicsr is installed in (what
    ``basicsr/train.py`` computes as its root when it runs from there)."""
    basicsr = sys.modules.get("basicsr")
    if basicsr is None or not getattr(basicsr, "__file__", None) or not isinstance(root_path, (str, os.PathLike)):
        return False
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(basicsr.__file__)))
    return (os.path.realpath(root_path) == os.path.realpath(package_parent)
            and os.path.basename(package_parent) in ("site-packages", "dist-packages"))


class _CwdRootedOptions(collections.OrderedDict):
    """The option dict of a run rerooted at the working directory.

    basicsr's ``train_pipeline`` writes ``opt['root_path'] = root_path`` (the site-packages
    root) right after ``parse_options`` and then puts ``tb_logger/`` under it; that one
    assignment keeps the working-directory root instead.
    """

    def __init__(self, items=(), site_root: str = ""):
        self._site_root = os.path.realpath(site_root) if site_root else ""
        super().__init__(items)

    def __setitem__(self, key, value):
        if (key == "root_path" and self._site_root and isinstance(value, (str, os.PathLike))
                and os.path.realpath(value) == self._site_root):
            value = self.get("root_path", value)
        super().__setitem__(key, value)

    def __reduce__(self):  # pickles/deep-copies as the dict it is, with its root kept
        return (type(self), (list(self.items()), self._site_root))


def _patch_main_train_module() -> None:
    """Give the ``__main__`` copy of basicsr's train.py (``python -m basicsr.train``, or the
    file run as a script) the CPU-safe resume: that copy has its own ``load_resume_state``."""
    main = sys.modules.get("__main__")
    train_mod = sys.modules.get("basicsr.train")
    if main is None or train_mod is None or main is train_mod:
        return
    main_file, train_file = getattr(main, "__file__", None), getattr(train_mod, "__file__", None)
    if not main_file or not train_file or os.path.basename(main_file) != "train.py":
        return
    if callable(getattr(main, "load_resume_state", None)) and callable(getattr(main, "train_pipeline", None)):
        if not getattr(main.load_resume_state, PATCHED, False):
            main.load_resume_state = load_resume_state


def patch_entry_root() -> bool:
    """Root basicsr's own entry points at the working directory when basicsr is installed in
    site-packages (see the module docstring); True if installed now."""
    options = importlib.import_module("basicsr.utils.options")
    if getattr(options.parse_options, PATCHED, False):
        return False
    original = options.parse_options

    def parse_options(root_path, is_train=True):
        _patch_main_train_module()
        if not _installed_basicsr_root(root_path):
            return original(root_path, is_train)
        opt, args = original(os.getcwd(), is_train)
        rooted = _CwdRootedOptions(site_root=root_path)
        rooted.update(opt)
        rooted["root_path"] = os.getcwd()
        return rooted, args

    setattr(parse_options, PATCHED, True)
    options.parse_options = parse_options
    # The already imported pipelines bound the original name at their import.
    for name in ("basicsr.train", "basicsr.test"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "parse_options", None) is original:
            module.parse_options = parse_options
    return True


__all__ = ["patch_entry_root"]

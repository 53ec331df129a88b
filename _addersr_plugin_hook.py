"""Startup hook of addersr-plugin: BasicSR's own entry points find the plugin.

The installed file ``addersr_plugin_hook.pth`` (top of site-packages, written by setup.py for
wheels and editable installs alike) runs ``PTH_LINE`` at every interpreter start. That imports
this module, which imports nothing else, and :func:`install` puts one small finder at the front
of ``sys.meta_path``. The finder acts when, and only when, the top-level ``basicsr`` package is
imported:

1. before basicsr's ``__init__`` runs, the two fixes basicsr 1.4.2 needs to import at all on
   current torchvision/Python (``addersr_plugin/integration/preimport.py``: the
   ``functional_tensor`` alias and ``distutils``). That one file (standard library only) is loaded
   from the installed package on its own, because importing the package itself would import
   basicsr in the middle of basicsr's import;
2. after basicsr has loaded, ``import addersr_plugin``: the remaining compatibility fixes
   (CPU resume, outputs rooted at the working directory, ...) and the registration of the
   AdderSR architectures in basicsr's ``ARCH_REGISTRY``.

So ``python -m basicsr.train -opt FILE`` and ``python basicsr/train.py -opt FILE`` work with the
plugin's architectures without anything importing the plugin first.

``ADDERSR_NO_BASICSR_HOOK=1`` turns the hook off. A failure never stops the interpreter or the
import of basicsr: it becomes an :class:`AdderSRHookWarning`.
"""

import os
import sys

ENV_OFF = "ADDERSR_NO_BASICSR_HOOK"
PTH_NAME = "addersr_plugin_hook.pth"
# The one line of PTH_NAME. site.py executes .pth lines that start with "import"; a missing or
# broken hook module must only warn, so the import runs inside try (as exec'd source).
PTH_LINE = ('import sys; exec("try:\\n import _addersr_plugin_hook\\n _addersr_plugin_hook.install()\\n'
            'except Exception as exc:\\n import warnings\\n'
            ' warnings.warn(\'addersr-plugin: startup hook not installed: %r\' % (exc,))")')


class AdderSRHookWarning(UserWarning):
    """The plugin could not activate itself around ``import basicsr``."""


def _warn(what: str, exc: BaseException) -> None:
    import warnings

    warnings.warn(f"addersr-plugin: {what} ({type(exc).__name__}: {exc}); set {ENV_OFF}=1 to turn the "
                  "hook off", AdderSRHookWarning, stacklevel=3)


def _before_basicsr() -> None:
    """The fixes that must precede basicsr's ``__init__`` (it imports the missing modules)."""
    fixes = sys.modules.get("addersr_plugin.integration.preimport")
    if fixes is None:
        import importlib.util

        spec = importlib.util.find_spec("addersr_plugin")  # finds, does not execute, the package
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the addersr_plugin package is not installed")
        path = os.path.join(list(spec.submodule_search_locations)[0], "integration", "preimport.py")
        fixes_spec = importlib.util.spec_from_file_location("_addersr_plugin_preimport", path)
        fixes = importlib.util.module_from_spec(fixes_spec)
        fixes_spec.loader.exec_module(fixes)
    fixes.alias_functional_tensor()
    fixes.ensure_distutils()


def _after_basicsr() -> None:
    import importlib

    importlib.import_module("addersr_plugin")  # compat.apply() and the arch registration


class _BasicsrLoader:
    """basicsr's own loader, with the plugin's steps before and after its ``exec_module``."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            _before_basicsr()
        except Exception as exc:
            _warn("could not prepare the import of basicsr", exc)
        self._loader.exec_module(module)
        # The module keeps basicsr's own loader (reload, resources, inspect).
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        try:
            _after_basicsr()
        except Exception as exc:
            _warn("could not register its architectures with basicsr", exc)

    def __getattr__(self, name):  # get_code, get_source, is_package, get_resource_reader, ...
        return getattr(self._loader, name)


class BasicsrFinder:
    """``sys.meta_path`` entry that wraps the loader of the top-level ``basicsr`` package."""

    addersr_basicsr_hook = True  # how install() recognises an instance from any copy of this module

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "basicsr":
            return None
        for finder in sys.meta_path:
            if getattr(finder, "addersr_basicsr_hook", False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _BasicsrLoader(spec.loader)
                return spec
        return None

    def invalidate_caches(self):
        pass


def install() -> bool:
    """Put :class:`BasicsrFinder` first in ``sys.meta_path``; True if installed now.

    Not installed when ``ADDERSR_NO_BASICSR_HOOK`` is set (to anything but 0), or twice.
    """
    try:
        if os.environ.get(ENV_OFF, "") not in ("", "0"):
            return False
        if any(getattr(f, "addersr_basicsr_hook", False) for f in sys.meta_path):
            return False
        sys.meta_path.insert(0, BasicsrFinder())
        return True
    except Exception as exc:  # never break an interpreter start
        _warn("startup hook not installed", exc)
        return False

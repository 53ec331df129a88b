"""Fixes that make basicsr 1.4.2 (PyPI) work on current Python/torch/torchvision.

``addersr_plugin/__init__.py`` calls :func:`apply` before anything imports basicsr.
The first two fixes (torchvision alias, distutils) must be in place *before* basicsr is
imported, so this module never imports basicsr at import time; the fixes that replace
basicsr functions import it lazily, after those two. Every fix is idempotent and a no-op
where basicsr already behaves (see ADDERSR.md §4):

* ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17) is aliased.
* ``distutils`` (gone in Python 3.12; ``basicsr.archs.arch_util`` imports ``LooseVersion``)
  is taken from setuptools' vendored copy when the import fails.
* ``basicsr.train.load_resume_state`` is replaced by :func:`load_resume_state`: it does not
  call ``torch.cuda.current_device()`` on CPU machines, ``--auto_resume`` looks where the
  states are actually saved (``opt['path']['training_states']``, rooted where training was
  started, not ``./experiments``), and a state file cut short by a kill is skipped.
* ``torch.distributed`` launch on a machine without GPUs uses gloo instead of dividing by a
  GPU count of zero, and the model is wrapped in DDP without CUDA ``device_ids``.
  Rank-0-only validation runs the bare network, not the DDP wrapper, so it issues no
  collective (BatchNorm buffer broadcast) that the other ranks would never join.
* Two datasets reading the same LMDB in one process (train and val, workers 0) share one
  LMDB environment instead of failing with "already open in this process".

* basicsr's own entry points (``python -m basicsr.train -opt FILE``, ``python -m basicsr.test``
  or ``python .../basicsr/train.py``) derive their output root from basicsr's own file, which
  puts ``experiments/``, ``results/`` and ``tb_logger/`` inside site-packages when basicsr is
  installed there: such a root is replaced by the working directory. A BasicSR checkout keeps
  its own root. Their ``__main__`` copy of ``train.py`` also gets the resume fix above.

The console command (``addersr_plugin.cli``) passes ``os.getcwd()`` to basicsr's pipelines
itself. The installed startup hook (``_addersr_plugin_hook``) runs :func:`apply` as soon as
anything imports basicsr, so the fixes hold for basicsr's own entry points too.
"""

from __future__ import annotations

import collections
import importlib
import os
import sys
import warnings

_FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"
_FUNCTIONAL_TENSOR_NEW = "torchvision.transforms._functional_tensor"
_PATCHED = "__addersr_compat__"  # attribute set on every replacement function


def alias_functional_tensor() -> bool:
    """Alias the module torchvision removed in 0.17 (basicsr's degradations import it).

    Returns True when an alias was installed, False when the real module exists (or was
    already aliased).
    """
    if sys.modules.get(_FUNCTIONAL_TENSOR) is not None:
        return False
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
        return False
    except ImportError:
        pass
    sys.modules[_FUNCTIONAL_TENSOR] = importlib.import_module(_FUNCTIONAL_TENSOR_NEW)
    return True


def ensure_distutils() -> bool:
    """Make ``from distutils.version import LooseVersion`` work (Python >= 3.12 lacks it).

    Returns True when setuptools' vendored distutils had to be installed as ``distutils``.
    """
    try:
        importlib.import_module("distutils.version")
        return False
    except ImportError:
        pass
    try:
        vendored = importlib.import_module("setuptools._distutils")
        vendored_version = importlib.import_module("setuptools._distutils.version")
    except ImportError as exc:  # pragma: no cover - setuptools is a declared dependency
        raise ImportError(
            "basicsr 1.4.2 needs 'distutils' (removed in Python 3.12); "
            "install setuptools: pip install setuptools"
        ) from exc
    sys.modules["distutils"] = vendored
    sys.modules["distutils.version"] = vendored_version
    return True


# ---------------------------------------------------------------- resume (fixes 2 and 3)


def _state_files_newest_first(state_dir: str) -> list[str]:
    if not os.path.isdir(state_dir):
        return []
    iters = []
    for name in os.listdir(state_dir):
        stem, ext = os.path.splitext(name)
        if ext == ".state" and stem.isdigit():
            iters.append(int(stem))
    return [os.path.join(state_dir, f"{it}.state") for it in sorted(iters, reverse=True)]


def _map_location(opt: dict):
    import torch

    if opt.get("num_gpu", 0) != 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    # Optimizer.load_state_dict moves state onto the parameters' device anyway.
    return torch.device("cpu")


def load_resume_state(opt: dict):
    """CPU-safe replacement of ``basicsr.train.load_resume_state``.

    With ``--auto_resume`` it scans ``opt['path']['training_states']`` and takes the newest
    state that loads and whose ``net_g_<iter>.pth`` exists; a file a kill cut short is
    skipped with a warning instead of crashing the resume.
    """
    import torch
    from basicsr.utils.misc import check_resume

    location = _map_location(opt)
    if opt.get("auto_resume"):
        state_dir = opt["path"]["training_states"]
        models_dir = opt["path"].get("models", "")
        for path in _state_files_newest_first(state_dir):
            iteration = os.path.splitext(os.path.basename(path))[0]
            net_path = os.path.join(models_dir, f"net_g_{iteration}.pth")
            if models_dir and not os.path.isfile(net_path):
                warnings.warn(f"skipping resume state {path}: {net_path} is missing", stacklevel=2)
                continue
            try:
                state = torch.load(path, map_location=location)
            except Exception as exc:  # truncated by a kill, or otherwise unreadable
                warnings.warn(f"skipping unreadable resume state {path}: {exc}", stacklevel=2)
                continue
            opt["path"]["resume_state"] = path
            check_resume(opt, state["iter"])
            return state
        return None
    path = opt["path"].get("resume_state")
    if not path:
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume_state does not exist: {path}")
    state = torch.load(path, map_location=location)
    check_resume(opt, state["iter"])
    return state


setattr(load_resume_state, _PATCHED, True)


def patch_resume() -> bool:
    """Install :func:`load_resume_state` into ``basicsr.train``; True if it was installed."""
    train_mod = importlib.import_module("basicsr.train")
    if getattr(train_mod.load_resume_state, _PATCHED, False):
        return False
    train_mod.load_resume_state = load_resume_state
    return True


# ---------------------------------------------------------------- DDP on CPU (fix 8)


def _cpu_only() -> bool:
    import torch

    return not torch.cuda.is_available() or torch.cuda.device_count() == 0


def patch_distributed() -> bool:
    """Let ``--launcher pytorch`` run on machines without GPUs (gloo, DDP without device_ids).

    On GPU machines both replacements call basicsr's originals unchanged.
    """
    dist_util = importlib.import_module("basicsr.utils.dist_util")
    base_model = importlib.import_module("basicsr.models.base_model")
    if getattr(dist_util._init_dist_pytorch, _PATCHED, False):
        return False
    original_init = dist_util._init_dist_pytorch
    original_to_device = base_model.BaseModel.model_to_device

    def _init_dist_pytorch(backend, **kwargs):
        if not _cpu_only():
            return original_init(backend, **kwargs)
        import torch.distributed as dist

        # basicsr asks for nccl and divides the rank by the GPU count (0 here).
        dist.init_process_group(backend="gloo", **kwargs)

    def model_to_device(self, net):
        if self.opt.get("dist") and self.device.type == "cpu":
            from torch.nn.parallel import DistributedDataParallel

            return DistributedDataParallel(
                net.to(self.device),
                find_unused_parameters=self.opt.get("find_unused_parameters", False),
            )
        return original_to_device(self, net)

    sr_model = importlib.import_module("basicsr.models.sr_model")
    original_test = sr_model.SRModel.test

    def test(self):
        # Validation runs on rank 0 only; through the DDP wrapper its forward would broadcast
        # BatchNorm buffers (AdderSR units all have BN), a collective the other ranks never
        # join: gloo fails with "Connection closed by peer", NCCL hangs. Use the bare module.
        wrapped = self.net_g
        self.net_g = self.get_bare_model(wrapped)
        try:
            return original_test(self)
        finally:
            self.net_g = wrapped

    for fn in (_init_dist_pytorch, model_to_device, test):
        setattr(fn, _PATCHED, True)
    dist_util._init_dist_pytorch = _init_dist_pytorch
    base_model.BaseModel.model_to_device = model_to_device
    sr_model.SRModel.test = test
    return True


# ---------------------------------------------------------------- one LMDB, two datasets


_LMDB_ENVS: dict = {}


def _shared_lmdb_open(path: str, **kwargs):
    """``lmdb.open`` that hands out the environment already open for ``path`` in this process.

    py-lmdb refuses to open one environment twice in a process ("already open in this
    process"), which basicsr does when train and val (or two val sets) read the same LMDB
    with ``num_worker_per_gpu: 0``. Keyed by pid so forked dataloader workers open their own.
    """
    import lmdb

    key = (os.getpid(), os.path.realpath(path), tuple(sorted(kwargs.items())))
    env = _LMDB_ENVS.get(key)
    if env is None:
        env = _LMDB_ENVS[key] = lmdb.open(path, **kwargs)
    return env


def patch_lmdb_backend() -> bool:
    """Let several basicsr ``LmdbBackend`` clients read the same LMDB in one process."""
    file_client = importlib.import_module("basicsr.utils.file_client")
    backend = file_client.LmdbBackend
    if getattr(backend.__init__, _PATCHED, False):
        return False

    def __init__(self, db_paths, client_keys="default", readonly=True, lock=False, readahead=False, **kwargs):
        if isinstance(client_keys, str):
            client_keys = [client_keys]
        self.db_paths = [str(v) for v in db_paths] if isinstance(db_paths, list) else [str(db_paths)]
        assert len(client_keys) == len(self.db_paths), (
            "client_keys and db_paths should have the same length, "
            f"but received {len(client_keys)} and {len(self.db_paths)}.")
        self._client = {
            client: _shared_lmdb_open(path, readonly=readonly, lock=lock, readahead=readahead, **kwargs)
            for client, path in zip(client_keys, self.db_paths)
        }

    setattr(__init__, _PATCHED, True)
    backend.__init__ = __init__
    return True


# ---------------------------------------------------------------- basicsr's own entry points


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
        if not getattr(main.load_resume_state, _PATCHED, False):
            main.load_resume_state = load_resume_state


def patch_entry_root() -> bool:
    """Root basicsr's own entry points at the working directory when basicsr is installed in
    site-packages (see the module docstring); True if installed now."""
    options = importlib.import_module("basicsr.utils.options")
    if getattr(options.parse_options, _PATCHED, False):
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

    setattr(parse_options, _PATCHED, True)
    options.parse_options = parse_options
    # The already imported pipelines bound the original name at their import.
    for name in ("basicsr.train", "basicsr.test"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "parse_options", None) is original:
            module.parse_options = parse_options
    return True


def apply() -> None:
    """Apply every compatibility fix; safe to call any number of times."""
    alias_functional_tensor()
    ensure_distutils()
    # Only now may basicsr be imported.
    patch_resume()
    patch_distributed()
    patch_lmdb_backend()
    patch_entry_root()

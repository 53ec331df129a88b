"""Build of addersr-plugin: the Python package and its C++/CUDA extension ``addersr_plugin._C``.

    pip install --no-build-isolation -e .          # CPU kernels; CUDA too when a GPU toolkit is usable
    FORCE_CUDA=1 pip install --no-build-isolation -e .   # compile the CUDA kernels without a GPU

Environment: ``FORCE_CUDA=1`` builds the CUDA kernels even without a visible GPU (needs nvcc and
``CUDA_HOME``); ``ADDERSR_CPU_ONLY=1`` never builds them; ``TORCH_CUDA_ARCH_LIST`` picks the GPU
architectures (default "8.0;9.0"); ``MAX_JOBS`` limits parallel compile jobs.
"""

import glob
import importlib.util
import os
import platform

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as exc:  # pragma: no cover - a build without torch cannot make the extension
    raise SystemExit(
        "addersr-plugin builds a PyTorch extension: install torch first, then "
        "`pip install --no-build-isolation -e .`") from exc

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _want_cuda() -> bool:
    if _flag("ADDERSR_CPU_ONLY"):
        return False
    if CUDA_HOME is None:
        if _flag("FORCE_CUDA"):
            raise SystemExit("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME (e.g. /usr/local/cuda-13.0)")
        return False
    return _flag("FORCE_CUDA") or torch.cuda.is_available()


def _nvidia_include_dirs():
    """Headers shipped in the nvidia-* wheels (cu13 layout) that nvcc may not know about."""
    spec = importlib.util.find_spec("nvidia")
    dirs = []
    for base in (spec.submodule_search_locations or []) if spec else []:
        dirs += sorted(glob.glob(os.path.join(base, "cu*", "include")))
    return dirs


def _cxx_flags():
    flags = ["-O3", "-std=c++20", "-fopenmp", "-Wno-unknown-pragmas"]
    if platform.machine().lower() in ("x86_64", "amd64"):
        # The micro-kernels use at::vec in its AVX2 flavour; addersr_plugin.ops refuses to load the
        # extension on a CPU without AVX2/FMA, falling back to the reference instead of crashing.
        flags += ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    return flags


def _extensions():
    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    cuda = _want_cuda()
    kwargs = dict(
        name="addersr_plugin._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_compile_args={"cxx": _cxx_flags()},
        extra_link_args=["-fopenmp"],
        py_limited_api=False,
    )
    if not cuda:
        return [CppExtension(**kwargs)]
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    kwargs["sources"] = sources + sorted(glob.glob("csrc/cuda/*.cu"))
    kwargs["include_dirs"] = kwargs["include_dirs"] + _nvidia_include_dirs()
    kwargs["extra_compile_args"]["nvcc"] = [
        "-O3", "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo",
        "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
        "-U__CUDA_NO_BFLOAT16_CONVERSIONS__", "-U__CUDA_NO_HALF2_OPERATORS__",
    ]
    kwargs["define_macros"] = [("ADDERSR_WITH_CUDA", "1")]
    return [CUDAExtension(**kwargs)]


def _hook_pth_line() -> tuple:
    """The startup line of ``addersr_plugin_hook.pth``, defined next to the hook it runs."""
    spec = importlib.util.spec_from_file_location("_addersr_plugin_hook_for_setup",
                                                  os.path.join(ROOT, "_addersr_plugin_hook.py"))
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)  # defines names only; installs nothing
    return hook.PTH_NAME, hook.PTH_LINE + "\n"


class BuildPyWithStartupHook(build_py):
    """build_py that also writes ``addersr_plugin_hook.pth`` to the top of site-packages.

    The .pth makes basicsr's own entry points find the plugin (see _addersr_plugin_hook.py).
    A wheel gets it from build_lib. An editable install (PEP 660) builds into a scratch
    build_lib and packs only what is in ``install``'s ``install_lib`` (its unpacked wheel), so
    there it is written to that folder.
    """

    def run(self):
        super().run()
        name, line = _hook_pth_line()
        target = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, name), "w", encoding="utf-8") as f:
            f.write(line)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not self.editable_mode:
            outputs.append(os.path.join(self.build_lib, _hook_pth_line()[0]))
        return outputs


setup(
    packages=find_packages(include=["addersr_plugin", "addersr_plugin.*", "addersr", "addersr.*"]),
    py_modules=["_addersr_plugin_hook"],
    package_data={"addersr_plugin": ["py.typed"], "addersr_plugin.recipes": ["*.yml"],
                  "addersr_plugin.pretrained": ["*.pth", "*.json"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True), "build_py": BuildPyWithStartupHook},
    zip_safe=False,
)

# addersr-plugin: `make demo` and `make test` work on a fresh machine (they install what they need).
#
#   make install   venv in $(VENV) + torch + basicsr 1.4.2 (--no-build-isolation) + this package
#                  with its C++ (and, where nvcc exists, CUDA) kernels; rebuilt only when csrc/ changes
#   make test      the test suite (pytest)
#   make demo      build a demo set from scikit-image photos, train AdderEDSR and EDSR x2 on CPU,
#                  report Y-PSNR/SSIM vs bicubic and write a side-by-side PNG
#   make bench     adder conv vs F.conv2d ratios (see docs/benchmarks.md)

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda-13.0 /usr/local/cuda))
# Compile the CUDA kernels whenever a toolkit is present, GPU or not (set FORCE_CUDA=0 to skip).
FORCE_CUDA ?= $(if $(CUDA_HOME),1,0)
MAX_JOBS ?= 2
PYTEST_ARGS ?=

EXT_SOURCES := setup.py pyproject.toml $(wildcard csrc/*.cpp csrc/*.h csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.h)

.PHONY: install test demo bench clean

$(VENV)/.deps-installed:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel
	$(VPY) -m pip install -q $(TORCH_SPEC)
	$(VPY) -m pip install -q --no-build-isolation basicsr==1.4.2
	$(VPY) -m pip install -q ninja mmengine scikit-image tensorboard lmdb pyyaml tqdm pytest hypothesis expecttest
	touch $@

$(VENV)/.package-built: $(VENV)/.deps-installed $(EXT_SOURCES)
	CUDA_HOME=$(CUDA_HOME) FORCE_CUDA=$(FORCE_CUDA) MAX_JOBS=$(MAX_JOBS) \
		$(VPY) -m pip install -q --no-build-isolation --no-deps -e .
	$(VPY) -c "import addersr_plugin.ops as o; s = o.extension_status(); print('addersr_plugin extension:', s); assert s['extension_loaded'], s"
	touch $@

install: $(VENV)/.package-built

test: install
	$(VPY) -m pytest -q -ra $(PYTEST_ARGS)

demo: install
	$(VPY) -m addersr_plugin.demo

bench: install
	$(VPY) benchmarks/bench_adder_conv.py

clean:
	rm -rf build *.egg-info addersr_plugin/_C*.so

#!/usr/bin/env bash
# GPU checks of the adder convolution, in one call of under 8 minutes on a bare GPU machine.
#
#   bash tests/gpu/run_gpu_checks.sh              # on the GPU machine, from the repo root
#   bash tests/gpu/run_gpu_checks.sh --wheelhouse # on the dev machine first: fills .whl/
#
# On the GPU machine it (1) records the GPU and software, (2) builds the extension in place
# with the CUDA kernels (sm_90), (3) runs tests/ops/test_ops_cuda.py and tests/ops/test_ops.py,
# (4) runs benchmarks/bench_adder_conv.py --device cuda (ratios vs cuDNN conv, TF32 off
# and on), (5) benchmarks/bench_autocast_cuda.py (the fp16/bf16 autocast kernels against the
# fp32 adder and cuDNN fp16, EDSR body layer). All output is also written to
# $OUT/gpu_checks.log when $OUT is set, and each benchmark's JSON to $OUT.
#
# The lent GPU machines have torch but no network and no basicsr/mmengine, which
# `import addersr_plugin` needs: `--wheelhouse` downloads/builds those pure-Python
# wheels into .whl/ here (an ignored folder: pass carry=[".whl"] to the device run), and
# the check installs them from there with --no-index. Exit status 0 only when every
# section passed.
set -u -o pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
WHEELHOUSE="$ROOT/.whl"
# What `import addersr_plugin` needs beyond the GPU image (all pure Python), and
# expecttest for torch.library.opcheck.
EXTRA_PACKAGES=(addict termcolor yapf mmengine expecttest)

make_wheelhouse() {
  local py=${PYTHON:-"$ROOT/.venv/bin/python"}
  mkdir -p "$WHEELHOUSE"
  # basicsr 1.4.2 is an sdist only: build its wheel against the local torch (no isolation).
  "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELHOUSE" basicsr==1.4.2 || return 1
  # The versions this venv runs with, where it has them.
  local specs
  specs=$("$py" -c '
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(name)
' "${EXTRA_PACKAGES[@]}") || return 1
  # shellcheck disable=SC2086  # one spec per word
  "$py" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELHOUSE" $specs || return 1
  ls -l "$WHEELHOUSE"
  echo "wheelhouse ready: pass carry=[\".whl\"] to the device run"
}

PY=${PYTHON:-python3}
START=$(date +%s)
STATUS=0
section() { printf '\n==================== %s [t+%ss] ====================\n' "$*" "$(( $(date +%s) - START ))"; }
fail() { echo "FAILED: $*"; STATUS=1; }
# Every step gets at most its own cap and never more than what is left of the whole
# budget (DEADLINE_S, default 470 s), so one call stays under 8 minutes.
DEADLINE_S=${DEADLINE_S:-470}
budget() {
  local left=$(( DEADLINE_S - ($(date +%s) - START) ))
  [ "$left" -lt 10 ] && left=10
  [ "$1" -lt "$left" ] && left=$1
  echo "$left"
}

main() {
  section "machine"
  date -u
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || fail "nvidia-smi"
  else
    echo "nvidia-smi: not found"
  fi
  if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "$PY cannot import torch: this check needs a machine with PyTorch (a CUDA build) installed."
    return 1
  fi
  "$PY" -c '
import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda)
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
p = torch.cuda.get_device_properties(0)
print(f"device: {p.name}, {p.multi_processor_count} SMs, capability {p.major}.{p.minor}, "
      f"{p.total_memory / 2**30:.0f} GiB")
' || { fail "torch sees no CUDA device"; return 1; }
  command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -n 2

  section "python dependencies"
  local missing
  missing=$("$PY" -c '
import importlib.util
need = ["basicsr", "mmengine", "addict", "yapf", "termcolor", "expecttest", "hypothesis", "pytest", "yaml",
        "cv2", "skimage", "tqdm", "ninja"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
')
  if [ -n "$missing" ]; then
    echo "missing: $missing"
    if ls "$WHEELHOUSE"/*.whl >/dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps "$WHEELHOUSE"/*.whl || fail "installing the wheels of .whl/"
    else
      echo "no wheels in .whl/: run 'bash tests/gpu/run_gpu_checks.sh --wheelhouse' on the dev machine" \
           "and carry .whl"
    fi
  else
    echo "all present"
  fi
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

  section "build the extension with CUDA (sm_90)"
  rm -f addersr_plugin/_C*.so
  if ! FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" MAX_JOBS=16 timeout "$(budget 300)" "$PY" setup.py -q build_ext --inplace; then
    fail "build"
    return 1
  fi
  ls -l addersr_plugin/_C*.so
  "$PY" -c '
import torch, addersr_plugin.ops as o
s = o.extension_status()
print("extension:", s)
assert s["extension_loaded"] and "CUDA" not in s["reference_backends"], s
' || { fail "the compiled CUDA kernels do not serve CUDA tensors"; return 1; }

  section "tests: CUDA kernels vs the float64 reference"
  timeout "$(budget 180)" "$PY" -m pytest -q -ra -p no:cacheprovider tests/ops/test_ops_cuda.py || fail "test_ops_cuda.py"

  section "tests: the op on CPU"
  timeout "$(budget 120)" "$PY" -m pytest -q -ra -p no:cacheprovider tests/ops/test_ops.py || fail "test_ops.py"

  section "benchmark vs cuDNN conv (TF32 off and on)"
  timeout "$(budget 150)" "$PY" benchmarks/bench_adder_conv.py --device cuda --markdown --reference-budget 5 \
    ${OUT:+--json "$OUT/bench_cuda_$(date -u +%Y-%m-%d_%H%M%S).json"} || fail "benchmark"  # one file per run

  section "benchmark: autocast fp16/bf16 (packed fp16 kernels) vs the fp32 adder and cuDNN fp16"
  timeout "$(budget 90)" "$PY" benchmarks/bench_autocast_cuda.py \
    ${OUT:+--json "$OUT/bench_autocast_cuda_$(date -u +%Y-%m-%d_%H%M%S).json"} || fail "autocast benchmark"

  section "done"
  if [ "$STATUS" = 0 ]; then echo "ALL GPU CHECKS PASSED"; else echo "SOME GPU CHECKS FAILED"; fi
  return "$STATUS"
}

if [ "${1:-}" = "--wheelhouse" ]; then
  make_wheelhouse
  exit $?
fi
LOG=/dev/null
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  LOG="$OUT/gpu_checks.log"
fi
main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"

#!/usr/bin/env bash
# The quality study's long schedule on a lent GPU: trains options/study/long/*.yml (10000
# iterations each, 5x the study's) side by side on one GPU and sends back what the study
# needs to score them here: every training log (held-out PSNR every 1000 iterations) and the
# newest model of each run.
#
#   bash benchmarks/quality/run_long_gpu.sh [SECONDS]   # on the GPU machine, from the repo root
#
# SECONDS (default 330) caps all the trainings together: a session's device time is short, so a
# run that has not finished by then is stopped and its log and last checkpoint (every 1000
# iterations) come back as a partial curve. Needs the CUDA extension built in place (run it
# after tests/gpu/run_gpu_checks.sh in the same call, or it builds it), the wheels of .whl/
# (carry ".whl") and the study's photos (carry datasets/photos/{train_HR,heldout,manifest.json};
# the x2 sub-image LMDBs are cut from them here). Results: $OUT/long/long_runs.tgz; unpack it and
# `python benchmarks/quality/run_study.py --import-long DIR --device "GPU NAME"` files the runs
# under experiments/ and the archive, scores them here and writes the report.
#
# 2026-11-28 (NVIDIA H200, 16 cores): the five 32-feature runs took 2-4 min each side by side;
# long64_ours_nopower_lr10 reached 5000 of 10000 iterations in the time that was left.
set -u -o pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
LIMIT=${1:-330}
DEST=${OUT:-$ROOT/long_gpu_out}/long
mkdir -p "$DEST"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=1

missing=$("$PY" -c '
import importlib.util
print(" ".join(m for m in ["basicsr", "mmengine", "addict", "yapf", "termcolor", "lmdb"]
               if importlib.util.find_spec(m) is None))')
if [ -n "$missing" ]; then
  echo "installing from .whl/: $missing"
  "$PY" -m pip install -q --no-index --no-deps "$ROOT"/.whl/*.whl || { echo "FAILED: wheels"; exit 1; }
fi
for d in train_HR heldout; do
  [ -e "datasets/photos/$d" ] || { echo "FAILED: datasets/photos/$d missing (carry it)"; exit 1; }
done
if ! "$PY" -c 'import torch, addersr_plugin.ops as o; import sys; s = o.extension_status(); sys.exit(not (s["extension_loaded"] and "CUDA" not in s["reference_backends"]))'; then
  echo "building the extension with CUDA"
  rm -f addersr_plugin/_C*.so
  FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="9.0" MAX_JOBS=16 "$PY" setup.py -q build_ext --inplace || { echo "FAILED: build"; exit 1; }
fi
if [ ! -e datasets/photos/train_LR_bicubic_X2_sub.lmdb ]; then
  # the sub-image LMDBs are 5x the size of the photos they are cut from: the device's carry limit
  # (64 MiB) takes the photos, and the LMDBs are cut here by the same code as `addersr data photos`
  echo "cutting the x2 training LMDBs from datasets/photos/train_HR"
  "$PY" -c '
import os
from addersr_plugin.data.div2k import prepare_div2k
out = "datasets/photos"
# the scales of `addersr data photos` (their common multiple sets the crop grid), so the
# sub-images are the ones the CPU study trains on
for p in prepare_div2k(os.path.join(out, "train_HR"), out, scales=[2, 3, 4], crop=192, step=96,
                       workers=os.cpu_count() or 1).values():
    os.replace(p, os.path.join(out, os.path.basename(p).replace("DIV2K_", "")))
' > "$DEST/lmdb.log" 2>&1 || { tail -n 20 "$DEST/lmdb.log"; echo "FAILED: LMDBs"; exit 1; }
fi
"$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'

START=$(date +%s)
names=()
# Two waves: the runs that need a trained teacher (LONG_DEPENDS of make_study_options.py) start
# when the first wave is done. Each wave shares the machine's cores among its loaders.
waves=$("$PY" -c '
import sys
sys.path.insert(0, "benchmarks/quality")
import make_study_options as s
print(" ".join(n for n in s.LONG if n not in s.LONG_DEPENDS))
print(" ".join(n for n in s.LONG if n in s.LONG_DEPENDS))')
while read -r wave; do
  [ -z "$wave" ] && continue
  read -ra runs <<< "$wave"
  workers=$(( ($(nproc) - ${#runs[@]}) / ${#runs[@]} ))
  [ "$workers" -lt 1 ] && workers=1
  left=$(( LIMIT - ($(date +%s) - START) ))
  [ "$left" -lt 30 ] && { echo "no time left for: ${runs[*]}"; break; }
  pids=()
  for name in "${runs[@]}"; do
    names+=("$name")
    mkdir -p "$DEST/$name"
    timeout "$left" "$PY" -m addersr_plugin.cli train -opt "options/study/long/$name.yml" \
      --force_yml "datasets:train:num_worker_per_gpu=$workers" > "$DEST/$name/stdout.log" 2>&1 &
    pids+=($!)
    echo "started $name (pid ${pids[-1]}, $workers loader workers, cap ${left}s)"
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    echo "${runs[$i]}: exit $? after $(( $(date +%s) - START ))s"
  done
done <<< "$waves"

# What comes back: logs and the newest model of each run, in one archive (the device returns a
# limited number of files).
for name in "${names[@]}"; do
  run="experiments/study_$name"
  [ -d "$run" ] || { echo "$name: no run folder"; continue; }
  latest=$(ls -t "$run"/models/net_g_*.pth 2>/dev/null | head -n 1)
  echo "== $name: $(basename "${latest:-no model}")"
  grep -h "# psnr" "$run"/train_*.log | tail -n 12
done
tar czf "$DEST/long_runs.tgz" -C experiments $(for name in "${names[@]}"; do
  run="study_$name"
  ls experiments/$run/train_*.log 2>/dev/null | sed 's|^experiments/||'
  ls -t experiments/$run/models/net_g_*.pth 2>/dev/null | head -n 1 | sed 's|^experiments/||'
done) && echo "wrote $DEST/long_runs.tgz: unpack it and run benchmarks/quality/run_study.py --import-long DIR"

#!/usr/bin/env bash
# Builds, on the CPU machine, what tools/device/run.sh runs on the lent GPU machine (whose
# host CPU is an Intel Sapphire Rapids with AMX): every step's modules into build/dev/, the one
# folder a `run` call carries (with .whl/, the IREE runtime wheel). Steps as run.sh's:
#
#   tools/device/build.sh gpu-numerics gemm models cpu-numerics cpu-attention cpu-seed cpu-kernel
#
# GPU_CASES (default: every GPU numerics case) picks gpu_numerics' cases (prefixes or patterns); GNUM
# names the folder (default gnum; run.sh runs every build/dev/gnum*/, so split builds fit a carry).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
D=build/dev
mkdir -p $D
for step in "$@"; do
  case $step in
    gpu-numerics)  rm -rf $D/${GNUM:-gnum}; $PY test/tools/gpu_numerics.py build $D/${GNUM:-gnum} cuda:sm_90 "${GPU_CASES:-}" ;;
    gemm)          ;;   # bench/gemm.py compiles with Triton on the GPU machine itself
    models)        rm -rf $D/models; $PY bench/models.py build --target cuda:sm_90 --out $D/models ${MODEL_VARIANTS:+--variants $MODEL_VARIANTS} ${MODEL_NAMES:+--models $MODEL_NAMES} ;;
    cpu-numerics)  rm -rf $D/cpu_numerics; $PY test/tools/cpu_numerics.py build $D/cpu_numerics cpu:sapphirerapids ;;
    cpu-attention) rm -rf $D/cpu_attention; $PY bench/attention.py build --target cpu:sapphirerapids --dtypes f32,bf16 --out $D/cpu_attention ;;
    cpu-seed)      for d in f32 bf16; do rm -rf $D/seed_$d; $PY bench/seed.py build --target cpu:sapphirerapids --dtype $d --out $D/seed_$d; done ;;
    cpu-kernel)    rm -rf $D/fa_libs; $PY tools/kernels/cpu_fa_bench.py --isa avx512,avx512amx --lib-dir $D/fa_libs --build-only ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
# the commit the modules come from, for the results files (the GPU machine's copy has other history)
echo "$(git rev-parse --short HEAD)$(git status --porcelain -- compiler passes python bench ':!bench/results' | grep -q . && echo +changes)" > $D/COMMIT
du -sh $D

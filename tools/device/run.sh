#!/usr/bin/env bash
# Runs, on the lent GPU machine, the steps tools/device/build.sh built, in the order given:
#
#   run(command="bash tools/device/run.sh gpu-numerics gemm models", carry=[".whl", "build/dev"])
#
# Each step has its own time limit (STEP_SECONDS, default 150; STEP_SECONDS_<step> for one step) and writes unbuffered into
# /tmp/res/<step>.log, so a step that hangs or runs long loses nothing it printed and the next
# step still runs; everything comes back as one file, $OUT/results.tgz (a `run` returns at
# most 8 files). The tail of each log is printed for the call's output. STOP_ON_FAIL=1 skips
# the steps after one that failed (a kernel that hangs in the numerics would hang the benchmark).
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD/python:$PWD PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
# results name the commit build.sh built from (this copy's git history is not the checkout's)
[ -f build/dev/COMMIT ] && export FLASHLIFT_COMMIT="$(cat build/dev/COMMIT)"
D=build/dev
R=/tmp/res
rm -rf $R; mkdir -p $R
T=${STEP_SECONDS:-150}
{ nvidia-smi --query-gpu=name --format=csv,noheader; lscpu | grep -E "Model name|^CPU\(s\)|Thread"; echo "built from ${FLASHLIFT_COMMIT:-unknown}"; } > $R/machine.txt 2>&1
for step in "$@"; do
  case $step in
    gpu-numerics)  cmd="for g in $D/gnum*/; do python3 test/tools/gpu_numerics.py run \$g; done" ;;   # (split to fit a carry)
    gemm)          cmd="python3 bench/gemm.py ${GEMM_ARGS:-} --out $R/gemm.md" ;;
    models)        cmd="python3 bench/models.py run --modules $D/models --peers ${MODEL_PEERS:-eager,compile,cudagraphs} ${MODEL_NAMES:+--models $MODEL_NAMES} --out-dir $R" ;;
    profile)       cmd="python3 bench/profile_models.py run --modules $D/models --peers ${MODEL_PEERS:-cudagraphs} ${MODEL_NAMES:+--models $MODEL_NAMES} --trace $R/trace.json && python3 bench/profile_models.py report --trace $R/trace.json > $R/profile.md && rm $R/trace.json" ;;
    cpu-numerics)  cmd="python3 test/tools/cpu_numerics.py run $D/cpu_numerics" ;;
    cpu-attention) cmd="python3 bench/attention.py run --modules $D/cpu_attention --threads ${CPU_THREADS:-2} --peers ${CPU_PEERS:-compile,sdpa,sdpa_f32} --out-dir $R" ;;
    cpu-seed)      cmd="for d in f32 bf16; do python3 bench/seed.py run --modules $D/seed_\$d --out-dir $R/seed_\$d; done" ;;
    cpu-kernel)    cmd="python3 tools/kernels/cpu_fa_bench.py --isa avx512,avx512amx --dtypes bf16 --lib-dir $D/fa_libs --threads ${CPU_THREADS:-2}" ;;
    *) echo "unknown step $step"; continue ;;
  esac
  limit_var=STEP_SECONDS_${step//-/_}   # e.g. STEP_SECONDS_gemm=240: one step's own limit
  start=$(date +%s)
  timeout "${!limit_var:-$T}" bash -c "$cmd" > $R/$step.log 2>&1
  rc=$?
  echo "== $step: rc $rc$([ $rc = 124 ] && echo ' (timed out)') in $(( $(date +%s) - start )) s"
  grep -v '^\s*$' $R/$step.log | tail -n 8
  tar czf $OUT/results.tgz -C /tmp res   # after every step: a call cut short keeps what finished
  if [ $rc != 0 ] && [ -n "${STOP_ON_FAIL:-}" ]; then echo "== stopped after $step (STOP_ON_FAIL)"; break; fi
done

#!/usr/bin/env bash
# The accelerator measurements of the README, as one script (device time is short):
#   1. SW kernel value+gradient, T = 64 and 128, 64 and 256 pairs (benchmarks/sw_kernel.py);
#   2. the Pouring-sized train step in float32 and bfloat16 (ResNet-50 conv4c, 224 px, 2 videos
#      x 2 views x 64 frames), with the loss's (SW's) share of the step, and fed by the real
#      input pipeline against one batch in memory (ratio; benchmarks/train_step.py);
#   3. the compiled step's memory per trunk setting and the setting chosen (benchmarks/memory.py);
#   4. evaluation throughput (benchmarks/evaluate.py embed_eval) and input clips/s
#      (benchmarks/data.py, host vs device augmentation).
# Usage, from the repository root on the accelerator machine:
#   bash benchmarks/accelerator.sh [OUTDIR [PART...]]  # OUTDIR: benchmarks/results/accelerator
# PARTs (default: all, in this order; about 17 minutes on an H200 in all, so split them over
# device calls of at most 10 minutes): sw_kernel input input_bf16 train_step_f32 train_step_bf16
# evaluate data memory (input, input_bf16: the step fed by the input pipeline against the same
# step on a batch in memory). Limits below are today's H200 times plus a margin (2026-12-04:
# JAX's first GPU compile of the Pouring step takes about 40 s, each memory setting another 40 s).
# Missing pure-Python packages (e.g. ml_collections) are installed from ./.whl if present:
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl ml_collections==1.1.0
# Every part has its own time limit; a failing part does not stop the others. The JSON files
# each benchmark writes are copied to OUTDIR with the logs (the device tool returns at most 8
# files: tar OUTDIR).
set -uo pipefail
OUTDIR=${1:-${OUT:-benchmarks/results/accelerator}}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! $PY -c "import ml_collections" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/lac_site \
    .whl/*.whl
  export PYTHONPATH=/tmp/lac_site${PYTHONPATH:+:$PYTHONPATH}
fi
part() {  # part NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date -u +%FT%TZ), limit ${limit}s): $*" | tee -a "$OUTDIR/summary.log"
  timeout "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
  local rc=$?
  echo "=== $name: exit $rc" | tee -a "$OUTDIR/summary.log"
  tail -n 25 "$OUTDIR/$name.log"
  return $rc  # callers copy a part's JSON only when it succeeded (never an earlier run's file)
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  $PY -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
} 2>&1 | tee "$OUTDIR/machine.log"
R=benchmarks/results
PARTS=${*:2}
PARTS=${PARTS:-sw_kernel input input_bf16 train_step_f32 train_step_bf16 evaluate data memory}
for p in $PARTS; do
  case $p in
    sw_kernel) part sw_kernel 90 $PY benchmarks/sw_kernel.py --sizes 64 128 --batches 64 256 \
                 --skip-baseline --cpu-loops off --rounds 5 ;;
    input) part input 200 $PY benchmarks/train_step.py --dtype=float32 --input_only \
             --input_steps=50 &&
           cp $R/train_step_input.json "$OUTDIR/train_step_input_float32.json" ;;
    input_bf16) part input_bf16 200 $PY benchmarks/train_step.py --dtype=bfloat16 --input_only \
                  --input_steps=50 &&
                cp $R/train_step_input.json "$OUTDIR/train_step_input_bfloat16.json" ;;
    train_step_f32) part train_step_f32 150 $PY benchmarks/train_step.py --dtype=float32 \
                      --pouring_steps=10 --input_steps=0 &&
                    cp $R/train_step.json "$OUTDIR/train_step_float32.json" ;;
    train_step_bf16) part train_step_bf16 150 $PY benchmarks/train_step.py --dtype=bfloat16 \
                       --pouring_steps=10 --input_steps=0 &&
                     cp $R/train_step.json "$OUTDIR/train_step_bfloat16.json" ;;
    evaluate) part evaluate 60 $PY benchmarks/evaluate.py --sections embed_eval &&
              cp $R/evaluate.json "$OUTDIR/" ;;
    data) part data 60 $PY benchmarks/data.py --quick &&
          cp $R/data.json "$OUTDIR/" ;;
    memory) part memory 240 $PY benchmarks/memory.py --dtypes float32,bfloat16 --chunks 0,64 &&
            cp $R/memory.json "$OUTDIR/" ;;
    *) echo "unknown part: $p (parts: sw_kernel input input_bf16 train_step_f32 train_step_bf16" \
         "evaluate data memory)" >&2; exit 2 ;;
  esac
done
echo "done: $OUTDIR"

#!/usr/bin/env bash
# The one prepared run for a GPU machine (the device tool), for the GPU issue: the GPU-relevant
# tests, then the GPU rows of the benchmark, then many models at once on the GPU (issue 22).
# Its image has jax (CUDA), flax, optax, torch (CUDA), pytest and hypothesis, so the checkout
# runs with PYTHONPATH=. and nothing is installed.
#   bash benchmarks/gpu_check.sh tests bench  # the first two stages: 9 minutes at most, one call
#   bash benchmarks/gpu_check.sh many         # the third, 3.5 minutes at most, a second call
#   bash benchmarks/gpu_check.sh              # all three: over one 10-minute device call
# writes device.txt, tests.log, bench.log, results.jsonl, many.log and many_gpu.jsonl to $OUT
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
STAGES=" ${*:-tests bench many} "
mkdir -p "$OUT"
{ nvidia-smi -L; python -c "import jax, flax, torch; print(jax.devices(), 'jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__)"; } > "$OUT/device.txt" 2>&1
if [[ $STAGES == *" tests "* ]]; then
  timeout 300 python -m pytest -x -q -p no:cacheprovider tests/test_cells.py tests/test_rnn.py \
      tests/test_layers.py tests/test_precision.py tests/test_cudnn.py tests/test_interop_torch.py \
      tests/test_interop_flax.py 2>&1 | tee "$OUT/tests.log" | tail -5
fi
if [[ $STAGES == *" bench "* ]]; then
  timeout 240 python -m lstm_jax.bench --gpu --reps 10 --out "$OUT" 2>&1 | tee "$OUT/bench.log"
fi
if [[ $STAGES == *" many "* ]]; then
  timeout 200 python -m lstm_jax.bench --many --gpu --reps 10 --out "$OUT" 2>&1 | tee "$OUT/many.log"
fi

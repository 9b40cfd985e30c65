#!/usr/bin/env bash
# The one prepared run for a GPU machine (the device tool), for the GPU issue: the GPU-relevant
# tests, then the GPU rows of the benchmark. Its image has jax (CUDA), flax, optax, torch (CUDA),
# pytest and hypothesis, so the checkout runs with PYTHONPATH=. and nothing is installed.
#   bash benchmarks/gpu_check.sh          # writes device.txt, tests.log, bench.log, results.jsonl to $OUT
set -uo pipefail
export PYTHONPATH=. PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
{ nvidia-smi -L; python -c "import jax, flax, torch; print(jax.devices(), 'jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__)"; } > "$OUT/device.txt" 2>&1
timeout 300 python -m pytest -x -q -p no:cacheprovider tests/test_cells.py tests/test_rnn.py \
    tests/test_layers.py tests/test_precision.py tests/test_cudnn.py tests/test_interop_torch.py \
    tests/test_interop_flax.py 2>&1 | tee "$OUT/tests.log" | tail -5
timeout 240 python -m lstm_jax.bench --gpu --reps 10 --out "$OUT" 2>&1 | tee "$OUT/bench.log"

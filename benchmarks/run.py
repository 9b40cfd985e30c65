"""Run the benchmark suite and regenerate benchmarks/RESULTS.md (same as `lstm-jax bench`).

    python benchmarks/run.py [--reps 10] [--quick] [--out benchmarks]
"""

import sys
from pathlib import Path

from lstm_jax import bench

if __name__ == "__main__":
    sys.exit(bench.main(default_out=Path(__file__).resolve().parent))

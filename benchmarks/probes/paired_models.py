"""Probe: N models at once against the N one after the other, in paired rounds.

The adding model (LSTM or GRU, H = 64, B = 64, T = 100, Adam), seeds 0..N-1, on the
first CPU device, malloc as ``lstm-jax train --seeds`` sets it: ``bench.many_contenders``'
``sequential``, ``vmapped`` (``jax.vmap`` of the one-model step) and ``at once``
(``over_models``, what ``--seeds`` runs). Each round times the three one after the other,
the order alternating; each way's ratio is the median, over the rounds, of its time over
the sequential time of the same round (``bench.paired_ratio``), with its quartiles.
``--cpu`` times CPU time (``time.process_time``) instead of wall-clock time: run it
pinned to one core (``taskset -c 1``) for the work alone. XLA flags go in XLA_FLAGS.

Run: python benchmarks/probes/paired_models.py CELL N MODE ROUNDS [--cpu]
     (CELL lstm or gru, MODE forward or train)
"""

import statistics
import sys
import time

from lstm_jax import _machine

_machine.keep_freed_memory()

import jax  # noqa: E402

from lstm_jax import bench  # noqa: E402

cell, models, mode, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
clock = time.process_time if "--cpu" in sys.argv[5:] else time.perf_counter
contenders = bench.many_contenders(bench.many_config(cell), models, jax.devices()[:1])[mode]
runs = {way: contenders[way] for way in ("sequential", "vmapped", "at once")}
for run in runs.values():
    run()
times = {way: [] for way in runs}
for index in range(rounds):
    for way in list(runs)[:: 1 if index % 2 == 0 else -1]:
        start = clock()
        runs[way]()
        times[way].append(1e3 * (clock() - start))
sequential = statistics.median(times["sequential"])
print(f"{cell} N={models} {mode}, {'CPU' if clock is time.process_time else 'wall'} time, "
      f"{rounds} rounds: sequential {sequential:.1f} ms")
for way in ("vmapped", "at once"):
    q1, median, q3 = bench.paired_ratio(times[way], times["sequential"])
    print(f"  {way} / sequential: {median:.3f} ({q1:.3f}-{q3:.3f}); "
          f"ratio of the medians {statistics.median(times[way]) / sequential:.3f}")

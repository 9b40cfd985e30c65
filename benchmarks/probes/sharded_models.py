"""Probe: N training steps one after the other, vmapped, and sharded over 2 CPU devices.

The adding model of `lstm-jax bench --many` (``bench.many_contenders``), in one process
with ``jax_num_cpu_devices=2``: wall-clock and CPU time (``time.process_time``) per
step of all N models, medians of interleaved rounds, so that settings can be compared
on what the sharded step costs beyond the sequential ones (NOTES.md, "Many models at
once", finding 6). XLA_FLAGS are read from the environment as usual;
``NO_ASYNC_DISPATCH=1`` turns jax's asynchronous CPU dispatch off.
Run: python benchmarks/probes/sharded_models.py [CELL] [N] [ROUNDS]
"""

import os
import statistics
import sys
import time


def main(cell: str = "lstm", models: int = 2, rounds: int = 12) -> None:
    from lstm_jax import _machine

    _machine.keep_freed_memory()  # as `lstm-jax train --seeds` runs, before jax starts
    import jax

    jax.config.update("jax_num_cpu_devices", 2)
    if os.environ.get("NO_ASYNC_DISPATCH"):
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    from lstm_jax import bench

    runs = bench.many_contenders(bench.many_config(cell), models, jax.devices())["train"]
    wall = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for round_ in range(rounds + 1):  # round 0 compiles
        order = list(runs.items())
        for name, run in order if round_ % 2 else order[::-1]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            run()
            if round_:
                wall[name].append(1e3 * (time.perf_counter() - start_wall))
                cpu[name].append(1e3 * (time.process_time() - start_cpu))
    sequential = statistics.median(wall["sequential"])
    for name in runs:
        ms = statistics.median(wall[name])
        print(f"{cell} N={models} {name:10s} wall {ms:6.1f} ms  cpu "
              f"{statistics.median(cpu[name]):6.1f} ms  wall / sequential {ms / sequential:.2f}")


if __name__ == "__main__":
    main(*(kind(arg) for kind, arg in zip((str, int, int), sys.argv[1:])))

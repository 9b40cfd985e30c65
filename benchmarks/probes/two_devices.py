"""Probe: two models at once in one process (two CPU devices) against two processes.

What the sharded step of `lstm-jax bench --many` can reach on this machine. The adding
model's one-model training step (``bench.many_contenders``, LSTM or GRU, H = 64, B = 64,
T = 100), each ratio against twice that step alone, so 0.5 is two cores' worth:
- ``in one process``: a process with ``jax_num_cpu_devices=2`` times the one-model step
  alone and the sharded step of 2 models (``make_train_step(models=True, mesh=...)``, one
  model per device), interleaved; ratio sharded / (2 x alone).
- ``two processes``: one process times the step alone for a fixed window; then two
  processes, started together (a shared wall-clock start), time it for the same window
  at once; ratio: their mean step time / (2 x the unpinned one alone), and in brackets
  over the one alone in the same setting. ``pinned``: each of the two (and the one
  alone) pinned to a core of its own (``taskset``).
Rounds alternate the three, medians over the rounds. Both sides set malloc as
`lstm-jax train --seeds` does. Run: python benchmarks/probes/two_devices.py [CELL] [ROUNDS]

``python benchmarks/probes/two_devices.py toy`` times toy loops instead, 2000 steps of
one small program on each of two CPU devices of one process, at once against one after
the other: an elementwise op on (64, 64) (launch-bound), a (64, 64) @ (64, 256) dot,
and an LSTM step of that size (a dot and one fused gate computation).
"""

import json
import os
import statistics
import subprocess
import sys
import time

WINDOW_S = 4.0  # each timed window, seconds


def _one_model(cell: str):
    from lstm_jax import bench

    return bench.many_contenders(bench.many_config(cell), 1, [__import__("jax").devices()[0]])[
        "train"]["sequential"]


def worker(cell: str, start: float) -> None:
    """A process of its own: warm up the one-model step, wait for ``start`` (time.time()),
    then step for WINDOW_S and print the median step in ms as JSON."""
    from lstm_jax import _machine

    _machine.keep_freed_memory()
    run = _one_model(cell)
    for _ in range(5):
        run()
    while time.time() < start:
        time.sleep(0.005)
    times, began = [], time.perf_counter()
    while time.perf_counter() - began < WINDOW_S:
        t = time.perf_counter()
        run()
        times.append(1e3 * (time.perf_counter() - t))
    print(json.dumps({"ms": statistics.median(times)}), flush=True)


def processes(cell: str, count: int, pinned: bool) -> float:
    """Mean over ``count`` processes, started together, of their median step (ms)."""
    start = time.time() + 25  # their imports and compilation fit in it on this machine
    code = f"import sys; sys.argv = ['x']; from benchmarks.probes import two_devices as p; " \
           f"p.worker({cell!r}, {start})"
    procs = [subprocess.Popen(["taskset", "-c", str(core)] * pinned + [sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True) for core in range(count)]
    return statistics.mean(json.loads(p.communicate()[0].splitlines()[-1])["ms"] for p in procs)


def in_one_process(cell: str) -> tuple[float, float]:
    """(one-model step alone, sharded step of 2 models) in ms, in a fresh process with two
    CPU devices, interleaved, medians."""
    code = f"""
import json, statistics, time
from lstm_jax import _machine
_machine.keep_freed_memory()
import jax
jax.config.update("jax_num_cpu_devices", 2)
from lstm_jax import bench
one = bench.many_contenders(bench.many_config({cell!r}), 1, jax.devices()[:1])["train"]["sequential"]
two = bench.many_contenders(bench.many_config({cell!r}), 2, jax.devices())["train"]["sharded"]
runs = {{"alone": one, "sharded": two}}
print(json.dumps(bench.interleaved_ms(runs, 40)))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.splitlines()[-1])
    return out["alone"], out["sharded"]


def main(cell: str = "lstm", rounds: int = 3) -> None:
    ms = {name: [] for name in ("alone", "alone, pinned", "two processes",
                                "two processes, pinned", "in one process: alone",
                                "in one process: sharded")}
    for round_ in range(rounds):
        alone, sharded = in_one_process(cell)
        ms["in one process: alone"].append(alone)
        ms["in one process: sharded"].append(sharded)
        for pinned, suffix in ((False, ""), (True, ", pinned")):
            ms["alone" + suffix].append(processes(cell, 1, pinned))
            ms["two processes" + suffix].append(processes(cell, 2, pinned))
        print(f"round {round_} (ms a step): "
              + ", ".join(f"{k} {v[-1]:.1f}" for k, v in ms.items()), flush=True)
    med = {k: statistics.median(v) for k, v in ms.items()}
    print(f"{cell}, 2 models, medians of {rounds} rounds, each step time of 2 models at once "
          f"over twice one model's alone (0.5 = two cores' worth):")
    print(f"  in one process, sharded: {med['in one process: sharded'] / (2 * med['in one process: alone']):.2f}")
    for suffix in ("", ", pinned"):
        print(f"  two processes{suffix}: {med['two processes' + suffix] / (2 * med['alone']):.2f}"
              f" (over the one alone{suffix}: "
              f"{med['two processes' + suffix] / (2 * med['alone' + suffix]):.2f})")


def toy_loops(steps: int = 2000, reps: int = 12) -> None:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_num_cpu_devices", 2)
    w = jnp.full((64, 256), 0.01)

    def lstm_step(_, state):
        i, f, g, o = jnp.split(state[:, :64] @ w, 4, axis=-1)
        c = jax.nn.sigmoid(f) * state[:, 64:] + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jnp.concatenate([jax.nn.sigmoid(o) * jnp.tanh(c), c], axis=-1)

    bodies = {"elementwise": (lambda _, x: jnp.tanh(x * 1.0001 + 0.1), (64, 64)),
              "dot": (lambda _, x: jnp.tanh(x @ w)[:, :64], (64, 64)),
              "lstm step": (lstm_step, (64, 128))}
    for name, (body, shape) in bodies.items():
        loop = jax.jit(lambda x, body=body: jax.lax.fori_loop(0, steps, body, x))
        xs = [jax.device_put(jnp.ones(shape), device) for device in jax.devices()[:2]]
        runs = {"one after the other": lambda: [jax.block_until_ready(loop(x)) for x in xs],
                "at once": lambda: jax.block_until_ready([loop(x) for x in xs])}
        from lstm_jax import bench

        ms = bench.interleaved_ms(runs, reps)
        print(f"{name:12s} a step {1e3 * ms['one after the other'] / 2 / steps:6.2f} us alone; "
              f"two devices at once / one after the other "
              f"{ms['at once'] / ms['one after the other']:.2f}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    if sys.argv[1:] == ["toy"]:
        toy_loops()
    else:
        main(*(kind(arg) for kind, arg in zip((str, int), sys.argv[1:])))

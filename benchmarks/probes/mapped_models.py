"""Probe: N models' training steps as one program, vmapped against mapped (lax.map).

The adding model (LSTM or GRU, H = 64, B = 64, T = 100, Adam), N = 2 and 4 models,
seeds 0..N-1. Against N sequential calls of the one-model step on the first CPU device:
- ``vmapped``: ``make_train_step(models=True)`` (``jax.vmap``) on the first device;
- ``mapped``: the one-model step under ``jax.lax.map`` over the model axis, one program
  that runs the models one after another, on the first device;
- ``sharded``: ``vmapped`` with the model axis split over a CPU device per core
  (``ModelParallel``), as ``lstm-jax train --seeds`` runs it;
- ``shard_mapped``: ``mapped`` inside ``jax.shard_map`` over those devices, each device
  mapping its own models.
Interleaved, medians, in one process, malloc as ``lstm-jax train --seeds`` sets it.
Run: python benchmarks/probes/mapped_models.py [reps]
"""

import os
import sys

from lstm_jax import _machine

_machine.keep_freed_memory()
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", len(os.sched_getaffinity(0)))
import jax.numpy as jnp  # noqa: E402
from jax.sharding import PartitionSpec  # noqa: E402

from lstm_jax import bench  # noqa: E402
from lstm_jax.train import loop, sharding  # noqa: E402
from lstm_jax.train.steps import init_state, make_train_step  # noqa: E402


def contenders(cell: str, models: int) -> dict:
    config = bench.many_config(cell)
    prepared = loop.prepare(config, experiment="adding")
    keys = [loop.run_keys(seed) for seed in range(models)]
    first = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    put = lambda tree: jax.device_put(tree, first)  # noqa: E731
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
    states = [put(init_state(prepared.model, prepared.optimizer, k.init)) for k in keys]
    batches = [put(prepared.task.train_batch(k.data, 0, config.batch_size)) for k in keys]
    one = make_train_step(prepared.model, prepared.task, prepared.optimizer)
    vmapped = make_train_step(prepared.model, prepared.task, prepared.optimizer, models=True)

    def each(states, batches):
        return jax.lax.map(lambda args: one(*args), (states, batches))

    split = sharding.ModelParallel(models)
    spec = PartitionSpec("models")
    shard_mapped = jax.shard_map(each, mesh=split.mesh, in_specs=(spec, spec),
                                 out_specs=(spec, spec), check_vma=False)
    ways = {"vmapped": (vmapped, put), "mapped": (jax.jit(each, donate_argnums=0), put),
            "sharded": (vmapped, split.place_state),
            "shard_mapped": (jax.jit(shard_mapped, donate_argnums=0), split.place_state)}
    held = {way: [place(stack(states)), place(stack(batches))] for way, (_, place) in ways.items()}

    def sequential():
        metrics = []
        for k in range(models):
            states[k], m = one(states[k], batches[k])
            metrics.append(m)
        return jax.block_until_ready(metrics)

    def together(way):
        step = ways[way][0]

        def run():
            held[way][0], metrics = step(*held[way])
            return jax.block_until_ready(metrics)
        return run

    return {"sequential": sequential, **{way: together(way) for way in ways}}


def main(reps: int) -> None:
    print(f"{len(jax.devices())} CPU devices; {_machine.describe(_machine.cpu())}")
    for cell in ("lstm", "gru"):
        for models in (2, 4):
            ms = bench.interleaved_ms(contenders(cell, models), reps)
            print(f"{cell} x{models} train: " + ", ".join(
                f"{way} {v:.1f} ms (x{v / ms['sequential']:.2f})" for way, v in ms.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)

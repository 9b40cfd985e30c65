"""Probe: page faults per LSTM training step against the step's temporary memory.

XLA allocates a program's temporary buffer at every call. glibc serves allocations
over 32 MiB (its largest mmap threshold) with a fresh mmap, so every page of such a
buffer faults on first touch, at every call; smaller buffers come back from the heap
already mapped. Each line prints XLA's temporary memory, the minor page faults per
call and the ms per call.
Run: python benchmarks/probes/page_faults.py
"""

import resource
import statistics
import time

import jax
import jax.numpy as jnp

import lstm_jax as lj

SHAPES = [(24, 128, 64, 128), (32, 128, 64, 128), (64, 100, 128, 256)]  # (B, T, I, H)


def main():
    for B, T, I, H in SHAPES:
        layer = lj.rnn(lj.lstm(H))
        params = layer.init(jax.random.key(0), I)
        xs = jax.random.normal(jax.random.key(1), (B, T, I))
        grad = jax.jit(jax.grad(lambda p, x, layer=layer: jnp.mean(layer.apply(p, x)[1] ** 2)))
        temp = grad.lower(params, xs).compile().memory_analysis().temp_size_in_bytes
        for _ in range(3):
            jax.block_until_ready(grad(params, xs))
        faults, times = [], []
        for _ in range(10):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            jax.block_until_ready(grad(params, xs))
            times.append(time.perf_counter() - start)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(f"{(B, T, I, H)}: temp {temp / 2**20:6.1f} MiB, {statistics.median(faults):7.0f} minor "
              f"faults per call, {1e3 * statistics.median(times):6.1f} ms per call")


if __name__ == "__main__":
    main()

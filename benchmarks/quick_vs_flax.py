"""Quick speed check: lstm_jax LSTM layer against flax nn.RNN(OptimizedLSTMCell).

One process, interleaved, median of repeated runs after warm-up; forward and
forward+backward of mean(ys**2). Prints one row per (shape, hoist) with ms and the
ratio lstm_jax / flax. Usage: python benchmarks/quick_vs_flax.py [--reps 10]
(The full harness against PyTorch too is benchmarks' own issue.)
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

import lstm_jax as lj

SHAPES = [(32, 128, 64, 128), (1, 512, 64, 256), (64, 100, 128, 256), (16, 256, 256, 512)]


def median_ms(fn, reps: int) -> float:
    jax.block_until_ready(fn())
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
    for B, T, I, H in SHAPES:
        xs = jax.random.normal(jax.random.key(0), (B, T, I))
        flax_model = nn.RNN(nn.OptimizedLSTMCell(H))
        flax_params = flax_model.init(jax.random.key(1), xs)
        flax_fwd = jax.jit(flax_model.apply)
        flax_grad = jax.jit(jax.grad(lambda p, x: jnp.mean(flax_model.apply(p, x) ** 2)))
        variants = {}
        for hoist in (False, True):
            layer = lj.rnn(lj.lstm(H), hoist=hoist)
            params = layer.init(jax.random.key(1), I)
            fwd = jax.jit(lambda p, x, layer=layer: layer.apply(p, x)[1])
            grad = jax.jit(jax.grad(lambda p, x, layer=layer: jnp.mean(layer.apply(p, x)[1] ** 2)))
            variants[hoist] = (params, fwd, grad)
        results = {"flax": [], False: [], True: []}
        for _ in range(3):  # interleave the contenders
            results["flax"].append((median_ms(lambda: flax_fwd(flax_params, xs), args.reps),
                                    median_ms(lambda: flax_grad(flax_params, xs), args.reps)))
            for hoist, (params, fwd, grad) in variants.items():
                results[hoist].append((median_ms(lambda: fwd(params, xs), args.reps),
                                       median_ms(lambda: grad(params, xs), args.reps)))
        best = {k: tuple(min(r[i] for r in v) for i in range(2)) for k, v in results.items()}
        ff, fb = best["flax"]
        for hoist in (False, True):
            lf, lb = best[hoist]
            print(f"{(B, T, I, H)} hoist={hoist!s:5} fwd {lf:7.1f} ms (flax {ff:7.1f}, x{lf / ff:.2f})"
                  f" | fwd+bwd {lb:7.1f} ms (flax {fb:7.1f}, x{lb / fb:.2f})", flush=True)


if __name__ == "__main__":
    main()

"""Probe: cost per scan step of an elementwise fusion that reads slices of one buffer.

XLA CPU, (B, H) = (32, 128), T = 128 steps. Each line times a scan whose body is the
named expression of x (32, 512) (a step's gate pre-activations) and the carry h.
Run: python benchmarks/probes/fusion_slices.py
"""

import jax
import jax.numpy as jnp

from lstm_jax.bench import median_ms

T, B, H = 128, 32, 128
S = jax.nn.sigmoid


def us_per_step(fn, *args):
    return 1e3 * median_ms(lambda: jax.block_until_ready(fn(*args)), reps=20) / T


def main():
    g = jax.random.normal(jax.random.key(0), (T, B, 4 * H))
    h0 = jnp.zeros((B, H))
    bodies = {
        "S(x[:, H:2H]) * h": lambda h, x: S(x[:, H:2 * H]) * h,
        "S(x[:, H:2H]) + S(x[:, H:2H]) * h  (one slice, twice)": lambda h, x: S(x[:, H:2 * H]) * (1 + h),
        "S(x[:, H:2H]) * h + S(x[:, :H])  (two slices)": lambda h, x: S(x[:, H:2 * H]) * h + S(x[:, :H]),
        "tanh(x[:, H:2H]) + tanh(x[:, :H])": lambda h, x: jnp.tanh(x[:, H:2 * H]) + jnp.tanh(x[:, :H]),
        "x[:, H:2H] * h + x[:, :H]  (no transcendental)": lambda h, x: x[:, H:2 * H] * h + x[:, :H],
    }
    for name, body in bodies.items():
        run = jax.jit(lambda g, body=body: jax.lax.scan(lambda h, x: (body(h, x), None), h0, g)[0])
        print(f"{us_per_step(run, g):6.1f} us/step  {name}")
    a, b = g[..., :H], g[..., H:2 * H]
    run = jax.jit(lambda a, b: jax.lax.scan(lambda h, x: (S(x[1]) * h + S(x[0]), None), h0, (a, b))[0])
    print(f"{us_per_step(run, a, b):6.1f} us/step  S(b) * h + S(a), a and b separate arrays")


if __name__ == "__main__":
    main()

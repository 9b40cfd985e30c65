"""Probe: one recurrent matmul h @ W per scan step, XLA CPU against eager PyTorch.

Run: python benchmarks/probes/step_dot.py
"""

import jax
import jax.numpy as jnp
import torch

from lstm_jax.bench import median_ms

T = 128


def main():
    for m, k, n in [(1, 128, 512), (32, 128, 512), (32, 128, 128), (64, 256, 1024), (16, 512, 2048)]:
        w = jax.random.normal(jax.random.key(0), (k, n)) / k**0.5
        loop = jax.jit(lambda h, w=w, k=k: jax.lax.scan(
            lambda h, _: ((h @ w)[:, :k] * 0.5, None), h, None, length=T)[0])
        h0 = jnp.zeros((m, k))
        jax_s = 1e-3 * median_ms(lambda: jax.block_until_ready(loop(h0))) / T
        wt, ht = torch.randn(k, n), torch.zeros(m, k)

        def torch_loop():
            h = ht
            for _ in range(T):
                h = (h @ wt)[:, :k] * 0.5
            return h

        torch_s = 1e-3 * median_ms(torch_loop) / T
        flops = 2 * m * k * n
        print(f"{(m, k, n)}: XLA scan {1e6 * jax_s:6.1f} us/step ({flops / jax_s / 1e9:5.1f} GFLOP/s)"
              f" | torch eager loop {1e6 * torch_s:6.1f} us/step ({flops / torch_s / 1e9:5.1f} GFLOP/s)")


if __name__ == "__main__":
    main()

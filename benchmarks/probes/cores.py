"""Probe: LSTM forward on one core and on every core, lstm_jax against PyTorch.

XLA's CPU code runs each step's small matmul on about one core, while PyTorch's
``nn.LSTM`` (oneDNN's fused RNN primitive) spreads every step over all cores. Each
measurement runs in a fresh process pinned to the cores named, so the thread pools of
jax and torch are sized to them.
Run: python benchmarks/probes/cores.py
"""

import os
import subprocess
import sys

SHAPES = [(32, 128, 64, 128), (16, 256, 256, 512)]  # (B, T, I, H)


def measure():
    import jax
    import torch

    import lstm_jax as lj
    from lstm_jax.bench import median_ms

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    parts = []
    for B, T, I, H in SHAPES:
        layer = lj.rnn(lj.lstm(H))
        params = layer.init(jax.random.key(0), I)
        xs = jax.random.normal(jax.random.key(1), (B, T, I))
        forward = jax.jit(lambda p, x, layer=layer: layer.apply(p, x)[1])
        module, x = torch.nn.LSTM(I, H, batch_first=True), torch.randn(B, T, I)
        with torch.no_grad():
            ours = median_ms(lambda: jax.block_until_ready(forward(params, xs)))
            theirs = median_ms(lambda: module(x))
        parts.append(f"{(B, T, I, H)}: lstm_jax {ours:6.1f} ms, torch {theirs:6.1f} ms")
    print(f"{len(os.sched_getaffinity(0))} core(s): " + " | ".join(parts))


def main():
    if len(sys.argv) > 1:
        os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(",")})
        measure()
        return
    cores = sorted(os.sched_getaffinity(0))
    for chosen in ([cores[0]], cores):
        subprocess.run([sys.executable, __file__, ",".join(map(str, chosen))], check=True)


if __name__ == "__main__":
    main()

"""Probe: one LSTM layer over 1 or 2 CPU "devices", the batch split between them.

``jax_num_cpu_devices`` (set before jax starts) makes XLA run one program per device,
each on its own thread; with the batch sharded over a Mesh, two small per-step matmuls
run at once instead of one after the other.
Run: python benchmarks/probes/cpu_devices.py
"""

import subprocess
import sys

SHAPES = [(32, 128, 64, 128), (64, 100, 128, 256), (16, 256, 256, 512)]  # (B, T, I, H)


def measure(devices: int):
    import jax

    jax.config.update("jax_num_cpu_devices", devices)
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import lstm_jax as lj
    from lstm_jax.bench import median_ms

    mesh = Mesh(jax.devices(), ("data",))
    for B, T, I, H in SHAPES:
        layer = lj.rnn(lj.lstm(H))
        params = jax.device_put(layer.init(jax.random.key(0), I), NamedSharding(mesh, PartitionSpec()))
        xs = jax.device_put(jax.random.normal(jax.random.key(1), (B, T, I)),
                            NamedSharding(mesh, PartitionSpec("data")))
        forward = jax.jit(lambda p, x, layer=layer: layer.apply(p, x)[1])
        grad = jax.jit(jax.grad(lambda p, x, layer=layer: jnp.mean(layer.apply(p, x)[1] ** 2)))
        print(f"{devices} device(s) {(B, T, I, H)}: forward "
              f"{median_ms(lambda: jax.block_until_ready(forward(params, xs))):6.1f} ms, training "
              f"{median_ms(lambda: jax.block_until_ready(grad(params, xs))):6.1f} ms")


def main():
    if len(sys.argv) > 1:
        measure(int(sys.argv[1]))
        return
    for devices in (1, 2):
        subprocess.run([sys.executable, __file__, str(devices)], check=True)


if __name__ == "__main__":
    main()

"""The quick demo: an LSTM learns the adding problem with plain optax, on CPU in minutes.

Intentionally kept short: it shows the functional API end to end. Run it with
``make demo`` or ``lstm-jax demo``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax

import lstm_jax as lj
from lstm_jax.tasks.adding import BASELINE_MSE, adding_batch


def run(steps: int = 2000, length: int = 100, batch_size: int = 64, hidden_size: int = 64,
        seed: int = 0, log_every: int = 100) -> float:
    """Train and return the test MSE on 1,000 fresh sequences."""
    layer = lj.rnn(lj.lstm(hidden_size))
    key_init, key_head, key_data = jax.random.split(jax.random.key(seed), 3)
    params = {
        "lstm": layer.init(key_init, input_size=2),
        "head": jax.random.normal(key_head, (hidden_size,)) / hidden_size**0.5,
        "bias": jnp.ones(()),
    }

    def predict(params, xs):  # xs (B, T, 2) -> (B,)
        carry, _ = layer.apply(params["lstm"], xs)
        return carry.h @ params["head"] + params["bias"]

    def loss_fn(params, xs, targets):
        return jnp.mean(jnp.square(predict(params, xs) - targets))

    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, step):
        xs, targets = adding_batch(jax.random.fold_in(key_data, step), batch_size, length)
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    print(f"adding problem, T={length}: LSTM(H={hidden_size}), {steps} steps of batch {batch_size}")
    start, recent = time.perf_counter(), []
    for step in range(steps):
        params, opt_state, loss = train_step(params, opt_state, step)
        recent.append(loss)
        if (step + 1) % log_every == 0:
            mean_loss = float(jnp.mean(jnp.stack(recent)))
            recent = []
            rate = (step + 1) / (time.perf_counter() - start)
            print(f"step {step + 1:5d}  train MSE {mean_loss:.4f}  ({rate:.0f} steps/s)", flush=True)
    xs, targets = adding_batch(jax.random.key(seed + 1), 1000, length)
    test_mse = float(loss_fn(params, xs, targets))
    print(f"test MSE {test_mse:.4f}  (always predicting 1.0: {BASELINE_MSE:.3f})"
          f"  in {time.perf_counter() - start:.0f} s")
    return test_mse


if __name__ == "__main__":
    run()

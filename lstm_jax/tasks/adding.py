"""The adding problem (Hochreiter & Schmidhuber, 1997, experiment 4).

Each sequence has two channels: values drawn uniformly from [0, 1), and a marker that
is 1 at exactly two positions, one in each half of the sequence, and 0 elsewhere. The
target is the sum of the two marked values. Predicting the mean, 1.0, gives a mean
squared error of Var(u1 + u2) = 2/12 ≈ 0.167, the baseline a model must beat.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.tasks import losses
from lstm_jax.tasks.base import Batch, Task, generated

BASELINE_MSE = 1.0 / 6.0


def adding_batch(key: jax.Array, batch_size: int, length: int):
    """One batch of the adding problem.

    Args:
      key: PRNG key; the batch is a pure function of it.
      batch_size: B.
      length: T, at least 2.

    Returns:
      ``(xs, targets)``: xs (B, T, 2) float32 and targets (B,) float32.

    >>> xs, ys = adding_batch(jax.random.key(0), 4, 10)
    >>> xs.shape, ys.shape, jnp.sum(xs[..., 1], axis=1).tolist()
    ((4, 10, 2), (4,), [2.0, 2.0, 2.0, 2.0])
    """
    if length < 2:
        raise ValueError(f"`length` must be at least 2, got {length}")
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_values, (batch_size, length))
    first = jax.random.randint(k_first, (batch_size,), 0, half)
    second = jax.random.randint(k_second, (batch_size,), half, length)
    positions = jnp.arange(length)[None, :]
    marker = (positions == first[:, None]) | (positions == second[:, None])
    xs = jnp.stack([values, marker.astype(values.dtype)], axis=-1)
    targets = jnp.sum(values * marker, axis=1)
    return xs, targets


def adding_task(length: int = 100) -> Task:
    """The adding problem as a ``Task``: regress the sum from the last step, MSE loss.

    >>> task = adding_task(length=20)
    >>> batch = task.train_batch(jax.random.key(0), 0, 8)
    >>> batch.xs.shape, batch.targets.shape, task.baselines
    ((8, 20, 2), (8,), {'mse': 0.16666666666666666})
    """
    length = _checks.positive_int("length", length)

    def make_batch(key, batch_size):
        return Batch(*adding_batch(key, batch_size, length))

    loss, metrics = losses.loss_and_metrics("mse")
    return generated("adding", make_batch, input_size=2, output_size=1, readout="last",
                     loss=loss, metrics=metrics, baselines={"mse": BASELINE_MSE},
                     baseline_note="always predicting 1.0, the mean of the target")

"""The copying memory task (Arjovsky, Shah & Bengio, 2016, section 4.1).

A sequence of ``delay + 2·length`` steps: ``length`` symbols drawn from 1..``symbols``,
then ``delay - 1`` blanks (0), a delimiter (``symbols + 1``) and ``length`` more blanks.
The target is blank everywhere except the last ``length`` steps, which must repeat the
first ``length`` symbols. A model that remembers nothing predicts blanks, then guesses
uniformly, for a cross entropy of ``length·ln(symbols) / (delay + 2·length)`` nats per
step: 10·ln 8 / 120 = 0.1733 at the paper's delay of 100.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.tasks import losses
from lstm_jax.tasks.base import Batch, Task, generated


def copy_baseline(delay: int, length: int = 10, symbols: int = 8) -> float:
    """Cross entropy per step, in nats, of the best model that remembers nothing."""
    return length * math.log(symbols) / (delay + 2 * length)


def copy_batch(key: jax.Array, batch_size: int, delay: int, length: int = 10, symbols: int = 8):
    """One batch: ``(xs, targets)``, both (B, delay + 2·length) int32 token ids.

    >>> xs, ys = copy_batch(jax.random.key(0), 2, delay=5, length=3)
    >>> xs.shape, bool(jnp.all(ys[:, -3:] == xs[:, :3])), xs[0, 3:].tolist()
    ((2, 11), True, [0, 0, 0, 0, 9, 0, 0, 0])
    """
    if delay < 1:
        raise ValueError(f"`delay` must be at least 1, got {delay}")
    data = jax.random.randint(key, (batch_size, length), 1, symbols + 1)
    blanks = jnp.zeros((batch_size, delay - 1), jnp.int32)
    delimiter = jnp.full((batch_size, 1), symbols + 1, jnp.int32)
    tail = jnp.zeros((batch_size, length), jnp.int32)
    xs = jnp.concatenate([data, blanks, delimiter, tail], axis=1)
    targets = jnp.concatenate([jnp.zeros((batch_size, delay + length), jnp.int32), data], axis=1)
    return xs, targets


def copy_task(delay: int = 100, length: int = 10, symbols: int = 8) -> Task:
    """The copying memory task as a ``Task``: token inputs, a prediction at every step.

    Metrics: ``loss`` (cross entropy per step, nats) and ``recall``, the accuracy on the
    ``length`` symbols to be repeated (1/``symbols`` by chance).

    >>> task = copy_task(delay=20)
    >>> task.input_size, task.output_size, task.readout, round(task.baselines["loss"], 4)
    (10, 10, 'every', 0.5199)
    """
    delay, length, symbols = (_checks.positive_int(n, v) for n, v in
                              (("delay", delay), ("length", length), ("symbols", symbols)))

    def make_batch(key, batch_size):
        return Batch(*copy_batch(key, batch_size, delay, length, symbols))

    def metrics(predictions, batch):
        recalled = jnp.argmax(predictions[:, -length:], axis=-1) == batch.targets[:, -length:]
        return {"recall": jnp.mean(recalled.astype(jnp.float32))}

    return generated("copy", make_batch, input_size=symbols + 2, output_size=symbols + 2,
                     readout="every", loss=losses.cross_entropy, metrics=metrics,
                     baselines={"loss": copy_baseline(delay, length, symbols),
                                "recall": 1.0 / symbols}, tokens=True,
                     baseline_note="a model that remembers nothing: blanks where they are "
                                   "certain, a uniform guess of each symbol")

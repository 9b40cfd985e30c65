"""Selective copying (Gu & Dao, 2023): recall tokens scattered among noise, in order.

A sequence of ``length + tokens`` steps: in the first ``length`` steps, ``tokens`` data
symbols (drawn from 1..``symbols``) stand at random positions, in order, among noise
(0); then ``tokens`` markers (``symbols + 1``), at which the model must say the data
symbols in the order they came. Unlike the copying task (``copy.py``) the gaps between
the symbols vary, so a model must choose what to keep by its content, not its time.
The loss and the accuracy count the answer steps only; a guess scores 1/``symbols``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.tasks import losses
from lstm_jax.tasks.base import Batch, Task, generated


def selective_copy_batch(key: jax.Array, batch_size: int, length: int, tokens: int = 16,
                         symbols: int = 16):
    """One batch: ``(xs, targets)``, both (B, length + tokens) int32 token ids.

    targets are 0 except at the last ``tokens`` steps, which hold the data symbols in
    the order they stand in xs.

    >>> xs, ys = selective_copy_batch(jax.random.key(0), 2, length=10, tokens=3, symbols=4)
    >>> xs.shape, xs[0, 10:].tolist(), xs[0, :10][xs[0, :10] > 0].tolist() == ys[0, 10:].tolist()
    ((2, 13), [5, 5, 5], True)
    """
    if not 1 <= tokens <= length:
        raise ValueError(f"`tokens` must be between 1 and `length` ({length}), got {tokens}")
    k_places, k_data = jax.random.split(key)
    # each row's `tokens` positions: the first of a random permutation of 0..length-1, sorted
    places = jnp.sort(jnp.argsort(jax.random.uniform(k_places, (batch_size, length)), axis=1)
                      [:, :tokens], axis=1)
    data = jax.random.randint(k_data, (batch_size, tokens), 1, symbols + 1)
    rows = jnp.arange(batch_size)[:, None]
    context = jnp.zeros((batch_size, length), jnp.int32).at[rows, places].set(data)
    markers = jnp.full((batch_size, tokens), symbols + 1, jnp.int32)
    xs = jnp.concatenate([context, markers], axis=1)
    targets = jnp.concatenate([jnp.zeros((batch_size, length), jnp.int32), data], axis=1)
    return xs, targets


def selective_copy_task(length: int = 64, tokens: int = 16, symbols: int = 16) -> Task:
    """Selective copying as a ``Task``: token inputs, predictions at every step.

    Loss: cross entropy on the ``tokens`` answer steps (nats). Metric: ``accuracy``,
    the fraction of the data symbols recalled at their place (1/``symbols`` by chance).

    >>> task = selective_copy_task(length=32, tokens=4, symbols=8)
    >>> task.input_size, task.output_size, task.readout, task.baselines["accuracy"]
    (10, 10, 'every', 0.125)
    """
    length, tokens, symbols = (_checks.positive_int(n, v) for n, v in
                               (("length", length), ("tokens", tokens), ("symbols", symbols)))
    if tokens > length:
        raise ValueError(f"`tokens` must be between 1 and `length` ({length}), got {tokens}")

    def make_batch(key, batch_size):
        return Batch(*selective_copy_batch(key, batch_size, length, tokens, symbols))

    def answers(predictions, batch):
        """The answer steps alone: predictions (B, tokens, O) and a batch of them."""
        return predictions[:, -tokens:], batch._replace(xs=batch.xs[:, -tokens:],
                                                        targets=batch.targets[:, -tokens:])

    def loss(predictions, batch):
        return losses.cross_entropy(*answers(predictions, batch))

    def metrics(predictions, batch):
        return {"accuracy": losses.accuracy(*answers(predictions, batch))}

    return generated("selective_copy", make_batch, input_size=symbols + 2,
                     output_size=symbols + 2, readout="every", loss=loss, metrics=metrics,
                     baselines={"accuracy": 1.0 / symbols}, tokens=True,
                     baseline_note=f"a uniform guess of each of the {symbols} symbols")

"""Parity of a bit string read one bit per step: state tracking, and length generalisation.

Training sequences have lengths drawn uniformly from 1..``length`` (padded to
``length``); the target is the parity of the bits (1 when the number of ones is odd).
The evaluation set is padded to ``4·length`` and mixes three groups of sequences in
every batch, so one evaluation measures all three: lengths 1..``length`` as in training
(``accuracy``), exactly ``2·length`` (``accuracy_2L``) and exactly ``4·length``
(``accuracy_long``). Chance is 0.5 at every length.

A recurrence whose state is multiplied by coefficients in [0, 1] (minGRU, minLSTM,
Mamba) cannot flip a sign once per one-bit, so it cannot represent parity at arbitrary
length; a nonlinear recurrence (LSTM, GRU, sLSTM) can (Grazzi et al., 2025).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.tasks import losses
from lstm_jax.tasks.base import Batch, Task

GROUPS = ("accuracy", "accuracy_2L", "accuracy_long")  # lengths 1..L, 2L, 4L
FACTORS = (1, 2, 4)  # each group's longest length, in multiples of L


def parity_batch(key: jax.Array, batch_size: int, padded: int, low: int, high: int):
    """``(xs, targets, seq_lengths)``: bits xs (B, padded) int32, each row's first
    ``seq_lengths[b]`` of them drawn uniformly (0 after), lengths uniform in
    [low, high], targets (B,) int32 the parity of each row's valid bits.

    >>> xs, ys, n = parity_batch(jax.random.key(0), 4, 6, 1, 6)
    >>> bool(jnp.all(ys == jnp.sum(xs, axis=1) % 2)), bool(jnp.all(xs[:, 5:][n[:, None] < 6] == 0))
    (True, True)
    """
    k_bits, k_lengths = jax.random.split(key)
    seq_lengths = jax.random.randint(k_lengths, (batch_size,), low, high + 1)
    bits = jax.random.bernoulli(k_bits, 0.5, (batch_size, padded)).astype(jnp.int32)
    bits = jnp.where(jnp.arange(padded)[None, :] < seq_lengths[:, None], bits, 0)
    return bits, jnp.sum(bits, axis=1) % 2, seq_lengths


def _eval_groups(batch_size: int) -> jax.Array:
    """(B,) the group of each row of an evaluation batch: 0, 1, 2, 0, 1, 2, ..."""
    return jnp.arange(batch_size) % len(GROUPS)


def parity_task(length: int = 40) -> Task:
    """Parity as a ``Task``: token inputs (bits 0 and 1), a class at the last valid step.

    Metrics: ``accuracy`` on lengths 1..``length`` (the training lengths),
    ``accuracy_2L`` at ``2·length`` and ``accuracy_long`` at ``4·length``.

    >>> task = parity_task(length=8)
    >>> batch = task.eval_batches(jax.random.key(0), 6, 1)[0]
    >>> batch.xs.shape, batch.seq_lengths.tolist()[1:3], task.baselines["accuracy_long"]
    ((6, 32), [16, 32], 0.5)
    """
    length = _checks.positive_int("length", length)
    make_train = jax.jit(lambda key, batch_size: Batch(*parity_batch(
        key, batch_size, length, 1, length)), static_argnums=1)

    @jax.jit
    def make_eval(key, groups):
        # each row's length: 1..L in group 0, 2L in group 1, 4L in group 2
        k_bits, k_short = jax.random.split(key)
        short = jax.random.randint(k_short, groups.shape, 1, length + 1)
        n = jnp.where(groups == 0, short, jnp.asarray(FACTORS)[groups] * length)
        bits = jax.random.bernoulli(k_bits, 0.5, (groups.shape[0], 4 * length)).astype(jnp.int32)
        bits = jnp.where(jnp.arange(4 * length)[None, :] < n[:, None], bits, 0)
        return Batch(bits, jnp.sum(bits, axis=1) % 2, n)

    def train_batch(key, step, batch_size):
        return make_train(jax.random.fold_in(key, step), batch_size)

    def eval_batches(key, batch_size, count):
        groups = _eval_groups(batch_size)
        return [make_eval(jax.random.fold_in(key, i), groups) for i in range(count)]

    def metrics(predictions, batch):
        # a row's group is read from its length: 1..L, 2L or 4L (other lengths: none);
        # a group without rows in the batch is NaN
        correct = (jnp.argmax(predictions, axis=-1) == batch.targets).astype(jnp.float32)
        n = batch.seq_lengths
        members = (n <= length, n == 2 * length, n == 4 * length)
        found = {}
        for name, member in zip(GROUPS, members):
            member = member.astype(jnp.float32)
            count = jnp.sum(member)
            found[name] = jnp.where(count > 0, jnp.sum(correct * member) / count, jnp.nan)
        return found

    return Task(name="parity", input_size=2, output_size=2, readout="last",
                train_batch=train_batch, eval_batches=eval_batches,
                loss=losses.cross_entropy, metrics=metrics,
                baselines={name: 0.5 for name in GROUPS}, tokens=True, variable_lengths=True,
                baseline_note="a guess: the parity of random bits is even or odd with "
                              "probability 1/2 at every length")

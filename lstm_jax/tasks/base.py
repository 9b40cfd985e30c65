"""What a task gives the training loop: batches, a loss and metrics."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

READOUTS = ("last", "mean", "every")


class Batch(NamedTuple):
    xs: jax.Array  # (B, T, I) float features, or (B, T) int token ids
    targets: jax.Array  # (B,) or (B, O) per sequence; (B, T) or (B, T, O) per step
    seq_lengths: jax.Array | None = None  # (B,) int32; None: every sequence has length T
    weights: jax.Array | None = None  # (B,) float32; 0 marks the padding rows of an eval batch


class Task(NamedTuple):
    """A supervised sequence task.

    Attributes:
      name: what the task is called in run directories and plots.
      input_size: I, the features per step; with ``tokens`` the vocabulary size.
      output_size: O, the model's prediction per sequence (or per step): classes for a
        classifier, values for a regression.
      readout: where the model reads its prediction: ``"last"`` (each sequence's last
        valid step), ``"mean"`` (the mean over valid steps) or ``"every"`` (one
        prediction per step). A config may change "last" to "mean" and back.
      train_batch: ``(key, step, batch_size) -> Batch``, a pure function of the run's
        data key and the step, so a resumed run sees the same data as an uninterrupted one.
      eval_batches: ``(key, batch_size, count) -> list[Batch]``: the fixed evaluation
        set (``count`` batches of a generator, or a whole held-out split whose last batch
        is padded with rows of weight 0).
      loss: ``(predictions, batch) -> scalar`` to minimise.
      metrics: ``(predictions, batch) -> dict`` of scalars (weighted means over the batch).
      baselines: reference values of the metrics, e.g. a trivial predictor's, printed
        next to the final evaluation and drawn in the loss plot.
      baseline_note: what the baselines measure, printed with them (e.g. "always
        predicting class 3, the commonest in the training split"): a baseline below
        chance is then no mystery.
      tokens: ``xs`` holds int token ids in ``[0, input_size)``, for an embedding.
      train_size: examples in a finite training set (None for a generator).
      encode: for a text task, ``str -> (T,) int ids`` (raises ValueError on a character
        outside the vocabulary); None otherwise.
      decode: for a text task, ``int ids -> str``; None otherwise.
      variable_lengths: the batches carry ``seq_lengths`` (padded sequences of different
        lengths), so a model trained on them needs them at inference too.
    """

    name: str
    input_size: int
    output_size: int
    readout: str
    train_batch: Callable[[jax.Array, int, int], Batch]
    eval_batches: Callable[[jax.Array, int, int], list]
    loss: Callable[[jax.Array, Batch], jax.Array]
    metrics: Callable[[jax.Array, Batch], dict]
    baselines: dict[str, Any]
    baseline_note: str = ""
    tokens: bool = False
    train_size: int | None = None
    encode: Callable[[str], Any] | None = None
    decode: Callable[[Any], str] | None = None
    variable_lengths: bool = False


def generated(name: str, make_batch: Callable[[jax.Array, int], Batch], **task) -> Task:
    """A ``Task`` over a generator ``make_batch(key, batch_size) -> Batch``.

    Training batch ``s`` is ``make_batch(fold_in(key, s), B)``; the evaluation set is
    ``count`` batches ``make_batch(fold_in(key, i), B)`` from the run's evaluation key.
    ``task`` holds the remaining ``Task`` fields.
    """
    make = jax.jit(make_batch, static_argnums=1)

    def train_batch(key, step, batch_size):
        return make(jax.random.fold_in(key, step), batch_size)

    def eval_batches(key, batch_size, count):
        return [make(jax.random.fold_in(key, i), batch_size) for i in range(count)]

    return Task(name=name, train_batch=train_batch, eval_batches=eval_batches, **task)

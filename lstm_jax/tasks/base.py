"""What a task gives the training loop: batches, a loss and metrics."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax


class Batch(NamedTuple):
    xs: jax.Array  # (B, T, I) inputs
    targets: jax.Array  # (B, O) for a "last" readout, (B, T, O) or (B, T) for "every"
    seq_lengths: jax.Array | None  # (B,) int32, or None when every sequence has length T


class Task(NamedTuple):
    """A supervised sequence task.

    Attributes:
      name: registry name.
      input_size: I.
      output_size: O, the size of the model's prediction per sequence (or per step).
      readout: ``"last"``: one prediction per sequence, read at its last valid step;
        ``"every"``: one prediction per step.
      batch: ``(key, batch_size) -> Batch``, a pure function of the key: the training
        loop derives the key from (seed, step), so data order never depends on history.
      loss: ``(predictions, batch) -> scalar`` to minimise.
      metrics: ``(predictions, batch) -> dict`` of scalars, averaged over evaluation
        batches; it includes the loss.
      baselines: reference values of the metrics, e.g. a trivial predictor's, printed
        next to the final evaluation.
    """

    name: str
    input_size: int
    output_size: int
    readout: str
    batch: Callable[[jax.Array, int], Batch]
    loss: Callable[[jax.Array, Batch], jax.Array]
    metrics: Callable[[jax.Array, Batch], dict]
    baselines: dict[str, Any]

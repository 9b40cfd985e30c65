"""A task over your own finite arrays: shuffled epochs, a held-out test split.

The arrays stay in host memory (NumPy); each step gathers one batch, so a data set is
never baked into a compiled function.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from lstm_jax.tasks import losses
from lstm_jax.tasks.base import READOUTS, Batch, Task

SPLIT_SEED = 0  # the carved-off test split is the same for every run seed


class _Split:
    """xs, targets and seq_lengths of one split, checked against each other."""

    def __init__(self, where: str, xs: Any, targets: Any, seq_lengths: Any, loss: str,
                 readout: str):
        xs, targets = np.asarray(xs), np.asarray(targets)
        if np.issubdtype(xs.dtype, np.integer):
            if xs.ndim != 2:
                raise ValueError(f"`{where}xs` of int token ids must be (N, T), got shape {xs.shape}")
            if xs.min(initial=0) < 0:
                raise ValueError(f"`{where}xs` token ids must be >= 0, got {xs.min()}")
        elif np.issubdtype(xs.dtype, np.floating):
            if xs.ndim != 3:
                raise ValueError(f"`{where}xs` must be (N, T, I) floats or (N, T) int token ids, "
                                 f"got shape {xs.shape}")
            if not np.all(np.isfinite(xs)):
                raise ValueError(f"`{where}xs` holds NaN or infinite values")
            xs = xs.astype(np.float32)
        else:
            raise TypeError(f"`{where}xs` must hold floats or int token ids, got dtype {xs.dtype}")
        n, steps = xs.shape[:2]
        if targets.shape[:1] != (n,):
            raise ValueError(f"`{where}targets` must have {n} rows like `{where}xs`, "
                             f"got shape {targets.shape}")
        per_step = readout == "every"
        if per_step and targets.shape[1:2] != (steps,):
            raise ValueError(f"`{where}targets` must be (N, T, ...) = ({n}, {steps}, ...) for "
                             f"readout='every', got shape {targets.shape}")
        label_rank = 2 if per_step else 1
        if loss == "cross_entropy":
            if not np.issubdtype(targets.dtype, np.integer) or targets.ndim != label_rank:
                shape = "(N, T)" if per_step else "(N,)"
                raise ValueError(f"`{where}targets` must be int class labels {shape} for "
                                 f"loss='cross_entropy', got {targets.dtype} {targets.shape}")
            if targets.min(initial=0) < 0:
                raise ValueError(f"`{where}targets` labels must be >= 0, got {targets.min()}")
            targets = targets.astype(np.int32)
        else:
            if targets.ndim not in (label_rank, label_rank + 1):
                raise ValueError(f"`{where}targets` for loss='mse' must be (N{', T' * per_step}) "
                                 f"or (N{', T' * per_step}, O), got shape {targets.shape}")
            targets = targets.astype(np.float32)
            if not np.all(np.isfinite(targets)):
                raise ValueError(f"`{where}targets` holds NaN or infinite values")
        if seq_lengths is not None:
            seq_lengths = np.asarray(seq_lengths)
            if seq_lengths.shape != (n,) or not np.issubdtype(seq_lengths.dtype, np.integer):
                raise ValueError(f"`{where}seq_lengths` must be {n} ints, got "
                                 f"{seq_lengths.dtype} {seq_lengths.shape}")
            if seq_lengths.min() < 1 or seq_lengths.max() > steps:
                raise ValueError(f"`{where}seq_lengths` must be in [1, {steps}], got values in "
                                 f"[{seq_lengths.min()}, {seq_lengths.max()}]")
            seq_lengths = seq_lengths.astype(np.int32)
        self.xs, self.targets, self.seq_lengths = xs, targets, seq_lengths

    def __len__(self) -> int:
        return len(self.xs)

    def take(self, rows: np.ndarray, weights: np.ndarray | None = None) -> Batch:
        lengths = None if self.seq_lengths is None else self.seq_lengths[rows]
        return Batch(self.xs[rows], self.targets[rows], lengths, weights)

    def subset(self, rows: np.ndarray) -> "_Split":
        part = object.__new__(_Split)
        part.xs, part.targets = self.xs[rows], self.targets[rows]
        part.seq_lengths = None if self.seq_lengths is None else self.seq_lengths[rows]
        return part


def check_test_fraction(test_fraction: float) -> float:
    """``test_fraction`` if it is in (0, 1), else a ValueError naming it."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    return test_fraction


def split_indices(count: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)``: the sorted indices of ``count`` examples, ``test_fraction`` of
    them (at least one) held out for testing, the same ones for every run (``SPLIT_SEED``).

    >>> [indices.tolist() for indices in split_indices(5, 0.4)]
    [[0, 1, 3], [2, 4]]
    """
    check_test_fraction(test_fraction)
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    held_out = max(1, round(count * test_fraction))
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def host_rng(key: jax.Array, n: int) -> np.random.Generator:
    """A NumPy generator that is a pure function of (key, n): the data order of epoch
    n, or the windows of step n, drawn on the host."""
    return np.random.default_rng([*np.asarray(jax.random.key_data(key)).ravel().tolist(), n])


def from_arrays(
    xs: Any,
    targets: Any,
    *,
    seq_lengths: Any = None,
    test: tuple | None = None,
    loss: str = "cross_entropy",
    readout: str = "last",
    test_fraction: float = 0.1,
    num_classes: int | None = None,
    vocab_size: int | None = None,
    name: str = "arrays",
) -> Task:
    """A ``Task`` over finite arrays: your own data set.

    Args:
      xs: (N, T, I) float features, or (N, T) int token ids (the model then embeds them).
      targets: for ``loss="cross_entropy"`` int labels, (N,) or with ``readout="every"``
        (N, T); for ``loss="mse"`` floats (N,) / (N, O), or (N, T) / (N, T, O) per step.
      seq_lengths: (N,) ints in [1, T]; positions at or past them are padding.
      test: ``(xs, targets)`` or ``(xs, targets, seq_lengths)`` held out for evaluation;
        None carves off ``test_fraction`` of the examples, the same ones for every run.
      loss: ``"cross_entropy"`` (also reports accuracy) or ``"mse"``.
      readout: ``"last"`` (one prediction per sequence, at its last valid step) or
        ``"every"`` (one per step).
      num_classes: O for a classifier; default: the largest label + 1.
      vocab_size: for token ids; default: the largest id + 1.
      name: shown in run directories and plots.

    Training batch ``s`` is a pure function of (data key, s): each epoch visits the
    training examples in a fresh order (the remainder of N / B is left for the next
    epoch's shuffle); the evaluation set is the whole test split.

    >>> xs = np.random.default_rng(0).normal(size=(100, 12, 3)).astype(np.float32)
    >>> labels = (xs[:, :, 0].sum(axis=1) > 0).astype(np.int32)
    >>> task = from_arrays(xs, labels)
    >>> task.input_size, task.output_size, task.train_size
    (3, 2, 90)
    >>> batch = task.train_batch(jax.random.key(0), 0, 16)
    >>> batch.xs.shape, batch.targets.shape
    ((16, 12, 3), (16,))
    >>> [b.xs.shape[0] for b in task.eval_batches(jax.random.key(1), 16, 1)]
    [16]
    """
    if readout not in ("last", "every"):
        raise ValueError(f"`readout` must be 'last' or 'every', got {readout!r}")
    loss_fn, metrics = losses.loss_and_metrics(loss)
    train = _Split("", xs, targets, seq_lengths, loss, readout)
    if test is None:
        kept, held_out = split_indices(len(train), test_fraction)
        train, test_split = train.subset(kept), train.subset(held_out)
    else:
        if not isinstance(test, (tuple, list)) or len(test) not in (2, 3):
            raise TypeError("`test` must be (xs, targets) or (xs, targets, seq_lengths)")
        test_split = _Split("test ", *test, *([None] * (3 - len(test))), loss, readout)
    if len(train) == 0:
        raise ValueError("no training examples are left after the test split")
    if test_split.xs.ndim != train.xs.ndim or test_split.xs.shape[2:] != train.xs.shape[2:]:
        raise ValueError(f"test xs of shape {test_split.xs.shape} do not match `xs` of shape "
                         f"{train.xs.shape}")
    tokens = train.xs.ndim == 2
    if tokens:
        largest = max(train.xs.max(), test_split.xs.max())
        input_size = int(vocab_size or largest + 1)
        if largest >= input_size:
            raise ValueError(f"`xs` holds token id {largest}, outside `vocab_size` {input_size}")
    else:
        input_size = train.xs.shape[2]
    if loss == "cross_entropy":
        largest = max(train.targets.max(), test_split.targets.max())
        output_size = int(num_classes or largest + 1)
        if largest >= output_size:
            raise ValueError(f"`targets` holds label {largest}, outside `num_classes` {output_size}")
        counts = np.bincount(train.targets.ravel(), minlength=output_size)
        majority = np.mean(test_split.targets == np.argmax(counts))
        baselines = {"accuracy": float(majority)}
        # on a balanced test split the commonest training class can score below chance
        note = (f"always predicting class {np.argmax(counts)}, the commonest in the training "
                f"split; a uniform guess scores 1/{output_size} = {1 / output_size:.3g}")
    else:
        output_size = 1 if train.targets.ndim == (2 if readout == "every" else 1) else train.targets.shape[-1]
        mean = train.targets.mean(axis=tuple(range(train.targets.ndim - (output_size > 1))))
        baselines = {"mse": float(np.mean(np.square(test_split.targets - mean)))}
        note = "always predicting the mean of the training targets"

    def train_batch(key, step, batch_size):
        per_epoch = len(train) // batch_size
        if per_epoch == 0:
            raise ValueError(f"`batch_size` {batch_size} is larger than the {len(train)} "
                             f"training examples")
        epoch, index = divmod(int(step), per_epoch)
        order = host_rng(key, epoch).permutation(len(train))
        return train.take(order[index * batch_size:(index + 1) * batch_size])

    def eval_batches(key, batch_size, count):
        del key, count  # the whole test split, always
        batches = []
        for start in range(0, len(test_split), batch_size):
            rows = np.arange(start, min(start + batch_size, len(test_split)))
            weights = np.ones(batch_size, np.float32)
            weights[len(rows):] = 0.0
            rows = np.concatenate([rows, np.zeros(batch_size - len(rows), rows.dtype)])
            batches.append(test_split.take(rows, weights))
        return batches

    return Task(name=name, input_size=input_size, output_size=output_size, readout=readout,
                train_batch=train_batch, eval_batches=eval_batches, loss=loss_fn,
                metrics=metrics, baselines=baselines, baseline_note=note, tokens=tokens,
                train_size=len(train), variable_lengths=train.seq_lengths is not None)


def epochs(task: Task, step: int, batch_size: int) -> float | None:
    """How many passes over a finite training set ``step`` steps make (None for a generator)."""
    if task.train_size is None:
        return None
    return step / math.floor(task.train_size / batch_size)

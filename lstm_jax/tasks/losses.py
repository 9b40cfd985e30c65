"""Losses and metrics shared by tasks: weighted, and masked by sequence length per step.

Every function takes ``(predictions, batch)``: predictions (B, O) for a per-sequence
readout or (B, T, O) per step; for a classifier O is the number of classes and the
targets are int labels (B,) or (B, T). Rows of weight 0 (an eval batch's padding) and,
per step, positions at or past ``seq_lengths`` count for nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstm_jax.tasks.base import Batch

LOSSES = ("cross_entropy", "mse")


def example_weights(batch: Batch, per_step: bool) -> jax.Array:
    """(B,) weights, or (B, T) with padding steps at 0 when ``per_step``."""
    weights = batch.weights
    if weights is None:
        weights = jnp.ones(batch.xs.shape[0], jnp.float32)
    if not per_step:
        return weights
    steps = batch.xs.shape[1]
    if batch.seq_lengths is None:
        return jnp.broadcast_to(weights[:, None], (weights.shape[0], steps))
    valid = jnp.arange(steps)[None, :] < batch.seq_lengths[:, None]
    return weights[:, None] * valid


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def _per_step(batch: Batch, predictions: jax.Array) -> bool:
    return predictions.ndim == 3


def cross_entropy(predictions: jax.Array, batch: Batch) -> jax.Array:
    """Mean negative log-likelihood of the int targets, in nats."""
    log_probs = jax.nn.log_softmax(predictions.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_probs, batch.targets[..., None].astype(jnp.int32), axis=-1)
    return _weighted_mean(-picked[..., 0], example_weights(batch, _per_step(batch, predictions)))


def accuracy(predictions: jax.Array, batch: Batch) -> jax.Array:
    correct = jnp.argmax(predictions, axis=-1) == batch.targets
    return _weighted_mean(correct.astype(jnp.float32),
                          example_weights(batch, _per_step(batch, predictions)))


def mse(predictions: jax.Array, batch: Batch) -> jax.Array:
    """Mean squared error; targets (B,) / (B, T) go with predictions whose O is 1."""
    targets = batch.targets.astype(jnp.float32)
    if targets.ndim < predictions.ndim:
        targets = targets[..., None]
    errors = jnp.mean(jnp.square(predictions.astype(jnp.float32) - targets), axis=-1)
    return _weighted_mean(errors, example_weights(batch, _per_step(batch, predictions)))


def loss_and_metrics(kind: str):
    """``(loss, metrics)`` for a loss ``kind``: cross entropy reports accuracy too."""
    if kind == "cross_entropy":
        return cross_entropy, lambda p, b: {"accuracy": accuracy(p, b)}
    if kind == "mse":
        return mse, lambda p, b: {"mse": mse(p, b)}
    raise ValueError(f"`loss` must be one of {list(LOSSES)}, got {kind!r}")

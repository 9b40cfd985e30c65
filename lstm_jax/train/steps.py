"""The train state and the two pure step functions."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lstm_jax.tasks import Batch, Task
from lstm_jax.tasks.losses import example_weights
from lstm_jax.train.config import Config
from lstm_jax.train.model import Model


class TrainState(NamedTuple):
    params: Any  # the model's params
    opt_state: Any  # the optimizer's state
    step: jax.Array  # shape=() int32: optimizer steps taken
    rng: jax.Array  # shape=(2,) uint32: raw key data; dropout at step s uses fold_in(rng, s)


def learning_rate_schedule(config: Config) -> optax.Schedule:
    """Linear warmup from 0 to ``learning_rate``, then cosine decay to 0 at ``steps``.

    The warmup is cut to ``steps - 1`` in runs shorter than it, so the cosine part
    always has at least one step.
    """
    return _warmup_cosine(config.learning_rate, config)


def _warmup_cosine(peak, config: Config) -> optax.Schedule:
    """``optax.warmup_cosine_decay_schedule`` to 0, whose ``peak`` may be a traced value."""
    warmup = min(config.warmup_steps, config.steps - 1)
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup),
                                 optax.cosine_decay_schedule(peak, max(config.steps, warmup + 1) - warmup)],
                                [warmup])


class Hyperparams(NamedTuple):
    """The default optimizer's options held in its state, not compiled into the step:
    runs that differ only in them are one program, so they train at once (``sweep``)."""

    count: jax.Array  # shape=() int32: updates made
    learning_rate: jax.Array  # shape=() float32: the schedule's peak
    weight_decay: jax.Array  # shape=() float32


def default_optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW on ``learning_rate_schedule(config)``.

    The same updates as ``optax.adamw(learning_rate_schedule(config), weight_decay=...)``,
    bit for bit, with the peak learning rate and the weight decay in the state
    (``Hyperparams``).
    """
    adamw = optax.chain(optax.scale_by_adam(), _decay_and_schedule(config))
    if config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip), adamw)
    return adamw


def _decay_and_schedule(config: Config) -> optax.GradientTransformation:
    """AdamW's tail: add ``weight_decay * params``, then scale by minus the learning rate."""

    def init(params):
        del params
        return Hyperparams(jnp.zeros((), jnp.int32), jnp.asarray(config.learning_rate, jnp.float32),
                           jnp.asarray(config.weight_decay, jnp.float32))

    def update(updates, state: Hyperparams, params):
        step_size = -1 * _warmup_cosine(state.learning_rate, config)(state.count)
        updates = jax.tree.map(lambda g, p: jnp.array(step_size, g.dtype)
                               * (g + state.weight_decay.astype(p.dtype) * p), updates, params)
        return updates, state._replace(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def init_state(model: Model, optimizer: optax.GradientTransformation, seed: int) -> TrainState:
    k_params, k_dropout = jax.random.split(jax.random.key(seed))
    params = model.init(k_params)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key_data(k_dropout),
    )


def make_train_step(model: Model, task: Task, optimizer: optax.GradientTransformation,
                    *, models: bool = False):
    """``train_step(state, batch) -> (state, metrics)``, pure and jitted.

    metrics: ``loss`` (of the params before the update), ``grad_norm`` and
    ``param_norm`` (after the update), so a caller can refuse a non-finite state.
    ``models``: the state, the batch and the metrics have a leading axis of models
    trained at once (``jax.vmap``), e.g. one per seed.
    """

    def train_step(state: TrainState, batch: Batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_fn(params):
            predictions = model.apply(params, batch.xs, batch.seq_lengths, key=key)
            return task.loss(predictions, batch)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(params, opt_state, state.step + 1, state.rng)
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads),
                           "param_norm": optax.tree.norm(params)}

    return jax.jit(jax.vmap(train_step) if models else train_step, donate_argnums=0)


def make_eval_step(model: Model, task: Task, *, models: bool = False):
    """``eval_step(params, batch) -> {"loss", *task metrics, "weight"}``, pure and jitted.

    No dropout. ``weight`` is the batch's total example weight (its padding rows count
    0), for averaging over batches of a split whose last batch is padded. ``models``:
    as for ``make_train_step``.
    """

    def eval_step(params, batch: Batch):
        predictions = model.apply(params, batch.xs, batch.seq_lengths)
        weight = jnp.sum(example_weights(batch, per_step=False))
        return {"loss": task.loss(predictions, batch), **task.metrics(predictions, batch),
                "weight": weight}

    return jax.jit(jax.vmap(eval_step) if models else eval_step)

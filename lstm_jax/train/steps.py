"""The train state and the two pure step functions."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstm_jax import _machine
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
    decay_steps = max(config.steps, warmup + 1) - warmup
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup),
                                 optax.cosine_decay_schedule(peak, decay_steps)], [warmup])


class Hyperparams(NamedTuple):
    """The default optimizer's values that a training step may take as inputs
    (``make_train_step``) instead of compiling them in: runs that differ only in them are
    one program, so they train at once (``train(..., sweep=...)``). A ``grad_clip`` of 0
    (no clipping) leaves the clipping out of the program, so runs at once clip all with
    positive bounds or none."""

    learning_rate: Any  # the schedule's peak
    weight_decay: Any
    grad_clip: Any  # the global-norm bound

    @classmethod
    def of(cls, config: Config) -> Hyperparams:
        """The config's values."""
        return cls(*(getattr(config, name) for name in cls._fields))


def default_optimizer(config: Config) -> optax.GradientTransformationExtraArgs:
    """Global-norm clipping, then AdamW on ``learning_rate_schedule(config)``.

    The updates and the state of ``optax.chain(optax.clip_by_global_norm(grad_clip),
    optax.adamw(learning_rate_schedule(config), weight_decay=...))`` bit for bit (no
    clipping at ``grad_clip`` 0), so its checkpoints restore either way. ``update`` takes
    ``hyperparams=Hyperparams(...)`` (values or traced arrays) in place of the config's
    learning rate, weight decay and clipping bound.
    """
    def given(values: Hyperparams | None) -> Hyperparams:
        return Hyperparams.of(config) if values is None else values

    def decay(updates, state, params, hyperparams=None, **extra):
        weight_decay = given(hyperparams).weight_decay
        if isinstance(weight_decay, (int, float)) and weight_decay == 0:
            return updates, state  # optax's shortcut: nothing to add
        return jax.tree.map(lambda g, p: g + jnp.asarray(weight_decay).astype(p.dtype) * p,
                            updates, params), state

    def scale(updates, state, params=None, hyperparams=None, **extra):
        step_size = -1 * _warmup_cosine(given(hyperparams).learning_rate, config)(state.count)
        updates = jax.tree.map(lambda g: jnp.array(step_size, dtype=g.dtype) * g, updates)
        return updates, optax.ScaleByScheduleState(count=optax.safe_increment(state.count))

    def clip(updates, state, params=None, hyperparams=None, **extra):
        return optax.clip_by_global_norm(given(hyperparams).grad_clip).update(updates, state)

    def stateless(update):
        return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)

    adamw = optax.chain(
        optax.scale_by_adam(),
        stateless(decay),
        optax.GradientTransformationExtraArgs(
            lambda params: optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32)), scale))
    return optax.chain(stateless(clip), adamw) if config.grad_clip > 0 else adamw


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
                    *, models: bool = False, mesh: Mesh | None = None):
    """``train_step(state, batch, hyperparams=None) -> (state, metrics)``, pure and jitted.

    metrics: ``loss`` (of the params before the update), ``grad_norm`` and
    ``param_norm`` (after the update), so a caller can refuse a non-finite state.
    ``hyperparams``: the default optimizer's ``Hyperparams`` as inputs of the step (None:
    those it was built with, compiled in). ``models``: the state, the batch, the
    hyperparams and the metrics have a leading axis of models trained at once, e.g. one
    per seed (``over_models``); ``mesh``: that axis is split over its devices.
    """

    def train_step(state: TrainState, batch: Batch, hyperparams: Hyperparams | None = None):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_fn(params):
            predictions = model.apply(params, batch.xs, batch.seq_lengths, key=key)
            return task.loss(predictions, batch)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        given = {} if hyperparams is None else {"hyperparams": hyperparams}
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params, **given)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(params, opt_state, state.step + 1, state.rng)
        return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads),
                           "param_norm": optax.tree.norm(params)}

    return jax.jit(over_models(train_step, mesh) if models else train_step, donate_argnums=0)


def make_eval_step(model: Model, task: Task, *, models: bool = False, mesh: Mesh | None = None):
    """``eval_step(params, batch) -> {"loss", *task metrics, "weight"}``, pure and jitted.

    No dropout. ``weight`` is the batch's total example weight (its padding rows count
    0), for averaging over batches of a split whose last batch is padded. ``models`` and
    ``mesh``: as for ``make_train_step``.
    """

    def eval_step(params, batch: Batch):
        predictions = model.apply(params, batch.xs, batch.seq_lengths)
        weight = jnp.sum(example_weights(batch, per_step=False))
        return {"loss": task.loss(predictions, batch), **task.metrics(predictions, batch),
                "weight": weight}

    return jax.jit(over_models(eval_step, mesh) if models else eval_step)


def over_models(step: Callable, mesh: Mesh | None = None) -> Callable:
    """``step`` over a leading axis of models in its arguments and results, as one program:
    what ``lstm-jax train --seeds`` runs, for a step function of your own.

    On a CPU the models run one after another inside it (``jax.lax.map``), on an
    accelerator they are ``jax.vmap``-ed (``_machine.maps_models``). With ``mesh`` (of
    any shape, e.g. ``jax.make_mesh((2,), ("models",))`` or ``ModelParallel``'s) the
    model axis is split over all its devices, each taking its share of the models
    (``jax.shard_map``; the arguments are placed so, wherever they lie, and the number of
    models must be a multiple of ``mesh.size``). On a CPU this costs what the steps
    one after the other do, where ``jax.vmap(step)`` of a training step costs a few
    percent more (benchmarks/RESULTS.md, "Many models at once").

    Every array in the arguments needs the same leading size, the number of models
    (checked on the whole arguments, before any split): a ValueError says the sizes.

    >>> import jax.numpy as jnp
    >>> over_models(lambda w, x: w * x)(jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]))
    Array([3., 8.], dtype=float32)
    """

    def local(*args):
        if _machine.maps_models():
            return jax.lax.map(lambda each: step(*each), args)
        return jax.vmap(step)(*args)

    if mesh is None or mesh.size == 1:
        def at_once(*args):
            _model_count(args)
            return local(*args)

        return at_once
    # the leading axis over every axis of the mesh: P("models") for a 1-d mesh
    spec = PartitionSpec(tuple(mesh.axis_names))
    split = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)

    def over_devices(*args):
        models = _model_count(args)
        if models % mesh.size:
            raise ValueError(f"over_models: {models} models cannot be split evenly over the "
                             f"mesh's {mesh.size} devices; use a multiple of {mesh.size}")
        # placed as shard_map reads them: a mesh of explicit axes (jax.make_mesh's) takes
        # only arguments already split so
        return split(*jax.device_put(args, NamedSharding(mesh, spec)))

    return over_devices


def _model_count(args) -> int:
    """The leading size that every array of ``args`` (any pytree) shares: the number of
    models. A ValueError names the sizes found (in increasing order) where they differ,
    where one is a scalar or where there is no array.

    >>> _model_count(({"w": jnp.zeros((3, 2))}, [jnp.zeros(3)]))
    3
    """
    sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in jax.tree.leaves(args)}
    if len(sizes) == 1 and None not in sizes:
        return sizes.pop()
    found = [str(size) for size in sorted(sizes - {None})] + (
        ["none (a scalar)"] if None in sizes else [])
    raise ValueError(f"over_models: every argument needs the same leading axis of models; "
                     f"got leading sizes {', '.join(found) or 'of no array'}")

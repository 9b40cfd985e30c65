"""Models: the one a config describes, and the contract a model of your own meets.

The config's model is [a token embedding] -> a stack of recurrent layers -> a linear
readout at the last valid step, the mean over valid steps, or every step. A model of
your own is any ``Model(init, apply)`` pair, e.g. a flax linen module's:

    module = MyModule()
    model = Model(
        init=lambda key: module.init(key, example_xs)["params"],
        apply=lambda params, xs, seq_lengths=None, key=None: module.apply({"params": params}, xs),
    )
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.cells import KINDS
from lstm_jax.cells.base import Layer, add_bias
from lstm_jax.layers import bidirectional, has_bidirectional, output_size, stack
from lstm_jax.runner import rnn
from lstm_jax.tasks import Task
from lstm_jax.train.config import Config
from lstm_jax.truncated import truncated_bptt


class Model(NamedTuple):
    """``init(key) -> params``; ``apply(params, xs, seq_lengths=None, key=None) -> predictions``.

    xs is a task's (B, T, I) features or (B, T) token ids; predictions are (B, O), or
    (B, T, O) for a per-step readout. ``key`` is given only in training (dropout).
    ``step(params, carry, xs) -> (carry, predictions (B, T, O))`` continues reading from
    ``carry`` (None: from zeros), for sampling; None for a model that cannot be read
    piece by piece (a bidirectional one, or one without a per-step readout).
    """

    init: Callable[[jax.Array], Any]
    apply: Callable[..., jax.Array]
    step: Callable[..., tuple[Any, jax.Array]] | None = None


def last_valid(ys: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
    """ys (B, T, P) -> (B, P) at each sequence's last valid step (T - 1 without lengths)."""
    if seq_lengths is None:
        return ys[:, -1]
    index = jnp.maximum(seq_lengths - 1, 0)[:, None, None]
    return jnp.take_along_axis(ys, index, axis=1)[:, 0]


def mean_valid(ys: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
    """ys (B, T, P) -> (B, P), the mean over each sequence's valid steps (padding is 0)."""
    if seq_lengths is None:
        return jnp.mean(ys, axis=1)
    return jnp.sum(ys, axis=1) / jnp.maximum(seq_lengths, 1)[:, None].astype(ys.dtype)


READ = {"last": last_valid, "mean": mean_valid, "every": lambda ys, seq_lengths: ys}


def readout_of(config: Config, task: Task) -> str:
    """The config's readout, checked against the task's targets."""
    if config.readout == "task":
        return task.readout
    if (config.readout == "every") != (task.readout == "every"):
        raise ValueError(f"`readout` {config.readout!r} does not fit task {task.name!r}, whose "
                         f"targets are per {'step' if task.readout == 'every' else 'sequence'}")
    return config.readout


def build_layer(config: Config, cells=None) -> Layer:
    """The recurrent stack of ``config``, in chunks of ``bptt_chunk`` steps when set
    (``lj.truncated_bptt``); unknown cells or options name the valid ones.

    ``cells``: one cell per layer (``num_layers`` of them) in place of the config's
    ``cell`` and ``cell_options``, e.g. layers initialised apart; the config's
    ``rnn_options``, ``bidirectional``, ``dropout`` and ``bptt_chunk`` still apply.
    """
    if cells is None:
        if config.cell not in KINDS:
            raise ValueError(f"unknown cell {config.cell!r}; known cells: {', '.join(KINDS)}")
        cell_factory = KINDS[config.cell].factory
        cell_options = _checks.known_options(f"cell {config.cell!r}", cell_factory,
                                             config.cell_options)
        cells = [cell_factory(config.hidden_size, **cell_options) for _ in range(config.num_layers)]
    elif len(cells) != config.num_layers:
        raise ValueError(f"`cells` holds {len(cells)} cells for `num_layers` {config.num_layers}")
    rnn_options = _checks.known_options("lj.rnn", rnn, config.rnn_options)

    def one_layer(cell):
        layer = rnn(cell, **rnn_options)
        return bidirectional(layer) if config.bidirectional else layer

    layer = stack([one_layer(cell) for cell in cells], dropout=config.dropout)
    return truncated_bptt(layer, chunk=config.bptt_chunk) if config.bptt_chunk else layer


def build_model(config: Config, task: Task, layer: Layer | None = None) -> Model:
    """The model of ``config`` sized for ``task``, around ``layer`` (by default the
    config's stack, ``build_layer``): a layer of your own, e.g. over your own cell
    (``lj.rnn(MyCell(64))``), gets the config's embedding and readout.

    params: ``{"rnn": the stack's params, "readout": {"w": (P, O), "b": (O,)}}``, and
    ``"embed": (V, E)`` when the task's inputs are token ids.
    """
    layer = build_layer(config) if layer is None else layer
    read = READ[readout_of(config, task)]
    input_size = config.embed_size if task.tokens else task.input_size
    features = output_size(layer, input_size)

    def init(key):
        k_embed, k_rnn, k_out = jax.random.split(key, 3)
        params = {
            "rnn": layer.init(k_rnn, input_size),
            "readout": {
                "w": jax.nn.initializers.lecun_normal()(k_out, (features, task.output_size)),
                "b": jnp.zeros(task.output_size),
            },
        }
        if task.tokens:
            params["embed"] = jax.random.normal(k_embed, (task.input_size, config.embed_size)) * 0.1
        return params

    def run(params, xs, seq_lengths=None, key=None, carry=None):
        if task.tokens:
            xs = jnp.take(params["embed"], xs, axis=0)  # (B, T) ids -> (B, T, E)
        carry, ys = layer.apply(params["rnn"], xs, seq_lengths=seq_lengths, key=key, carry=carry)
        readout = params["readout"]
        return carry, add_bias(read(ys, seq_lengths) @ readout["w"], readout["b"])

    def apply(params, xs, seq_lengths=None, key=None):
        return run(params, xs, seq_lengths, key)[1]

    def step(params, carry, xs):
        return run(params, xs, carry=carry)

    streams = read is READ["every"] and not has_bidirectional(layer)  # it reads whole sequences
    return Model(init, apply, step if streams else None)

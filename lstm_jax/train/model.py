"""The model a config describes: a stack of recurrent layers and a linear readout."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

import lstm_jax as lj
from lstm_jax.cells.base import add_bias
from lstm_jax.tasks import Task
from lstm_jax.train.config import Config

CELLS = {"lstm": lj.lstm, "gru": lj.gru, "simple": lj.simple}


class ModelParams(NamedTuple):
    rnn: Any  # the stack's params: a tuple with one entry per layer
    w_out: jax.Array  # (P, O) readout
    b_out: jax.Array  # (O,)


class Model(NamedTuple):
    """``init(key) -> params``; ``apply(params, xs, seq_lengths, key=None) -> predictions``."""

    init: Callable[..., ModelParams]
    apply: Callable[..., jax.Array]
    layer: lj.Layer


def last_valid(ys: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
    """ys (B, T, P) -> (B, P) at each sequence's last valid step (T - 1 without lengths)."""
    if seq_lengths is None:
        return ys[:, -1]
    index = jnp.maximum(seq_lengths - 1, 0)[:, None, None]
    return jnp.take_along_axis(ys, index, axis=1)[:, 0]


def build_model(config: Config, task: Task) -> Model:
    """The recurrent stack of ``config`` with a linear readout sized for ``task``."""
    if config.cell not in CELLS:
        raise ValueError(f"unknown cell {config.cell!r}; known cells: {', '.join(CELLS)}")
    cell_factory = CELLS[config.cell]

    def one_layer():
        layer = lj.rnn(cell_factory(config.hidden_size, **config.cell_options))
        return lj.bidirectional(layer) if config.bidirectional else layer

    layer = lj.stack([one_layer() for _ in range(config.num_layers)], dropout=config.dropout)

    def init(key):
        k_rnn, k_out = jax.random.split(key)
        w_out = jax.nn.initializers.lecun_normal()(k_out, (layer.output_size, task.output_size))
        return ModelParams(layer.init(k_rnn, task.input_size), w_out, jnp.zeros(task.output_size))

    def apply(params, xs, seq_lengths=None, key=None):
        _, ys = layer.apply(params.rnn, xs, seq_lengths=seq_lengths, key=key)
        features = last_valid(ys, seq_lengths) if task.readout == "last" else ys
        return add_bias(features @ params.w_out, params.b_out)

    return Model(init, apply, layer)

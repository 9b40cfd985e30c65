"""Sequence-level composition: bidirectional layers and stacks of layers."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax._dropout import drop
from lstm_jax.cells import protocol
from lstm_jax.cells.base import Layer
from lstm_jax.runner import rnn


class Directions(NamedTuple):
    """The two halves of a bidirectional layer: its params, carry and gates."""

    forward: Any
    backward: Any


MERGES: dict[str, Callable] = {
    "concat": lambda f, b: jnp.concatenate([f, b], axis=-1),
    "sum": lambda f, b: f + b,
    "mean": lambda f, b: (f + b) / 2,
    "mul": lambda f, b: f * b,
}


def as_layer(cell_or_layer: Any) -> Layer:
    """A ``Layer`` as is; a cell (any object of the cell protocol) wrapped in ``rnn``
    with default options."""
    if isinstance(cell_or_layer, Layer):
        return cell_or_layer
    if protocol.is_cell(cell_or_layer):
        return rnn(cell_or_layer)
    raise TypeError(f"expected a cell (init, initial_carry, step) or a Layer, got "
                    f"{type(cell_or_layer).__name__}")


def output_size(layer: Layer, input_size: int) -> int:
    """The last dimension of ``layer``'s ys for inputs of ``input_size`` features:
    ``layer.output_size``, or where a cell does not say it before ``init``, read from
    the shapes of one traced ``init`` and ``apply`` (nothing is computed)."""
    if layer.output_size is not None:
        return layer.output_size

    def ys():
        params = layer.init(jax.random.key(0), input_size)
        return layer.apply(params, jnp.zeros((1, 1, input_size)))[1]

    return jax.eval_shape(ys).shape[-1]


def _time_major(layers) -> bool:
    layouts = {layer.time_major for layer in layers}
    if len(layouts) > 1:
        raise ValueError("all layers must share one layout; got time_major True and False")
    return layouts.pop()


def _split_key(key, n: int):
    return [None] * n if key is None else list(jax.random.split(key, n))


@dataclasses.dataclass(frozen=True)
class BidirectionalConfig:
    forward: Layer
    backward: Layer
    merge: str
    time_major: bool
    kind = "bidirectional"

    @property
    def sublayers(self) -> tuple[Layer, Layer]:
        return (self.forward, self.backward)

    @property
    def uses_key(self) -> bool:
        return self.forward.uses_key or self.backward.uses_key


def bidirectional(forward: Any, backward: Any = None, *, merge: str = "concat") -> Layer:
    """Run one layer forward in time and one backward, and merge their outputs.

    The backward layer sees each sequence reversed within its own length, so padded
    batches give the same result as unpadded ones (PyTorch's packed sequences).

    Args:
      forward: a cell or Layer for the forward direction.
      backward: for the backward direction; a fresh copy of ``forward`` when None
        (the same options, its own parameters).
      merge: how ys are combined: ``"concat"`` (B, T, P_f + P_b), ``"sum"``, ``"mean"``
        or ``"mul"`` (B, T, P).

    Returns:
      A ``Layer`` whose params, carry, gates and states are ``Directions(forward,
      backward)``. ``apply`` takes the options of ``lj.rnn``'s; both directions get the
      same ``resets`` (in the original order), so they see the same segments.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> layer = lj.bidirectional(lj.gru(6))
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> carry, ys = layer.apply(params, jnp.ones((3, 4, 5)))
    >>> ys.shape, carry.backward.shape
    ((3, 4, 12), (3, 6))
    """
    fwd = as_layer(forward)
    bwd = fwd if backward is None else as_layer(backward)
    merge_fn = MERGES[_checks.one_of("merge", merge, MERGES)]
    sizes = (fwd.output_size, bwd.output_size)
    _check_merge(merge, *sizes)
    if None in sizes:
        size = None
    else:
        size = sum(sizes) if merge == "concat" else sizes[0]
    config = BidirectionalConfig(fwd, bwd, merge, _time_major([fwd, bwd]))

    def init(key, input_size):
        """Directions(forward, backward) params for inputs of ``input_size`` features."""
        k_fwd, k_bwd = jax.random.split(key)
        return Directions(fwd.init(k_fwd, input_size), bwd.init(k_bwd, input_size))

    def initial_carry(params, batch_shape=()):
        """Directions(forward, backward) of each direction's initial carry."""
        return Directions(
            fwd.initial_carry(params.forward, batch_shape),
            bwd.initial_carry(params.backward, batch_shape),
        )

    def apply(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
              return_gates=False, resets=None, return_all_states=False):
        """Run both directions over xs (B, T, I): ``(Directions carry, ys (B, T, P))``
        with ys merged, then gates and states as Directions (see ``lj.bidirectional``)."""
        carry = _pair("carry", carry)
        params = _pair("params", params)
        k_fwd, k_bwd = _split_key(key, 2)
        common = dict(seq_lengths=seq_lengths, return_gates=return_gates,
                      **_given(resets, return_all_states))
        out_f = fwd.apply(params[0], xs, carry=carry[0], reverse=reverse, key=k_fwd, **common)
        out_b = bwd.apply(params[1], xs, carry=carry[1], reverse=not reverse, key=k_bwd, **common)
        _check_merge(merge, out_f[1].shape[-1], out_b[1].shape[-1])
        ys = merge_fn(out_f[1], out_b[1])
        # carry, then gates and states when asked for: each as Directions(forward, backward)
        return (Directions(out_f[0], out_b[0]), ys,
                *(Directions(f, b) for f, b in zip(out_f[2:], out_b[2:])))

    return Layer(init, apply, initial_carry, size, config)


def _check_merge(merge: str, forward_size: int | None, backward_size: int | None) -> None:
    """A merge other than concat needs equal output sizes (checked once both are known)."""
    if merge != "concat" and None not in (forward_size, backward_size) and (
            forward_size != backward_size):
        raise ValueError(f"merge={merge!r} needs equal output sizes, got {forward_size} and "
                         f"{backward_size}")


def _given(resets, return_all_states) -> dict:
    """``resets`` and ``return_all_states`` for a sublayer's ``apply``, only when set, so
    a layer whose ``apply`` takes neither (``lj.truncated_bptt``'s) still nests."""
    options = {} if resets is None else {"resets": resets}
    if return_all_states is not False:
        options["return_all_states"] = return_all_states
    return options


def _pair(name: str, value):
    if value is None:
        return (None, None)
    if type(value) not in (Directions, tuple) or len(value) != 2:  # not a cell's LSTMState
        raise TypeError(
            f"`{name}` of a bidirectional layer must be Directions(forward, backward), "
            f"got {type(value).__name__}"
        )
    return value


@dataclasses.dataclass(frozen=True)
class StackConfig:
    layers: tuple[Layer, ...]
    dropout: float
    time_major: bool
    kind = "stack"

    @property
    def sublayers(self) -> tuple[Layer, ...]:
        return self.layers

    @property
    def uses_key(self) -> bool:
        return self.dropout > 0 or any(layer.uses_key for layer in self.layers)


def stack(layers, *, dropout: float = 0.0) -> Layer:
    """Layers applied one after another, each reading the previous one's ys.

    Args:
      layers: a sequence of Layers (or cells, wrapped in ``rnn``).
      dropout: dropout on the outputs of every layer but the last, as
        ``torch.nn.LSTM(dropout=p)``: in [0, 1), or 1 to zero them all (as torch
        allows). Active only when ``apply`` gets a ``key``.

    Returns:
      A ``Layer`` whose params, carry, gates and states are tuples with one entry per
      layer. ``apply`` takes the options of ``lj.rnn``'s and passes ``resets`` to every
      layer.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> model = lj.stack([lj.bidirectional(lj.lstm(8)), lj.rnn(lj.lstm(6))], dropout=0.1)
    >>> params = model.init(jax.random.key(0), input_size=5)
    >>> xs, lengths = jnp.ones((3, 4, 5)), jnp.array([4, 3, 1])
    >>> carry, ys = model.apply(params, xs, seq_lengths=lengths, key=jax.random.key(1))
    >>> ys.shape, len(carry)
    ((3, 4, 6), 2)
    """
    layers = tuple(as_layer(layer) for layer in layers)
    if not layers:
        raise ValueError("`layers` must hold at least one layer, got none")
    rate = _checks.rate("dropout", dropout, up_to_one=True)  # torch accepts p=1
    everything = rate == 1.0
    config = StackConfig(layers, rate, _time_major(layers))

    def init(key, input_size):
        """A tuple of each layer's params, the first for ``input_size`` features."""
        params = []
        for layer, layer_key in zip(layers, jax.random.split(key, len(layers))):
            params.append(layer.init(layer_key, input_size))
            input_size = output_size(layer, input_size)
        return tuple(params)

    def initial_carry(params, batch_shape=()):
        """A tuple of each layer's initial carry."""
        return tuple(layer.initial_carry(p, batch_shape) for layer, p in zip(layers, params))

    def apply(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
              return_gates=False, resets=None, return_all_states=False):
        """Run the layers in turn over xs (B, T, I): ``(carries, ys (B, T, P))``, then
        gates and states, each a tuple with one entry per layer (see ``lj.stack``)."""
        params = _per_layer("params", params, len(layers))
        carry = (None,) * len(layers) if carry is None else _per_layer("carry", carry, len(layers))
        keys = _split_key(key, 2 * len(layers))
        outs, ys = [], xs
        for n, layer in enumerate(layers):
            if n > 0 and rate > 0 and keys[2 * n] is not None:
                ys = jnp.zeros_like(ys) if everything else drop(keys[2 * n], ys, rate)
            outs.append(layer.apply(params[n], ys, seq_lengths=seq_lengths, carry=carry[n],
                                    reverse=reverse, key=keys[2 * n + 1],
                                    return_gates=return_gates,
                                    **_given(resets, return_all_states)))
            ys = outs[-1][1]
        # carry, then gates and states when asked for: each a tuple with one entry per layer
        carries, _, *extras = zip(*outs)
        return (carries, ys, *extras)

    return Layer(init, apply, initial_carry, layers[-1].output_size, config)


def _per_layer(name: str, value, n: int):
    if type(value) not in (tuple, list) or len(value) != n:  # not a cell's LSTMState
        got = f"{type(value).__name__} of length {len(value)}" if type(value) in (tuple, list) else type(value).__name__
        raise TypeError(f"`{name}` of a {n}-layer stack must be a tuple of {n} entries, got {got}")
    return value


# --- walking a model: the one place that knows how layers nest ------------------------


def rows(layer: Layer) -> tuple[Layer, ...]:
    """The layers one above the other: a stack's layers, else ``(layer,)``."""
    return layer.sublayers if isinstance(layer.config, StackConfig) else (layer,)


def _two_way(layer: Layer) -> bool:
    return isinstance(layer.config, BidirectionalConfig)


def levels(layer: Layer) -> list[tuple[Layer, ...]]:
    """The layers of a model as rows of directions, the way PyTorch numbers them.

    A stack gives one row per layer, any other layer one row; a row is a
    bidirectional layer's (forward, backward), or the layer alone.
    """
    return [row.sublayers if _two_way(row) else (row,) for row in rows(layer)]


def split(layer: Layer, tree) -> list[tuple]:
    """A params or carry tree of ``layer`` in the rows and directions of ``levels``."""
    entries = rows(layer)
    trees = tuple(tree) if isinstance(layer.config, StackConfig) else (tree,)
    if len(trees) != len(entries):
        raise ValueError(f"`params` must hold {len(entries)} layers, got {len(trees)}")
    return [tuple(t) if _two_way(row) else (t,) for row, t in zip(entries, trees)]


def has_bidirectional(layer: Layer) -> bool:
    """Whether ``layer`` or any layer inside it (a stack's, a truncated layer's) is
    bidirectional, and so reads each whole sequence before its first output."""
    if _two_way(layer):
        return True
    inner = [getattr(layer.config, "layer", None), *layer.sublayers]  # "layer": truncated_bptt's
    return any(has_bidirectional(sub) for sub in inner if isinstance(sub, Layer))


def first_cell(layer: Layer, params) -> tuple[Any, Any]:
    """(the cell that reads ``layer``'s inputs, that cell's own params) from ``params``."""
    while layer.cell is None:
        inner = getattr(layer.config, "layer", None)  # truncated_bptt: its layer's params
        layer, params = (inner, params) if inner is not None else (layer.sublayers[0], params[0])
    if getattr(layer.config, "learn_initial_carry", False):
        params = params.cell  # RNNParams(cell, initial_carry)
    return layer.cell, params


def input_size(layer: Layer, params) -> int | None:
    """I, the number of input features ``layer``'s ``params`` expect, or None where its
    first cell cannot say (a cell of your own without ``input_size``)."""
    return protocol.input_size(*first_cell(layer, params))


def join(layer: Layer, parts: list) -> Any:
    """The inverse of ``split``: rows of per-direction entries -> ``layer``'s tree."""
    trees = tuple(Directions(*p) if _two_way(row) else p[0] for row, p in zip(rows(layer), parts))
    return trees if isinstance(layer.config, StackConfig) else trees[0]

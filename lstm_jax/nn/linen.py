"""Flax linen modules running the functional layers (see ``lstm_jax.nn``).

``variables["params"]`` is ``to_dict`` of the functional params, so they go in as
``module.apply({"params": to_dict(params)}, xs)`` and come out as
``from_dict(module.layer, variables["params"])``. I is read from ``xs`` at init.
A module that runs one cell (``RNN``, ``LSTM``, ``GRU``) is also a cell for flax's
``nn.RNN``: ``nn.RNN(LSTM(8))``. Unlike ``nn.RNN``, padding outputs are 0 and
``reverse=True`` keeps ys in the original order. Dropout and zoneout follow
``nn.Dropout``: on only when ``deterministic=False`` (attribute or call argument),
drawing one key from ``make_rng("dropout")``; a layer without them never needs it.

>>> import jax, jax.numpy as jnp, lstm_jax as lj
>>> from lstm_jax.nn import linen as ljnn
>>> model = ljnn.LSTM(6, zoneout=0.1, input_dropout=0.2, init="pytorch")
>>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
>>> variables = model.init(jax.random.key(0), xs, deterministic=True)
>>> ys = model.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})
>>> ys.shape, variables["params"]["w_ih"].shape
((3, 5, 6), (4, 24))
>>> model = ljnn.Stack([ljnn.Bidirectional(ljnn.LSTM(8), ljnn.GRU(8)), lj.gru(6)],
...                    return_carry=True)
>>> variables = model.init(jax.random.key(0), xs)
>>> carry, ys = model.apply(variables, xs, seq_lengths=jnp.array([5, 3, 0]))
>>> ys.shape, carry[0].forward.c.shape, sorted(variables["params"]["layers_1"])
((3, 5, 6), (3, 8), ['b', 'b_hn', 'w_hh', 'w_ih'])
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Sequence

import flax.linen as nn

from lstm_jax.cells import gru, lstm
from lstm_jax.cells.base import Layer
from lstm_jax.layers import bidirectional, stack
from lstm_jax.nn import _common
from lstm_jax.runner import RNNParams, rnn

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "RecurrentLayer", "Stack"]


class _Module(nn.Module):
    """The one wrapper of a functional layer; subclasses say which (``_functional``)."""

    _: dataclasses.KW_ONLY
    return_carry: bool = False
    deterministic: bool | None = None
    rng_collection: str = "dropout"
    num_feature_axes = 1  # as nn.RNNCellBase's: flax's nn.RNN can run a one-cell module

    def __post_init__(self):
        # Modules given as layers are kept as their layers: as flax submodules they would
        # take the names of params ("forward", "layers_0").
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "parent" and isinstance(value, (nn.Module, list, tuple)):
                object.__setattr__(self, field.name, _common.as_layer(value))
        super().__post_init__()

    @property  # not a method: flax's tabulate would try to print the Layer it returns
    def _functional(self) -> Layer:
        return _common.check_layer(self.layer)

    @nn.compact
    def __call__(self, xs, x_t=None, *, initial_carry=None, return_carry: bool | None = None,
                 deterministic: bool | None = None, **apply_options):
        layer = self._functional
        inputs = xs if x_t is None else x_t
        input_size = inputs.shape[-1] if getattr(inputs, "ndim", 0) >= 1 else 1
        if not self.variables.get("params") and self.is_mutable_collection("params"):
            params = layer.init(self.make_rng("params"), input_size)  # init: write them
            for name, value in _common.to_dict(params).items():
                self.param(name, lambda _, value=value: value)
        else:
            params = _common.from_dict(layer, nn.meta.unbox(self.variables.get("params", {})))
        if x_t is not None:  # called as a cell, (carry, x_t) -> (carry, y_t), by nn.RNN
            if layer.cell is None:
                raise TypeError("only a module running one cell (RNN, LSTM, GRU) steps as a "
                                f"cell, got a layer of {type(layer.config).__name__}")
            cell_params = params.cell if isinstance(params, RNNParams) else params  # learned carry
            return layer.cell.step(cell_params, xs, x_t)
        hint = (': True for evaluation, False (with rngs={"%s": key}) for training'
                % self.rng_collection)
        key = None
        if _common.wants_key(layer, self.deterministic, deterministic, hint):
            key = self.make_rng(self.rng_collection)
        out = layer.apply(params, xs, carry=initial_carry, key=key, **apply_options)
        return _common.outputs(out, self.return_carry if return_carry is None else return_carry)

    __call__.__doc__ = _common.CALL_DOC.format(rngs="")

    def initialize_carry(self, batch_shape: Sequence[int] = (), input_shape=None):
        """The initial carry for a batch of shape ``batch_shape`` (e.g. ``(B,)``): zeros, or
        the learned one when bound; no randomness. ``(rng, input_shape)``, as flax's
        ``nn.RNN`` calls a cell's, works too (the rng is not used)."""
        layer = self._functional
        if input_shape is not None:
            batch_shape = tuple(input_shape)[:-1]
        if self.scope is not None and self.variables.get("params"):
            params = _common.from_dict(layer, nn.meta.unbox(self.variables["params"]))
            return layer.initial_carry(params, tuple(batch_shape))
        return _common.zero_carry(layer, batch_shape)


class RecurrentLayer(_Module):
    """Any functional ``lj.Layer`` (or a module of this package) as a linen module.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.nn import from_dict, linen as ljnn
    >>> layer = lj.rnn(lj.gru(6))
    >>> model = ljnn.RecurrentLayer(layer, return_carry=True)
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> variables = model.init(jax.random.key(0), xs)
    >>> carry, ys = model.apply(variables, xs)
    >>> params = from_dict(layer, variables["params"])  # GRUParams
    >>> carry2, ys2 = layer.apply(params, xs)  # the same numbers
    >>> carry.shape, ys.shape, bool(jnp.all(ys == ys2))
    ((3, 6), (3, 5, 6), True)
    """

    layer: Any  # an lj.Layer, or a module of this package


def _derive(fn: Callable, name: str) -> type:
    """A module whose attributes are the arguments of ``fn`` and whose layer is ``fn(...)``;
    cells, layers and modules of this package are accepted wherever ``fn`` takes layers."""
    parameters = inspect.signature(fn).parameters.values()
    annotations: dict = {}
    namespace: dict = {}
    for p in parameters:
        if p.kind is p.KEYWORD_ONLY and "_" not in annotations:
            annotations["_"] = dataclasses.KW_ONLY
        annotations[p.name] = Any
        if p.default is not p.empty:
            namespace[p.name] = p.default

    def layer(self) -> Layer:  # the functional layer this module runs
        return fn(**{p.name: _common.as_layer(getattr(self, p.name)) for p in parameters})

    namespace.update(__annotations__=annotations, __module__=__name__, __qualname__=name,
                     __doc__=_common.wrapper_doc(fn, "linen"), layer=property(layer))
    return type(name, (_Module,), namespace)


RNN = _derive(rnn, "RNN")
Bidirectional = _derive(bidirectional, "Bidirectional")
Stack = _derive(stack, "Stack")
LSTM = _common.constructor(lstm, RNN, "LSTM", "linen")
GRU = _common.constructor(gru, RNN, "GRU", "linen")

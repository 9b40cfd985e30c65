"""Flax linen modules whose parameters are the functional pytree.

Every module here wraps one functional ``lj.Layer``, built from its attributes and
exposed as ``module.layer``, and its forward pass is ``module.layer.apply``: there is
no other math. The parameters live in one entry of the ``"params"`` collection::

    variables = {"params": {"layer": params}}   # params: what module.layer.init returns

e.g. ``LSTMParams(w_ih (I, 4H), w_hh (H, 4H), b (4H,), ...)`` for ``LSTM(H)``,
``Directions(forward, backward)`` for ``Bidirectional``, a tuple per layer for
``Stack``. So ``module.layer.apply(variables["params"]["layer"], xs)`` gives the module's
result, and functional params go in as ``module.apply({"params": {"layer": params}}, xs)``.

The input size I is read from ``xs`` when the module is initialised.

Calls follow ``flax.linen.RNN``: ``module(xs)`` returns ys (B, T, P), or
``(carry, ys)`` with ``return_carry=True`` (an attribute, overridable per call).
Unlike ``nn.RNN``, padding outputs are 0 and ``reverse=True`` returns ys in the
original order (the ``keep_order=True`` of ``nn.RNN``): see ``lj.rnn``.

Dropout and zoneout follow ``flax.linen.Dropout``: they are active only when
``deterministic=False`` (an attribute or a call argument; the call argument wins), and
then the module draws one key with ``self.make_rng("dropout")``. A layer without
dropout or zoneout never needs ``deterministic`` and never draws a key.

>>> import jax, jax.numpy as jnp
>>> from lstm_jax.nn import linen as ljnn
>>> model = ljnn.LSTM(6, zoneout=0.1, input_dropout=0.2)
>>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
>>> variables = model.init(jax.random.key(0), xs, deterministic=True)
>>> ys = model.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})
>>> ys.shape, variables["params"]["layer"].w_ih.shape
((3, 5, 6), (4, 24))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

import lstm_jax as lj
from lstm_jax.initializers import Initializer
from lstm_jax.nn import _common

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "RecurrentLayer", "Stack"]

PARAMS_NAME = "layer"  # variables["params"][PARAMS_NAME] holds the functional params


class _Recurrent(nn.Module):
    """The one wrapper of a functional layer; subclasses say which layer (``self.layer``)."""

    _: dataclasses.KW_ONLY
    return_carry: bool = False
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(
        self,
        xs,
        *,
        seq_lengths=None,
        initial_carry=None,
        reverse: bool = False,
        return_carry: bool | None = None,
        deterministic: bool | None = None,
        return_gates: bool = False,
    ):
        """Run the layer over ``xs``.

        Args:
          xs: (B, T, I), or (T, B, I) when the layer is time-major, or (T, I).
          seq_lengths: (B,) int; positions ``t >= seq_lengths[b]`` are padding: their
            outputs are 0 and the carry returned is the one after the last valid step.
          initial_carry: the carry to start from; zeros when None.
          reverse: run from the end (each sequence within its length); ys stay in the
            original order.
          return_carry: overrides the attribute: also return the final carry.
          deterministic: overrides the attribute; False turns dropout and zoneout on.
          return_gates: also return the per-step gate activations.

        Returns:
          ys (B, T, P); ``(carry, ys)`` when ``return_carry``; gates appended last when
          ``return_gates``.
        """
        layer = _common.check_layer(self.layer)
        input_size = xs.shape[-1] if getattr(xs, "ndim", 0) >= 1 else 1
        if self.has_variable("params", PARAMS_NAME):
            params = nn.meta.unbox(self.get_variable("params", PARAMS_NAME))
            _common.check_params(layer, params, input_size)
        else:
            params = self.param(PARAMS_NAME, lambda key: layer.init(key, input_size))
        key = None
        if _common.uses_key(layer):
            deterministic = self.deterministic if deterministic is None else deterministic
            if deterministic is None:
                raise ValueError(
                    "`deterministic` must be given to the constructor or the call of a "
                    "layer with dropout or zoneout: True for evaluation, False (with "
                    f'rngs={{"{self.rng_collection}": key}}) for training'
                )
            if not deterministic:
                key = self.make_rng(self.rng_collection)
        out = layer.apply(params, xs, seq_lengths=seq_lengths, carry=initial_carry,
                          reverse=reverse, key=key, return_gates=return_gates)
        return_carry = self.return_carry if return_carry is None else return_carry
        return _common.outputs(out, return_carry, return_gates)

    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """The zero carry for a batch of shape ``batch_shape`` (e.g. ``(B,)``).

        Draws no randomness and needs no key (unlike ``nn.RNNCellBase``'s): on a bound
        module it is ``layer.initial_carry(params, batch_shape)``, and on an unbound
        one the same zeros, computed from the layer's options alone.
        """
        if self.scope is not None and self.has_variable("params", PARAMS_NAME):
            params = nn.meta.unbox(self.get_variable("params", PARAMS_NAME))
            return self.layer.initial_carry(params, tuple(batch_shape))
        return _common.zero_carry(self.layer, batch_shape)


class RecurrentLayer(_Recurrent):
    """Any functional ``lj.Layer`` as a linen module.

    Attributes:
      layer: the layer, e.g. ``lj.stack([lj.bidirectional(lj.lstm(8)), lj.gru(6)])``.
      return_carry: return ``(carry, ys)`` instead of ys.
      deterministic: False turns dropout and zoneout on (needs a ``"dropout"`` rng).
      rng_collection: the rng stream dropout and zoneout draw from.

    Its params are ``variables["params"]["layer"]``, the pytree ``layer.init`` returns.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.nn import linen as ljnn
    >>> layer = lj.rnn(lj.gru(6))
    >>> model = ljnn.RecurrentLayer(layer, return_carry=True)
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> variables = model.init(jax.random.key(0), xs)
    >>> carry, ys = model.apply(variables, xs)
    >>> carry.shape, ys.shape
    ((3, 6), (3, 5, 6))
    >>> carry2, ys2 = layer.apply(variables["params"]["layer"], xs)  # the same numbers
    >>> bool(jnp.all(ys == ys2))
    True
    """

    layer: lj.Layer


class _Runner(_Recurrent):
    """The options of ``lj.rnn``, shared by the modules that run one cell."""

    _: dataclasses.KW_ONLY
    unroll: int = 1
    remat: bool | int = False
    time_major: bool = False
    hoist: bool | None = None
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: Any = 0.0
    fused_backward: bool = True

    def _run(self, cell: lj.Cell) -> lj.Layer:
        return lj.rnn(cell, unroll=self.unroll, remat=self.remat, time_major=self.time_major,
                      hoist=self.hoist, input_dropout=self.input_dropout,
                      recurrent_dropout=self.recurrent_dropout, zoneout=self.zoneout,
                      fused_backward=self.fused_backward)


class LSTM(_Runner):
    """An LSTM over sequences: ``lj.rnn(lj.lstm(hidden_size, ...), ...)`` as a module.

    Attributes are the options of ``lj.lstm`` (see it for the equations), except
    ``init`` which is ``init_preset`` here (``init`` is linen's ``Module.init``), then
    those of ``lj.rnn`` (``unroll``, ``remat``, ``time_major``, ``hoist``,
    ``input_dropout``, ``recurrent_dropout``, ``zoneout``, ``fused_backward``), then
    ``return_carry``, ``deterministic`` and ``rng_collection`` (see ``RecurrentLayer``).

    Shapes: xs (B, T, I) -> ys (B, T, P), P = ``proj_size`` or H; carry
    ``LSTMState(h (B, P), c (B, H))``. Params: ``variables["params"]["layer"]`` is an
    ``lj.LSTMParams``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.nn import linen as ljnn
    >>> model = ljnn.LSTM(6, proj_size=2, return_carry=True)
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> variables = model.init(jax.random.key(0), xs)
    >>> carry, ys = model.apply(variables, xs, seq_lengths=jnp.array([5, 3, 0]))
    >>> ys.shape, carry.h.shape, carry.c.shape
    ((3, 5, 2), (3, 2), (3, 6))
    >>> type(variables["params"]["layer"]).__name__
    'LSTMParams'
    """

    hidden_size: int
    _: dataclasses.KW_ONLY
    proj_size: int | None = None
    peephole: bool = False
    layer_norm: bool = False
    coupled: bool = False
    bias: bool = True
    forget_bias: float = 1.0
    init_preset: str = "flax"
    kernel_init: Initializer | None = None
    recurrent_init: Initializer | None = None
    bias_init: Initializer | None = None
    activation: str | Callable = "tanh"
    gate_activation: str | Callable = "sigmoid"
    param_dtype: Any = jnp.float32
    dtype: Any = None

    @property
    def layer(self) -> lj.Layer:
        """The functional layer this module runs."""
        return self._run(lj.lstm(
            self.hidden_size, proj_size=self.proj_size, peephole=self.peephole,
            layer_norm=self.layer_norm, coupled=self.coupled, bias=self.bias,
            forget_bias=self.forget_bias, init=self.init_preset, kernel_init=self.kernel_init,
            recurrent_init=self.recurrent_init, bias_init=self.bias_init,
            activation=self.activation, gate_activation=self.gate_activation,
            param_dtype=self.param_dtype, dtype=self.dtype,
        ))


class GRU(_Runner):
    """A GRU over sequences: ``lj.rnn(lj.gru(hidden_size, ...), ...)`` as a module.

    Attributes are the options of ``lj.gru`` (PyTorch/cuDNN gates r, z, n), with
    ``init_preset`` for its ``init``, then those of ``lj.rnn`` and of
    ``RecurrentLayer``, as for ``LSTM``.

    Shapes: xs (B, T, I) -> ys (B, T, H); the carry is h (B, H). Params:
    ``variables["params"]["layer"]`` is an ``lj.GRUParams``.

    >>> import jax, jax.numpy as jnp
    >>> from lstm_jax.nn import linen as ljnn
    >>> model = ljnn.GRU(6, return_carry=True)
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> variables = model.init(jax.random.key(0), xs)
    >>> carry, ys = model.apply(variables, xs, reverse=True)
    >>> carry.shape, ys.shape, variables["params"]["layer"].b_hn.shape
    ((3, 6), (3, 5, 6), (6,))
    """

    hidden_size: int
    _: dataclasses.KW_ONLY
    bias: bool = True
    init_preset: str = "flax"
    kernel_init: Initializer | None = None
    recurrent_init: Initializer | None = None
    bias_init: Initializer | None = None
    activation: str | Callable = "tanh"
    gate_activation: str | Callable = "sigmoid"
    param_dtype: Any = jnp.float32
    dtype: Any = None

    @property
    def layer(self) -> lj.Layer:
        """The functional layer this module runs."""
        return self._run(lj.gru(
            self.hidden_size, bias=self.bias, init=self.init_preset,
            kernel_init=self.kernel_init, recurrent_init=self.recurrent_init,
            bias_init=self.bias_init, activation=self.activation,
            gate_activation=self.gate_activation, param_dtype=self.param_dtype,
            dtype=self.dtype,
        ))


class RNN(_Runner):
    """Any cell over sequences: ``lj.rnn(cell, ...)`` as a module.

    Attributes:
      cell: an ``lj.Cell``: ``lj.lstm(...)``, ``lj.gru(...)``, ``lj.simple(...)``.
      unroll, remat, time_major, hoist, input_dropout, recurrent_dropout, zoneout:
        the options of ``lj.rnn``.
      return_carry, deterministic, rng_collection: as for ``RecurrentLayer``.

    Shapes: xs (B, T, I) -> ys (B, T, P). Params: ``variables["params"]["layer"]``,
    the cell's params.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.nn import linen as ljnn
    >>> model = ljnn.RNN(lj.simple(6, activation="relu"), time_major=True)
    >>> xs = jnp.ones((5, 3, 4))  # (T, B, I)
    >>> variables = model.init(jax.random.key(0), xs)
    >>> model.apply(variables, xs).shape
    (5, 3, 6)
    """

    cell: lj.Cell

    @property
    def layer(self) -> lj.Layer:
        """The functional layer this module runs."""
        return self._run(self.cell)


class Bidirectional(_Recurrent):
    """``lj.bidirectional(forward, backward, merge=...)`` as a module.

    Attributes:
      forward: an ``lj.Cell`` or ``lj.Layer`` run forward in time.
      backward: the same for the backward direction; a copy of ``forward`` (same
        options, its own params) when None.
      merge: ``"concat"`` (B, T, P_f + P_b), ``"sum"``, ``"mean"`` or ``"mul"`` (B, T, P).
      return_carry, deterministic, rng_collection: as for ``RecurrentLayer``.

    Params ``variables["params"]["layer"]`` and the carry are
    ``lj.Directions(forward, backward)``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.nn import linen as ljnn
    >>> model = ljnn.Bidirectional(lj.lstm(6), return_carry=True)
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> variables = model.init(jax.random.key(0), xs)
    >>> carry, ys = model.apply(variables, xs, seq_lengths=jnp.array([5, 2, 4]))
    >>> ys.shape, carry.backward.h.shape
    ((3, 5, 12), (3, 6))
    """

    forward: lj.Cell | lj.Layer
    backward: lj.Cell | lj.Layer | None = None
    _: dataclasses.KW_ONLY
    merge: str = "concat"

    @property
    def layer(self) -> lj.Layer:
        """The functional layer this module runs."""
        return lj.bidirectional(self.forward, self.backward, merge=self.merge)


class Stack(_Recurrent):
    """``lj.stack(layers, dropout=...)`` as a module: layers one after another.

    Attributes:
      layers: a tuple of ``lj.Layer`` (or ``lj.Cell``, run by ``lj.rnn``).
      dropout: dropout on the outputs of every layer but the last, as
        ``torch.nn.LSTM(dropout=p)``; active only when ``deterministic=False``.
      return_carry, deterministic, rng_collection: as for ``RecurrentLayer``.

    Params ``variables["params"]["layer"]`` and the carry are tuples with one entry
    per layer.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.nn import linen as ljnn
    >>> model = ljnn.Stack((lj.bidirectional(lj.lstm(8)), lj.gru(6)), dropout=0.1)
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> variables = model.init(jax.random.key(0), xs, deterministic=True)
    >>> ys = model.apply(variables, xs, deterministic=False,
    ...                  rngs={"dropout": jax.random.key(1)})
    >>> ys.shape, len(variables["params"]["layer"])
    ((3, 5, 6), 2)
    """

    layers: Sequence[lj.Cell | lj.Layer]
    _: dataclasses.KW_ONLY
    dropout: float = 0.0

    @property
    def layer(self) -> lj.Layer:
        """The functional layer this module runs."""
        return lj.stack(tuple(self.layers), dropout=self.dropout)

"""Flax nnx modules whose parameters are the functional pytree.

Every module here wraps one functional ``lj.Layer``, kept as ``module.layer``, and its
forward pass is ``module.layer.apply``: there is no other math. The parameters are the
pytree ``module.layer.init`` returns, with each array held in an ``nnx.Param``:

- ``module.params``: that pytree of ``nnx.Param`` (e.g. ``LSTMParams(w_ih=Param(...),
  ...)``), so ``nnx.state(module)`` has the paths ``("params", "w_ih")``, ... and
  ``nnx.Optimizer(module, tx, wrt=nnx.Param)``, ``nnx.grad``, ``nnx.jit`` and
  ``nnx.split``/``nnx.merge`` work as for any nnx module;
- ``module.get_params()``: the plain pytree of arrays (``nnx.as_pure(module.params)``),
  ready for ``module.layer.apply(params, xs)``;
- ``module.set_params(params)``: writes functional params into the module, checking
  their structure and shapes.

The input size I is given at construction, as ``nnx.Linear``'s ``in_features``.

Calls follow ``flax.linen.RNN``: ``module(xs)`` returns ys (B, T, P), or
``(carry, ys)`` with ``return_carry=True`` (an attribute, overridable per call).

Dropout and zoneout follow ``nnx.Dropout``: the module keeps a fork of
``rngs["dropout"]`` (the ``"default"`` stream when there is none) made at construction,
they are active while ``deterministic`` is False (the default, as for ``nnx.Dropout``),
and ``module.eval()`` / ``module.train()`` set it to True / False. A call may pass
``deterministic=`` and ``rngs=`` (an ``nnx.Rngs``, a stream or a key), which win. A
layer without dropout or zoneout keeps no stream and ignores both.

>>> import jax, jax.numpy as jnp
>>> from flax import nnx
>>> from lstm_jax.nn import nnx as ljnnx
>>> model = ljnnx.LSTM(4, 6, input_dropout=0.2, rngs=nnx.Rngs(0))
>>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
>>> ys_train = model(xs)  # dropout on: nnx modules start in training mode
>>> model.eval()
>>> ys_eval = model(xs)
>>> ys_eval.shape, bool(jnp.all(ys_eval == model.layer.apply(model.get_params(), xs)[1]))
((3, 5, 6), True)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import lstm_jax as lj
from lstm_jax import _checks
from lstm_jax.initializers import Initializer
from lstm_jax.nn import _common

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "RecurrentLayer", "Stack"]


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


class RecurrentLayer(nnx.Module):
    """Any functional ``lj.Layer`` as an nnx module.

    Args:
      input_size: I, the features of xs.
      layer: the layer, e.g. ``lj.stack([lj.bidirectional(lj.lstm(8)), lj.gru(6)])``.
      return_carry: return ``(carry, ys)`` instead of ys.
      deterministic: False (the default, as ``nnx.Dropout``) turns dropout and zoneout
        on; ``eval()`` and ``train()`` set it.
      rng_collection: the ``rngs`` stream dropout and zoneout draw from.
      rngs: ``rngs.params()`` initialises the params; a dropout stream is forked from
        ``rngs[rng_collection]`` when the layer has dropout or zoneout.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> layer = lj.rnn(lj.gru(6))
    >>> model = ljnnx.RecurrentLayer(4, layer, return_carry=True, rngs=nnx.Rngs(0))
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> carry, ys = model(xs)
    >>> carry.shape, ys.shape, model.params.w_ih.shape
    ((3, 6), (3, 5, 6), (4, 18))
    >>> carry2, ys2 = layer.apply(model.get_params(), xs)  # the same numbers
    >>> bool(jnp.all(ys == ys2))
    True
    """

    def __init__(
        self,
        input_size: int,
        layer: lj.Layer,
        *,
        return_carry: bool = False,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        self.layer = _common.check_layer(layer)
        self.input_size = _checks.positive_int("input_size", input_size)
        self.return_carry = return_carry
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        params = layer.init(rngs.params(), self.input_size)
        self.params = nnx.data(jax.tree.map(nnx.Param, params))
        if _common.uses_key(layer):
            self.rngs = rngs[rng_collection].fork()
        else:
            self.rngs = nnx.data(None)

    def __call__(
        self,
        xs,
        *,
        seq_lengths=None,
        initial_carry=None,
        reverse: bool = False,
        return_carry: bool | None = None,
        deterministic: bool | None = None,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
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
          rngs: overrides the stream kept at construction for this call.
          return_gates: also return the per-step gate activations.

        Returns:
          ys (B, T, P); ``(carry, ys)`` when ``return_carry``; gates appended last when
          ``return_gates``.
        """
        key = None
        if _common.uses_key(self.layer):
            deterministic = self.deterministic if deterministic is None else deterministic
            if deterministic is None:
                raise ValueError(
                    "`deterministic` must be given to the constructor or the call of a "
                    "layer with dropout or zoneout, or set with module.train()/eval()"
                )
            if not deterministic:
                key = self._key(rngs)
        out = self.layer.apply(self.get_params(), xs, seq_lengths=seq_lengths,
                               carry=initial_carry, reverse=reverse, key=key,
                               return_gates=return_gates)
        return_carry = self.return_carry if return_carry is None else return_carry
        return _common.outputs(out, return_carry, return_gates)

    def _key(self, rngs) -> jax.Array:
        rngs = self.rngs if rngs is None else rngs
        if isinstance(rngs, nnx.Rngs):
            return rngs[self.rng_collection]()
        if isinstance(rngs, nnx.RngStream):
            return rngs()
        if isinstance(rngs, jax.Array):
            return rngs
        raise TypeError(
            "`rngs` must be an nnx.Rngs, an nnx.RngStream or a key when dropout or zoneout "
            f"is on, got {type(rngs).__name__}"
        )

    def get_params(self):
        """The functional params: ``module.params`` with each ``nnx.Param`` unwrapped."""
        return nnx.as_pure(self.params)

    def set_params(self, params) -> None:
        """Write functional params (e.g. from ``layer.init`` or ``lj.interop``) in place.

        The ``nnx.Param`` objects stay the same, only their values change, so an
        ``nnx.Optimizer`` built on the module keeps tracking them.
        """
        current = self.get_params()
        got_def, want_def = jax.tree.structure(params), jax.tree.structure(current)
        if got_def != want_def:
            raise TypeError(f"`params` must have the structure {want_def}, got {got_def}")
        shapes = lambda tree: jax.tree.map(jnp.shape, tree)  # noqa: E731
        if shapes(params) != shapes(current):
            raise ValueError(
                f"`params` must have the shapes {shapes(current)}, got {shapes(params)}"
            )
        jax.tree.map(lambda var, value: var.set_value(jnp.asarray(value)), self.params, params,
                     is_leaf=_is_variable)

    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """The zero carry for a batch of shape ``batch_shape`` (e.g. ``(B,)``).

        ``layer.initial_carry(params, batch_shape)``: draws no randomness and leaves the
        module's rng streams untouched.
        """
        return self.layer.initial_carry(self.get_params(), tuple(batch_shape))

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view(module, deterministic=...)``, as ``nnx.Dropout``'s."""
        if deterministic is not None:
            self.deterministic = deterministic


def _run(cell: lj.Cell, unroll, remat, time_major, hoist, input_dropout, recurrent_dropout,
         zoneout, fused_backward) -> lj.Layer:
    return lj.rnn(cell, unroll=unroll, remat=remat, time_major=time_major, hoist=hoist,
                  input_dropout=input_dropout, recurrent_dropout=recurrent_dropout,
                  zoneout=zoneout, fused_backward=fused_backward)


class LSTM(RecurrentLayer):
    """An LSTM over sequences: ``lj.rnn(lj.lstm(hidden_size, ...), ...)`` as a module.

    Args:
      input_size: I.
      hidden_size: H.
      proj_size, peephole, layer_norm, coupled, bias, forget_bias, init, kernel_init,
        recurrent_init, bias_init, activation, gate_activation, param_dtype, dtype:
        the options of ``lj.lstm`` (see it for the equations).
      unroll, remat, time_major, hoist, input_dropout, recurrent_dropout, zoneout,
        fused_backward: the options of ``lj.rnn``.
      return_carry, deterministic, rng_collection, rngs: as for ``RecurrentLayer``.

    Shapes: xs (B, T, I) -> ys (B, T, P), P = ``proj_size`` or H; carry
    ``LSTMState(h (B, P), c (B, H))``. ``module.params`` is an ``lj.LSTMParams``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> model = ljnnx.LSTM(4, 6, proj_size=2, return_carry=True, rngs=nnx.Rngs(0))
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> carry, ys = model(xs, seq_lengths=jnp.array([5, 3, 0]))
    >>> ys.shape, carry.h.shape, carry.c.shape, type(model.params).__name__
    ((3, 5, 2), (3, 2), (3, 6), 'LSTMParams')
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        proj_size: int | None = None,
        peephole: bool = False,
        layer_norm: bool = False,
        coupled: bool = False,
        bias: bool = True,
        forget_bias: float = 1.0,
        init: str = "flax",
        kernel_init: Initializer | None = None,
        recurrent_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        activation: str | Callable = "tanh",
        gate_activation: str | Callable = "sigmoid",
        param_dtype: Any = jnp.float32,
        dtype: Any = None,
        unroll: int = 1,
        remat: bool | int = False,
        time_major: bool = False,
        hoist: bool | None = None,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: Any = 0.0,
        fused_backward: bool = True,
        return_carry: bool = False,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        cell = lj.lstm(
            hidden_size, proj_size=proj_size, peephole=peephole, layer_norm=layer_norm,
            coupled=coupled, bias=bias, forget_bias=forget_bias, init=init,
            kernel_init=kernel_init, recurrent_init=recurrent_init, bias_init=bias_init,
            activation=activation, gate_activation=gate_activation,
            param_dtype=param_dtype, dtype=dtype,
        )
        layer = _run(cell, unroll, remat, time_major, hoist, input_dropout,
                     recurrent_dropout, zoneout, fused_backward)
        super().__init__(input_size, layer, return_carry=return_carry,
                         deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)


class GRU(RecurrentLayer):
    """A GRU over sequences: ``lj.rnn(lj.gru(hidden_size, ...), ...)`` as a module.

    Args:
      input_size: I.
      hidden_size: H.
      bias, init, kernel_init, recurrent_init, bias_init, activation, gate_activation,
        param_dtype, dtype: the options of ``lj.gru`` (PyTorch/cuDNN gates r, z, n).
      unroll, remat, time_major, hoist, input_dropout, recurrent_dropout, zoneout,
        fused_backward: the options of ``lj.rnn``.
      return_carry, deterministic, rng_collection, rngs: as for ``RecurrentLayer``.

    Shapes: xs (B, T, I) -> ys (B, T, H); the carry is h (B, H). ``module.params`` is
    an ``lj.GRUParams``.

    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> model = ljnnx.GRU(4, 6, return_carry=True, rngs=nnx.Rngs(0))
    >>> carry, ys = model(jnp.ones((3, 5, 4)), reverse=True)  # xs (B, T, I)
    >>> carry.shape, ys.shape, model.params.b_hn.shape
    ((3, 6), (3, 5, 6), (6,))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        init: str = "flax",
        kernel_init: Initializer | None = None,
        recurrent_init: Initializer | None = None,
        bias_init: Initializer | None = None,
        activation: str | Callable = "tanh",
        gate_activation: str | Callable = "sigmoid",
        param_dtype: Any = jnp.float32,
        dtype: Any = None,
        unroll: int = 1,
        remat: bool | int = False,
        time_major: bool = False,
        hoist: bool | None = None,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: Any = 0.0,
        fused_backward: bool = True,
        return_carry: bool = False,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        cell = lj.gru(
            hidden_size, bias=bias, init=init, kernel_init=kernel_init,
            recurrent_init=recurrent_init, bias_init=bias_init, activation=activation,
            gate_activation=gate_activation, param_dtype=param_dtype, dtype=dtype,
        )
        layer = _run(cell, unroll, remat, time_major, hoist, input_dropout,
                     recurrent_dropout, zoneout, fused_backward)
        super().__init__(input_size, layer, return_carry=return_carry,
                         deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)


class RNN(RecurrentLayer):
    """Any cell over sequences: ``lj.rnn(cell, ...)`` as a module.

    Args:
      input_size: I.
      cell: an ``lj.Cell``: ``lj.lstm(...)``, ``lj.gru(...)``, ``lj.simple(...)``.
      unroll, remat, time_major, hoist, input_dropout, recurrent_dropout, zoneout,
        fused_backward: the options of ``lj.rnn``.
      return_carry, deterministic, rng_collection, rngs: as for ``RecurrentLayer``.

    Shapes: xs (B, T, I) -> ys (B, T, P). ``module.params`` is the cell's params.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> model = ljnnx.RNN(4, lj.simple(6, activation="relu"), time_major=True,
    ...                   rngs=nnx.Rngs(0))
    >>> model(jnp.ones((5, 3, 4))).shape  # xs (T, B, I)
    (5, 3, 6)
    """

    def __init__(
        self,
        input_size: int,
        cell: lj.Cell,
        *,
        unroll: int = 1,
        remat: bool | int = False,
        time_major: bool = False,
        hoist: bool | None = None,
        input_dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: Any = 0.0,
        fused_backward: bool = True,
        return_carry: bool = False,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        layer = _run(cell, unroll, remat, time_major, hoist, input_dropout,
                     recurrent_dropout, zoneout, fused_backward)
        super().__init__(input_size, layer, return_carry=return_carry,
                         deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)


class Bidirectional(RecurrentLayer):
    """``lj.bidirectional(forward, backward, merge=...)`` as a module.

    Args:
      input_size: I.
      forward: an ``lj.Cell`` or ``lj.Layer`` run forward in time.
      backward: the same for the backward direction; a copy of ``forward`` (same
        options, its own params) when None.
      merge: ``"concat"`` (B, T, P_f + P_b), ``"sum"``, ``"mean"`` or ``"mul"`` (B, T, P).
      return_carry, deterministic, rng_collection, rngs: as for ``RecurrentLayer``.

    ``module.params`` and the carry are ``lj.Directions(forward, backward)``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> model = ljnnx.Bidirectional(4, lj.lstm(6), return_carry=True, rngs=nnx.Rngs(0))
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> carry, ys = model(xs, seq_lengths=jnp.array([5, 2, 4]))
    >>> ys.shape, carry.backward.h.shape, model.params.forward.w_ih.shape
    ((3, 5, 12), (3, 6), (4, 24))
    """

    def __init__(
        self,
        input_size: int,
        forward: lj.Cell | lj.Layer,
        backward: lj.Cell | lj.Layer | None = None,
        *,
        merge: str = "concat",
        return_carry: bool = False,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        layer = lj.bidirectional(forward, backward, merge=merge)
        super().__init__(input_size, layer, return_carry=return_carry,
                         deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)


class Stack(RecurrentLayer):
    """``lj.stack(layers, dropout=...)`` as a module: layers one after another.

    Args:
      input_size: I, the features of the first layer's xs.
      layers: a sequence of ``lj.Layer`` (or ``lj.Cell``, run by ``lj.rnn``).
      dropout: dropout on the outputs of every layer but the last, as
        ``torch.nn.LSTM(dropout=p)``; active while ``deterministic`` is False.
      return_carry, deterministic, rng_collection, rngs: as for ``RecurrentLayer``.

    ``module.params`` and the carry are tuples with one entry per layer.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> model = ljnnx.Stack(4, [lj.bidirectional(lj.lstm(8)), lj.gru(6)], dropout=0.1,
    ...                     rngs=nnx.Rngs(0))
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> ys_train = model(xs)
    >>> model.eval()
    >>> model(xs).shape, len(model.params), bool(jnp.all(model(xs) == model(xs)))
    ((3, 5, 6), 2, True)
    """

    def __init__(
        self,
        input_size: int,
        layers: Sequence[lj.Cell | lj.Layer],
        *,
        dropout: float = 0.0,
        return_carry: bool = False,
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx.Rngs,
    ):
        layer = lj.stack(layers, dropout=dropout)
        super().__init__(input_size, layer, return_carry=return_carry,
                         deterministic=deterministic, rng_collection=rng_collection, rngs=rngs)

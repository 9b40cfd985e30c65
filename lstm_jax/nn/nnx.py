"""Flax nnx modules running the functional layers.

The modules of ``lstm_jax.nn.linen``, derived the same way, taking the input size I
first (as ``nnx.Linear``'s ``in_features``) and ``rngs=``. ``module.params`` is
``to_dict`` of the functional params with each array in an ``nnx.Param`` (so
``nnx.Optimizer(module, tx, wrt=nnx.Param)``, ``nnx.grad``, ``nnx.split`` work as for
any nnx module); ``module.get_params()`` gives the functional params and
``module.set_params(params)`` writes some in. A module given to ``Bidirectional``,
``Stack`` or ``RecurrentLayer`` brings its params, as ``nnx.Sequential``'s layers do.

Dropout and zoneout follow ``nnx.Dropout``: the module keeps a fork of
``rngs["dropout"]`` (or ``"default"``) when its layer has them, they are on while
``deterministic`` is False (the default; ``module.eval()``/``train()`` set it), and a
call's ``deterministic=`` and ``rngs=`` (an ``nnx.Rngs``, a stream or a key) win.

>>> import jax, jax.numpy as jnp, lstm_jax as lj
>>> from flax import nnx
>>> from lstm_jax.nn import nnx as ljnnx
>>> model = ljnnx.LSTM(4, 6, input_dropout=0.2, init="pytorch", rngs=nnx.Rngs(0))
>>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
>>> ys_train = model(xs)  # dropout on: nnx modules start in training mode
>>> model.eval()
>>> ys_eval = model(xs)
>>> ys_eval.shape, bool(jnp.all(ys_eval == model.layer.apply(model.get_params(), xs)[1]))
((3, 5, 6), True)
>>> first = ljnnx.Bidirectional(4, ljnnx.LSTM(4, 8, rngs=nnx.Rngs(1)), lj.gru(8),
...                             rngs=nnx.Rngs(2))
>>> model = ljnnx.Stack(4, [first, lj.gru(6)], return_carry=True, rngs=nnx.Rngs(3))
>>> carry, ys = model(xs, seq_lengths=jnp.array([5, 3, 0]))
>>> ys.shape, model.params["layers_0"]["forward"]["w_ih"].shape
((3, 5, 6), (4, 32))
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lstm_jax import _checks
from lstm_jax.cells import gru, lstm
from lstm_jax.layers import bidirectional, stack
from lstm_jax.nn import _common
from lstm_jax.runner import rnn

__all__ = ["GRU", "LSTM", "RNN", "Bidirectional", "RecurrentLayer", "Stack"]


class RecurrentLayer(nnx.Module):
    """Any functional ``lj.Layer`` (or a module of this package) as an nnx module.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> from flax import nnx
    >>> from lstm_jax.nn import nnx as ljnnx
    >>> layer = lj.rnn(lj.gru(6))
    >>> model = ljnnx.RecurrentLayer(4, layer, return_carry=True, rngs=nnx.Rngs(0))
    >>> xs = jnp.ones((3, 5, 4))  # (B, T, I)
    >>> carry, ys = model(xs)
    >>> carry2, ys2 = layer.apply(model.get_params(), xs)  # the same numbers
    >>> carry.shape, model.params["w_ih"].shape, bool(jnp.all(ys == ys2))
    ((3, 6), (4, 18), True)
    """

    def __init__(self, input_size: int, layer, *, return_carry: bool = False,
                 deterministic: bool | None = False, rng_collection: str = "dropout",
                 rngs: nnx.Rngs):
        self.layer = _common.check_layer(layer)
        self.input_size = _checks.positive_int("input_size", input_size)
        self.return_carry = return_carry
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        own = isinstance(layer, RecurrentLayer)  # a module given brings its params
        params = layer.get_params() if own else self.layer.init(rngs.params(), self.input_size)
        self.params = nnx.data(jax.tree.map(nnx.Param, _common.to_dict(params)))
        self.rngs = rngs[rng_collection].fork() if self.layer.uses_key else nnx.data(None)

    def __call__(self, xs, *, initial_carry=None, return_carry: bool | None = None,
                 deterministic: bool | None = None,
                 rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None, **apply_options):
        hint = ", or set with module.train()/eval()"
        wants = _common.wants_key(self.layer, self.deterministic, deterministic, hint)
        key = self._key(rngs) if wants else None
        out = self.layer.apply(self._params(), xs, carry=initial_carry, key=key, **apply_options)
        return _common.outputs(out, self.return_carry if return_carry is None else return_carry)

    __call__.__doc__ = _common.CALL_DOC.format(
        rngs="\n  rngs: overrides the stream kept at construction for this call.")

    def _key(self, rngs) -> jax.Array:
        rngs = self.rngs if rngs is None else rngs
        rngs = rngs[self.rng_collection] if isinstance(rngs, nnx.Rngs) else rngs
        key = rngs() if isinstance(rngs, nnx.RngStream) else rngs
        if not isinstance(key, jax.Array):
            raise TypeError("`rngs` must be an nnx.Rngs, an nnx.RngStream or a key when "
                            f"dropout or zoneout is on, got {type(rngs).__name__}")
        return key

    def get_params(self):
        """The functional params (``LSTMParams``, ...) of ``module.params``'s arrays."""
        return _common.from_dict(self.layer, nnx.as_pure(self.params))

    _params = get_params  # what calls use: nnx.tabulate shows no row for a private name

    def set_params(self, params) -> None:
        """Write functional params (e.g. from ``lj.interop``) into the same ``nnx.Param``
        objects, so an ``nnx.Optimizer`` built on the module keeps tracking them."""
        _checks.tree_like("params", params, self.get_params(), dtypes=False)
        jax.tree.map(lambda var, value: var.set_value(jnp.asarray(value)), self.params,
                     _common.to_dict(params), is_leaf=lambda x: isinstance(x, nnx.Variable))

    def initialize_carry(self, batch_shape: Sequence[int] = ()):
        """``layer.initial_carry(params, batch_shape)``, e.g. batch_shape ``(B,)``: zeros,
        or the learned one (``learn_initial_carry``); it draws no randomness."""
        return self.layer.initial_carry(self.get_params(), tuple(batch_shape))

    def set_view(self, deterministic: bool | None = None):
        """Used by ``nnx.view(module, deterministic=...)``, as ``nnx.Dropout``'s."""
        if deterministic is not None:
            self.deterministic = deterministic


def _adopt(params, parts: list):
    """``params`` of a bidirectional layer or a stack with the entries of the sublayers
    given as modules replaced by those modules' params; None when none was."""
    flat = [p for part in parts for p in (part if type(part) in (list, tuple) else [part])]
    modules = {n: p for n, p in enumerate(flat) if isinstance(p, RecurrentLayer)}
    if not modules:
        return None
    top = jax.tree.structure(params, is_leaf=lambda x: x is not params)  # one level
    entries = [modules[n].get_params() if n in modules else entry
               for n, entry in enumerate(top.flatten_up_to(params))]
    return jax.tree.unflatten(top, entries)


def _derive(fn: Callable, name: str) -> type:
    """``name(input_size, *arguments of fn, rngs=...)``, running ``fn(...)``; sublayers
    given as modules of this package keep their params."""
    own = list(inspect.signature(RecurrentLayer.__init__).parameters.values())[1:]  # no self
    signature = inspect.Signature(
        own[:1] + list(inspect.signature(fn).parameters.values()) + own[2:])

    def __init__(self, *args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        module_options = {p.name: arguments.pop(p.name) for p in own if p.name in arguments}
        parts = list(arguments.values())
        layer = fn(**{k: _common.as_layer(v) for k, v in arguments.items()})
        RecurrentLayer.__init__(self, layer=layer, **module_options)
        params = _adopt(self.get_params(), parts)
        if params is not None:
            self.set_params(params)

    doc = _common.wrapper_doc(fn, "nnx", rngs="\n  rngs: ``rngs.params()`` initialises "
                              "the params; dropout streams fork from ``rngs``.")
    cls = type(name, (RecurrentLayer,), {"__init__": __init__, "__doc__": doc,
                                         "__module__": __name__, "__qualname__": name})
    cls.__signature__ = signature
    return cls


RNN = _derive(rnn, "RNN")
Bidirectional = _derive(bidirectional, "Bidirectional")
Stack = _derive(stack, "Stack")
LSTM = _common.constructor(lstm, RNN, "LSTM", "nnx")
GRU = _common.constructor(gru, RNN, "GRU", "nnx")

"""Thin Flax wrappers, linen and nnx, whose parameters ARE the functional pytree.

Each module wraps one functional ``lj.Layer`` (``module.layer``) and its forward pass
is ``module.layer.apply``; ``LSTM``, ``GRU``, ``RNN``, ``Bidirectional`` and ``Stack``
only build that layer from their options (``lj.rnn(lj.lstm(H, ...), ...)``,
``lj.bidirectional(...)``, ``lj.stack(...)``) and hand it to the one generic wrapper,
``RecurrentLayer``, which also wraps any layer you build yourself.

Where things are, linen (``lstm_jax.nn.linen``) / nnx (``lstm_jax.nn.nnx``):

- construction: ``LSTM(H, ...)``, ``RecurrentLayer(layer)`` /
  ``LSTM(I, H, ..., rngs=nnx.Rngs(0))``, ``RecurrentLayer(I, layer, rngs=...)``;
- the input size I: read from ``xs`` by ``init`` / given at construction, as
  ``nnx.Linear``'s ``in_features``;
- the functional params (the pytree ``module.layer.init`` returns, same NamedTuples,
  names, shapes and layout): ``variables["params"]["layer"]`` /
  ``module.get_params()``, while ``module.params`` holds the same pytree with each
  array in an ``nnx.Param``;
- functional params in: ``module.apply({"params": {"layer": params}}, xs)`` /
  ``module.set_params(params)``;
- training (dropout and zoneout on): ``deterministic=False`` with
  ``rngs={"dropout": key}`` / ``module.train()``, the default, as ``nnx.Dropout``;
- evaluation: ``deterministic=True`` / ``module.eval()``;
- the zero carry: ``initialize_carry(batch_shape)`` in both; it draws no randomness.

Both calls take ``xs`` (B, T, I) and ``seq_lengths=``, ``initial_carry=``,
``reverse=``, ``return_carry=``, ``deterministic=``, ``return_gates=`` and return ys
(B, T, P), or ``(carry, ys)`` with ``return_carry=True``, as ``flax.linen.RNN``.

This package imports flax; the functional core does not.
"""

from lstm_jax.nn import linen, nnx

__all__ = ["linen", "nnx"]

"""Flax modules, linen (``lstm_jax.nn.linen``) and nnx (``lstm_jax.nn.nnx``), running
the functional layers; their params are ``to_dict(params)``, plain dicts of arrays.

Each module runs one functional ``lj.Layer`` (``module.layer``) with its ``apply``, and
is derived from the functional API rather than written again: ``RNN``,
``Bidirectional`` and ``Stack`` take the arguments of ``lj.rnn``, ``lj.bidirectional``
and ``lj.stack``; ``LSTM(H, ...)`` and ``GRU(H, ...)`` build ``RNN(lj.lstm(H, ...),
...)`` with every option of the cell and of ``lj.rnn`` under its functional name
(``init=`` is the preset); ``RecurrentLayer(layer)`` runs any layer. Cells, layers and
modules compose: ``Bidirectional(LSTM(8), LSTM(8))``, ``Stack([module, lj.gru(6)])``.
Calls take ``xs`` (B, T, I), ``initial_carry=``, ``return_carry=``, ``deterministic=``
and the rest of ``apply``'s keywords, returning ys (B, T, P), or ``(carry, ys)`` with
``return_carry=True``, as ``flax.linen.RNN``. This package
imports flax; the functional core does not.
"""

from lstm_jax.nn import linen, nnx
from lstm_jax.nn._common import from_dict, to_dict

__all__ = ["from_dict", "linen", "nnx", "to_dict"]

"""What the linen and nnx wrappers share: which layers use a key, params checks, outputs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.rnn import Layer


def check_layer(layer: Any) -> Layer:
    if not isinstance(layer, Layer):
        raise TypeError(
            "`layer` must be a Layer such as lj.rnn(lj.lstm(...)), lj.bidirectional(...) or "
            f"lj.stack(...), got {type(layer).__name__}"
        )
    return layer


def uses_key(layer: Layer) -> bool:
    """Whether ``layer.apply`` does anything with its ``key``: dropout or zoneout somewhere.

    A layer built outside ``rnn``/``bidirectional``/``stack`` is assumed to use it.
    """
    config = layer.config
    kind = getattr(config, "kind", None)
    if kind == "rnn":
        return (
            config.input_dropout > 0
            or config.recurrent_dropout > 0
            or any(p > 0 for p in jax.tree.leaves(config.zoneout))
        )
    if kind == "bidirectional":
        return uses_key(config.forward) or uses_key(config.backward)
    if kind == "stack":
        return config.dropout > 0 or any(uses_key(sub) for sub in config.layers)
    return True


def _shapes(tree) -> str:
    return str(jax.tree.map(lambda a: tuple(np.shape(a)), tree))


def check_params(layer: Layer, params, input_size: int) -> None:
    """Raise unless ``params`` has the structure and shapes ``layer.init`` gives.

    Shapes that depend on the input size are not compared: an ``xs`` with the wrong
    feature size is left to ``layer.apply``, whose error names ``xs``.
    """
    key = jax.random.key(0)
    want = jax.eval_shape(lambda: layer.init(key, input_size))
    other = jax.eval_shape(lambda: layer.init(key, input_size + 1))
    got_def, want_def = jax.tree.structure(params), jax.tree.structure(want)
    if got_def != want_def:
        raise TypeError(
            f"`params` must have the structure that the layer's init gives, {want_def}, "
            f"got {got_def}"
        )
    for got, a, b in zip(jax.tree.leaves(params), jax.tree.leaves(want), jax.tree.leaves(other)):
        if a.shape == b.shape and np.shape(got) != a.shape:
            raise ValueError(
                f"`params` must have the shapes that the layer's init gives, "
                f"{_shapes(want)} for input size {input_size}, got {_shapes(params)}"
            )


def outputs(out: tuple, return_carry: bool, return_gates: bool):
    """ys, (carry, ys), (ys, gates) or (carry, ys, gates) from ``layer.apply``'s result."""
    carry, ys = out[0], out[1]
    result = (carry, ys) if return_carry else (ys,)
    if return_gates:
        result += (out[2],)
    return result[0] if len(result) == 1 else result


def zero_carry(layer: Layer, batch_shape) -> Any:
    """``layer.initial_carry`` without params: zeros of the carry's shapes and dtypes.

    Traces ``init`` abstractly (no random numbers are drawn, no key is consumed) to
    learn the params' dtypes; the carry does not depend on the input size.
    """
    batch_shape = tuple(batch_shape)
    key = jax.random.key(0)
    abstract = jax.eval_shape(lambda: layer.initial_carry(layer.init(key, 1), batch_shape))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract)

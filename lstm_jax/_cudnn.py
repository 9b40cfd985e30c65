"""The LSTM through cuDNN (``jax.experimental.rnn``), for the configurations it runs.

cuDNN computes the plain LSTM of PyTorch: gates (i, f, g, o), sigmoid and tanh, two
biases, float32, no peephole, projection or layer norm. Its weights are one flat
vector: ``W_ih`` (4H, I), ``W_hh`` (4H, H), then ``b_ih``, ``b_hh`` (4H,) for a
one-layer, one-direction LSTM. Our params are the same numbers transposed (``x @ w``)
with the two biases summed, so the conversion is a transpose and a concatenation.

Padding follows ``jax.experimental.rnn``: outputs past a sequence's length are 0 and
the carry is the one after its last valid step, as in ``lj.rnn``; a sequence of
length 0 keeps its initial carry and gives zeros (cuDNN takes lengths >= 1 only). Reversal is
done by the runner before and after, as for the XLA loop.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from lstm_jax.cells.lstm import LSTMParams, LSTMState

Array = jax.Array


def unsupported(cell_config, dtype=None) -> str | None:
    """Why cuDNN cannot run this cell, or None when it can."""
    if cell_config.kind != "lstm":
        return f"cuDNN runs the LSTM only, not a {cell_config.kind} cell"
    for option in ("proj_size", "peephole", "layer_norm", "coupled"):
        if getattr(cell_config, option):
            return f"cuDNN's LSTM has no `{option}`"
    if cell_config.gate_changes:
        return f"cuDNN's LSTM has no `{cell_config.gate_changes[0]}`"
    activations = (cell_config.candidate_activation, cell_config.cell_activation)
    if any(a is not jnp.tanh for a in activations) or cell_config.gate_activation is not jax.nn.sigmoid:
        return "cuDNN's LSTM uses sigmoid gates and tanh, no other activations"
    for name, value in (("param_dtype", cell_config.param_dtype), ("dtype", dtype or cell_config.dtype)):
        if value is not None and jnp.dtype(value) != jnp.float32:
            return f"jax.experimental.rnn runs float32 only, got `{name}` {jnp.dtype(value)}"
    return None


def to_weights(params: LSTMParams) -> Array:
    """Our params (w_ih (I, 4H), w_hh (H, 4H), b (4H,) or None) -> cuDNN's flat vector."""
    gates = params.w_ih.shape[1]
    b_ih = params.b if params.b is not None else jnp.zeros(gates, params.w_ih.dtype)
    return jnp.concatenate([params.w_ih.T.ravel(), params.w_hh.T.ravel(), b_ih,
                            jnp.zeros(gates, b_ih.dtype)])


def from_weights(weights: Array, input_size: int, hidden_size: int) -> LSTMParams:
    """cuDNN's flat vector of a one-layer LSTM -> our params (the biases summed)."""
    G = 4 * hidden_size
    sizes = [G * input_size, G * hidden_size, G, G]
    w_ih, w_hh, b_ih, b_hh = jnp.split(weights, [sum(sizes[:i]) for i in range(1, 4)])
    return LSTMParams(w_ih.reshape(G, input_size).T, w_hh.reshape(G, hidden_size).T,
                      b_ih + b_hh, None, None, None)


def _cudnn_lstm(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size):
    from jax.experimental import rnn as experimental_rnn

    return experimental_rnn.lstm(x, h_0, c_0, weights, seq_lengths, input_size=input_size,
                                 hidden_size=hidden_size, num_layers=1, dropout=0.0,
                                 bidirectional=False)


def run(params: LSTMParams, carry: LSTMState, xs_T: Array, lengths: Array | None,
        implementation: Callable | None = None) -> tuple[LSTMState, Array]:
    """One LSTM layer forward over xs_T (T, B, I) -> (carry, ys_T (T, B, H)).

    ``implementation`` has ``jax.experimental.rnn.lstm``'s signature (one layer, one
    direction); tests pass its CPU reference.
    """
    implementation = implementation or _cudnn_lstm
    T, B, I = xs_T.shape
    H = params.w_hh.shape[0]
    full = jnp.full((B,), T, jnp.int32)
    steps = full if lengths is None else lengths.astype(jnp.int32)
    # cuDNN wants every length >= 1: a length-0 sequence runs one step, then is undone
    ys, h_n, c_n = implementation(jnp.moveaxis(xs_T, 0, 1), carry.h[None], carry.c[None],
                                  to_weights(params), jnp.maximum(steps, 1), input_size=I,
                                  hidden_size=H)
    empty = (steps == 0)[:, None]
    new = LSTMState(jnp.where(empty, carry.h, h_n[0]), jnp.where(empty, carry.c, c_n[0]))
    return new, jnp.where(empty[None], 0.0, jnp.moveaxis(ys, 1, 0)).astype(ys.dtype)

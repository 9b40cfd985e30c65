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

Array = jax.Array


def from_weights(weights: Array, input_size: int, hidden_size: int) -> tuple[Array, Array, Array]:
    """cuDNN's flat vector of a one-layer LSTM -> our (w_ih, w_hh, b), the biases summed:
    the inverse of ``lj.lstm``'s ``cudnn_weights``."""
    G = 4 * hidden_size
    sizes = [G * input_size, G * hidden_size, G, G]
    w_ih, w_hh, b_ih, b_hh = jnp.split(weights, [sum(sizes[:i]) for i in range(1, 4)])
    return w_ih.reshape(G, input_size).T, w_hh.reshape(G, hidden_size).T, b_ih + b_hh


def _cudnn_lstm(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size):
    from jax.experimental import rnn as experimental_rnn

    return experimental_rnn.lstm(x, h_0, c_0, weights, seq_lengths, input_size=input_size,
                                 hidden_size=hidden_size, num_layers=1, dropout=0.0,
                                 bidirectional=False)


def run(weights: Array, carry, xs_T: Array, lengths: Array | None,
        implementation: Callable | None = None):
    """One LSTM layer forward over xs_T (T, B, I) -> (carry, ys_T (T, B, H)), from the
    cell's ``cudnn_weights(params)`` and an ``LSTMState(h, c)`` carry, each (B, H).

    ``implementation`` has ``jax.experimental.rnn.lstm``'s signature (one layer, one
    direction); tests pass its CPU reference.
    """
    implementation = implementation or _cudnn_lstm
    T, B, I = xs_T.shape
    H = carry.h.shape[-1]
    full = jnp.full((B,), T, jnp.int32)
    steps = full if lengths is None else lengths.astype(jnp.int32)
    # cuDNN wants every length >= 1: a length-0 sequence runs one step, then is undone
    ys, h_n, c_n = implementation(jnp.moveaxis(xs_T, 0, 1), carry.h[None], carry.c[None],
                                  weights, jnp.maximum(steps, 1), input_size=I,
                                  hidden_size=H)
    empty = (steps == 0)[:, None]
    new = carry._replace(h=jnp.where(empty, carry.h, h_n[0]), c=jnp.where(empty, carry.c, c_n[0]))
    return new, jnp.where(empty[None], 0.0, jnp.moveaxis(ys, 1, 0)).astype(ys.dtype)

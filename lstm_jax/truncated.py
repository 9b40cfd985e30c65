"""Truncated backpropagation through time: a layer run over a long sequence in chunks of
K steps, the carry passed from each chunk to the next with its gradient stopped."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lstm_jax import _checks, runner
from lstm_jax.cells import protocol
from lstm_jax.cells.base import Layer
from lstm_jax.layers import as_layer, has_bidirectional
from lstm_jax.runner import reverse_in_time

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class TruncatedConfig:
    """Options of ``truncated_bptt``; its params and carry are ``layer``'s own."""

    layer: Layer
    chunk: int
    kind = "truncated_bptt"

    @property
    def time_major(self) -> bool:
        return self.layer.time_major

    @property
    def uses_key(self) -> bool:
        return self.layer.uses_key


def truncated_bptt(layer: Any, *, chunk: int) -> Layer:
    """``layer`` run over chunks of ``chunk`` steps, with no gradient between chunks.

    The forward pass is the untruncated layer's: chunk c + 1 starts from the carry chunk
    c ended with, so ys and the final carry are exactly ``layer.apply``'s for every
    ``chunk``. Only gradients change: the carry crosses each chunk edge through
    ``jax.lax.stop_gradient``, so a loss on chunk c's outputs reaches the inputs and
    params through chunk c's K steps alone (Williams & Peng's truncated BPTT with
    k1 = k2 = K). Within one ``jax.grad`` every chunk's activations are still saved
    (``remat`` on the layer bounds those). The chunks are one ``jax.lax.scan``, plus one
    shorter call for the last T mod K steps; with T <= K the layer runs as itself.

    Args:
      layer: a Layer (a cell is wrapped in ``lj.rnn``) that runs forward in time: an
        ``rnn``, a ``stack`` of them, or another truncated layer. A bidirectional layer
        anywhere inside is a ValueError: its backward half reads each sequence from the
        end, so a carry handed from chunk to chunk would run against its direction of
        time and its outputs would no longer be the untruncated layer's.
      chunk: K, the steps per chunk, a positive int.

    Returns:
      A ``Layer`` with ``layer``'s init, initial_carry, output_size and layout, whose
      ``apply`` takes the same arguments:

      - ``seq_lengths`` (B,): chunk c sees ``clip(seq_lengths - c·K, 0, K)``, so a
        sequence's padding never changes the carry and the final carry is the one after
        its last valid step, as in ``layer``.
      - ``carry``: the first chunk's carry; the gradient does reach it (stop it yourself
        when it is the previous batch's final carry, as in stateful training).
      - ``reverse``: each sequence is reversed within its length and cut into chunks
        from its end, as ``layer.apply(..., reverse=True)`` reads it.
      - ``key``: chunk c gets ``jax.random.fold_in(key, c)``: fresh variational dropout
        masks (one per sequence) and zoneout draws in each chunk, as when a training
        loop calls a layer once per window (AWD-LSTM). Reusing one key in every chunk
        would repeat zoneout's and a stack's dropout draws at the same offset of each
        chunk. With T <= K the layer runs as itself, with ``key``. Without a key there
        is no randomness and ys equal ``layer``'s.
      - ``return_gates``: the chunks' gates, joined along time.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> full = lj.rnn(lj.lstm(6))
    >>> layer = lj.truncated_bptt(full, chunk=3)
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> xs = jax.random.normal(jax.random.key(1), (2, 8, 5))  # chunks of 3, 3, 2 steps
    >>> carry, ys = layer.apply(params, xs)
    >>> ys.shape, bool(jnp.all(ys == full.apply(params, xs)[1]))
    ((2, 8, 6), True)
    """
    layer = as_layer(layer)
    chunk = _checks.positive_int("chunk", chunk)
    if has_bidirectional(layer):
        raise ValueError(
            "truncated_bptt cannot chunk a bidirectional layer: its backward half runs "
            "from the end of each sequence, so no carry can pass from one chunk to the "
            "next in its direction; truncate forward layers only")
    if any(protocol.feature_axes(cell) > 1 for cell in layer.cells):
        raise ValueError("truncated_bptt runs layers over (B, T, I) sequences; a cell with "
                         "spatial inputs (lj.conv_lstm) is not supported")
    config = TruncatedConfig(layer, chunk)

    def apply(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
              return_gates=False):
        xs = _checks.float_array("xs", xs)
        if xs.ndim < 2:
            layout = "(T, B, I)" if layer.time_major else "(B, T, I)"
            raise ValueError(f"`xs` must have shape {layout} or (T, I), got shape {xs.shape}")
        xs_T = _time_first(xs, layer.time_major)  # (T, *batch, I)
        T, batch_shape = xs_T.shape[0], xs_T.shape[1:-1]
        # an exported program runs forward only, where the chunks change nothing, and its T
        # may be symbolic (lj.export)
        if runner.is_exporting() or T <= chunk:
            return layer.apply(params, xs, seq_lengths=seq_lengths, carry=carry,
                               reverse=reverse, key=key, return_gates=return_gates)
        lengths = _checks.lengths(seq_lengths, batch_shape, T)
        if carry is None:
            carry = layer.initial_carry(params, batch_shape)
        if reverse:
            xs_T = reverse_in_time(xs_T, lengths)
        run = _chunk_runner(layer, params, chunk, lengths, key, return_gates)
        carry, outs_T = _run_chunks(run, carry, xs_T, chunk)
        if reverse:
            outs_T = jax.tree.map(lambda a: reverse_in_time(a, lengths), outs_T)
        ys, gates = jax.tree.map(lambda a: _time_back(a, layer.time_major), outs_T)
        return (carry, ys, gates) if return_gates else (carry, ys)

    return Layer(layer.init, apply, layer.initial_carry, layer.output_size, config)


def _time_first(a: Array, time_major: bool) -> Array:
    """(B, T, F) -> (T, B, F) as ``lj.rnn`` moves time (axis -2); time-major as is."""
    return a if time_major else jnp.moveaxis(a, -2, 0)


def _time_back(a: Array, time_major: bool) -> Array:
    """The inverse of ``_time_first``."""
    return a if time_major else jnp.moveaxis(a, 0, -2)


def _chunk_runner(layer: Layer, params, chunk: int, lengths, key, return_gates: bool):
    """``run(carry, piece_T, c) -> (carry, (ys_T, gates_T or None))``: ``layer`` over
    chunk c, piece_T (K or fewer, *batch, I) from step c·K on; after the first chunk the
    incoming carry's gradient is stopped."""

    def run(carry, piece_T, c):
        carry = jax.tree.map(lambda a: jnp.where(c > 0, jax.lax.stop_gradient(a), a), carry)
        size = piece_T.shape[0]
        piece_lengths = None if lengths is None else jnp.clip(lengths - c * chunk, 0, size)
        piece_key = None if key is None else jax.random.fold_in(key, c)
        out = layer.apply(params, _time_back(piece_T, layer.time_major),
                          seq_lengths=piece_lengths, carry=carry, key=piece_key,
                          return_gates=return_gates)
        gates = out[2] if return_gates else None
        return out[0], jax.tree.map(lambda a: _time_first(a, layer.time_major), (out[1], gates))

    return run


def _run_chunks(run, carry, xs_T: Array, chunk: int):
    """``run`` over xs_T (T, *batch, I) in chunks of ``chunk`` steps (T > chunk): a scan
    over the whole chunks, then one call for the T mod chunk steps left."""
    T = xs_T.shape[0]
    n, tail = divmod(T, chunk)
    head_T = xs_T[: n * chunk].reshape((n, chunk) + xs_T.shape[1:])

    carry, outs = jax.lax.scan(lambda carry, cx: run(carry, cx[1], cx[0]), carry,
                               (jnp.arange(n), head_T))
    outs = jax.tree.map(lambda a: a.reshape((n * chunk,) + a.shape[2:]), outs)
    if tail:
        carry, last = run(carry, xs_T[n * chunk:], n)
        outs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), outs, last)
    return carry, outs

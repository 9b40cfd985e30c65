"""The one time loop below every runner: scan, per-step projections, padding mask.

``run`` scans a cell over xs_T (T, *batch, I). Each step computes the input part of
the gate pre-activations (or reads it, hoisted: ``cell.project_inputs`` on all T
steps at once before the loop), the recurrent part ``cell.project_hidden``, and then
``masked_step``: the cell's ``combine``, zoneout, and at padding the old carry and zero
outputs. ``rnn`` calls it for plain autodiff; ``_fused`` wraps the same call in its
``custom_vjp`` and differentiates ``masked_step`` in its backward pass.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from lstm_jax.cells.base import Cell, hidden, output_dtype


def masked_step(cell: Cell, params, carry, gx_t, gh_t, t, lengths, zone=None,
                gates: bool = False):
    """``(carry, y_t, gates or None)`` of step t: combine, zoneout, then padding.

    At t >= lengths (*batch,) the carry is held and y_t (and the gates) are 0.
    ``zone(t, old, new)`` mixes in the old carry (zoneout); the output is the new h.
    """
    new, y_t, step_gates = cell.combine(params, carry, gx_t, gh_t)
    if zone is not None:
        new = zone(t, carry, new)
        y_t = hidden(new).astype(y_t.dtype)  # the output is the zoned-out h
    step_gates = step_gates if gates else None
    if lengths is not None:
        valid = (t < lengths)[..., None]  # (*batch, 1)
        new = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry)
        y_t, step_gates = jax.tree.map(lambda a: jnp.where(valid, a, 0).astype(a.dtype),
                                       (y_t, step_gates))
    return new, y_t, step_gates


def run(cell: Cell, params, carry, xs_T, lengths=None, *, hoist: bool, unroll: int = 1,
        remat: bool | int = False, h_mask=None, zone=None, gates: bool = False,
        emit: Callable | None = None, combine_params=None):
    """Scan ``cell`` over xs_T (T, *batch, I): ``(carry, outputs_T, gx_T or None)``.

    Args:
      hoist: project all inputs before the loop (one GEMM) instead of at each step;
        the hoisted projections (T, *batch, G) are returned as gx_T, else None.
      unroll, remat: as for ``lj.rnn``.
      h_mask: multiplies h_{t-1} before the recurrent matmul (recurrent dropout).
      zone: zoneout, see ``masked_step``.
      gates: keep each step's gate activations for ``emit``.
      emit: ``(y_t, gates, carry_{t-1}, gx_t, gh_t) -> what step t stacks``; by default
        ``(y_t, gates)``.
      combine_params: the params ``combine`` reads, if not ``params`` (the fused
        pass gives them without w_ih and w_hh).
    """
    emit = emit or (lambda y_t, step_gates, *_: (y_t, step_gates))
    rest = params if combine_params is None else combine_params
    inputs_T = cell.project_inputs(params, xs_T) if hoist else xs_T

    def body(carry, inputs):
        t, x_t = inputs
        gx_t = x_t if hoist else cell.project_inputs(params, x_t)
        gh_t = cell.project_hidden(params, carry, h_mask)
        new, y_t, step_gates = masked_step(cell, rest, carry, gx_t, gh_t, t, lengths, zone, gates)
        return new, emit(y_t, step_gates, carry, gx_t, gh_t)

    T = xs_T.shape[0]
    carry, outputs = _chunked(body, carry, (jnp.arange(T), inputs_T), unroll, remat, T)
    return carry, outputs, inputs_T if hoist else None


def _chunked(body, carry, xs, unroll: int, remat: bool | int, T: int):
    """``scan``; with remat, over checkpointed chunks of ``remat`` (or sqrt(T)) steps."""
    if not remat or T == 0:
        return scan(body, carry, xs, unroll=unroll)
    chunk = max(1, math.isqrt(T - 1) + 1) if remat is True else min(remat, T)
    n_chunks, tail = divmod(T, chunk)

    @jax.checkpoint
    def run_chunk(carry, xs_chunk):
        return scan(body, carry, xs_chunk, unroll=unroll)

    head = jax.tree.map(lambda a: a[: n_chunks * chunk].reshape(n_chunks, chunk, *a.shape[1:]), xs)
    carry, ys = scan(run_chunk, carry, head)
    ys = jax.tree.map(lambda a: a.reshape(n_chunks * chunk, *a.shape[2:]), ys)
    if tail:
        rest = jax.tree.map(lambda a: a[n_chunks * chunk :], xs)
        carry, ys_tail = scan(body, carry, rest, unroll=unroll)
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return carry, ys


def scan(body, carry, xs, unroll: int = 1):
    """``jax.lax.scan`` that stacks half-precision per-step outputs in float32.

    XLA's CPU code writes a converted bfloat16 or float16 step output into its stack by
    converting the whole (T, ...) stack to float32 and back at every step: O(T²) work
    (61 µs a step at (B, T, H) = (32, 128, 128)). A float32 stack is updated in place;
    the stacks are narrowed back once, after the loop, to the same values.
    """
    dtypes = []  # the step outputs' dtypes, recorded while scan traces the body

    def wide_body(carry, x):
        carry, ys = body(carry, x)
        leaves = jax.tree.leaves(ys)
        dtypes[:] = [y.dtype for y in leaves]
        return carry, jax.tree.map(_widen, ys)

    carry, ys = jax.lax.scan(wide_body, carry, xs, unroll=unroll)
    leaves, treedef = jax.tree.flatten(ys)
    return carry, jax.tree.unflatten(treedef, [y.astype(d) for y, d in zip(leaves, dtypes)])


def _widen(y):
    narrow = jnp.issubdtype(y.dtype, jnp.floating) and jnp.dtype(y.dtype).itemsize < 4
    return y.astype(jnp.float32) if narrow else y


def parallel(cell: Cell, params, carry, xs_T, lengths=None):
    """``(carry, ys_T)`` of a cell with ``log_coefficients`` over xs_T (T, *batch, I), all
    steps at once: h_t = a_t ⊙ h_{t-1} + b_t as ``jax.lax.associative_scan``.

    Step t maps h to e^{α_t} h + e^{β_t} (α = log a, β = log b); two such maps compose
    to (α_1 + α_2, logaddexp(β_1 + α_2, β_2)), so the scan gives every h_t =
    e^{A_t} h_0 + e^{B_t} in O(log T) depth. h_0 stays outside the logarithms, so it
    may be zero or negative. Padding (t >= lengths) comes after a sequence's valid
    steps, and the scan is causal: its outputs are set to 0, and the carry is read at
    step lengths - 1 (h_0 for an empty sequence). The scan runs in at least float32.
    """
    T = xs_T.shape[0]
    out_dtype = output_dtype(cell.config.dtype, carry.dtype)
    if T == 0:
        return carry, jnp.zeros((0, *carry.shape), out_dtype)
    wide = jnp.promote_types(carry.dtype, jnp.float32)
    gx_T = cell.project_inputs(params, xs_T).astype(wide)
    log_a, log_b = cell.log_coefficients(params, gx_T)  # (T, *batch, H) each

    def compose(first, then):
        (a1, b1), (a2, b2) = first, then
        return a1 + a2, jnp.logaddexp(b1 + a2, b2)

    A, Bs = jax.lax.associative_scan(compose, (log_a, log_b), axis=0)
    h_T = jnp.exp(A) * carry.astype(wide)[None] + jnp.exp(Bs)  # (T, *batch, H)
    if lengths is None:
        return h_T[-1].astype(carry.dtype), h_T.astype(out_dtype)
    valid = (jnp.arange(T).reshape((T,) + (1,) * lengths.ndim) < lengths[None])[..., None]
    last = jnp.take_along_axis(h_T, jnp.maximum(lengths - 1, 0)[None, ..., None], axis=0)[0]
    carry = jnp.where((lengths > 0)[..., None], last.astype(carry.dtype), carry)
    return carry, jnp.where(valid, h_T, 0).astype(out_dtype)

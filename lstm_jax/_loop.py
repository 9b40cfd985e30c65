"""The one time loop below every runner: scan, per-step projections, padding mask, resets.

``run`` scans a cell over xs_T (T, *batch, I). Each step first ``restart``s the carry
where a reset is set (back to the carry the loop began with), then advances it: a cell
with only ``step`` is called as it is; a cell with the projections capability has the
input part of its gate pre-activations computed (or read, hoisted:
``cell.project_inputs`` on all T steps at once before the loop), then the recurrent part
``cell.project_hidden``, then ``combine_step``: the cell's ``combine`` and ``masked``.
``masked`` applies zoneout to the carry and, at padding, keeps the old carry and zeroes
the outputs. ``rnn`` calls ``run`` for plain autodiff; ``_fused`` wraps the same call in
its ``custom_vjp`` and differentiates ``restart`` and ``combine_step`` in its backward
pass.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from lstm_jax.cells import protocol


def per_batch(mask: jax.Array, leaf: jax.Array) -> jax.Array:
    """``mask`` (*batch,) with trailing axes of size 1 to ``leaf``'s rank (*batch, ...)."""
    return mask.reshape(mask.shape + (1,) * (leaf.ndim - mask.ndim))


def time_index(T: int, lengths: jax.Array) -> jax.Array:
    """(T, *batch) array of t, shaped to compare with ``lengths`` (*batch,)."""
    return steps(T).reshape((T,) + (1,) * lengths.ndim)


def steps(T) -> jax.Array:
    """(T,) int32 array of t. ``lax.iota`` rather than ``jnp.arange``: with a symbolic T
    (an exported program's), jax2onnx 0.17.1 gave arange's length a placeholder of its
    own, and scan then refused "different leading axis sizes:
    JAX2ONNX_DYNAMIC_DIM_SENTINEL, T" (``lj.export_onnx``)."""
    return jax.lax.iota(jnp.int32, T)


def restart(carry0, carry, reset_t):
    """``carry`` with each sequence where reset_t (*batch,) bool is set back to ``carry0``.

    reset_t None means no resets. The loop calls it before each step, so a reset at
    step t means step t reads ``carry0`` instead of the carry of step t - 1.
    """
    if reset_t is None:
        return carry
    return jax.tree.map(lambda c0, c: jnp.where(per_batch(reset_t, c), c0, c), carry0, carry)


def masked(carry, new, y_t, step_gates, t, lengths, zone=None):
    """``(carry, y_t, gates)`` of step t after zoneout and padding.

    ``zone(t, old, new)`` mixes the old carry into the new one (zoneout); y_t stays what
    the cell returned. At t >= lengths (*batch,) the old carry is held and y_t and the
    gates are 0. Every leaf may have any trailing axes after the batch axes.
    """
    if zone is not None:
        new = zone(t, carry, new)
    if lengths is None:
        return new, y_t, step_gates
    valid = t < lengths  # (*batch,)
    new = jax.tree.map(lambda n, o: jnp.where(per_batch(valid, n), n, o), new, carry)
    # zeros of a's own dtype, not a literal 0: jax2onnx 0.17.1 made Where(float, int32)
    # of the literal, which onnxruntime 1.32.0 refused to load ("TypeInferenceError")
    y_t, step_gates = jax.tree.map(
        lambda a: jnp.where(per_batch(valid, a), a, jnp.zeros_like(a)), (y_t, step_gates))
    return new, y_t, step_gates


def combine_step(cell, params, carry, gx_t, gh_t, t, lengths, zone=None, gates: bool = False):
    """``(carry, y_t, gates or None)`` of step t of a cell with projections: its
    ``combine``, then ``masked``."""
    new, y_t, step_gates = cell.combine(params, carry, gx_t, gh_t)
    return masked(carry, new, y_t, step_gates if gates else None, t, lengths, zone)


def run(cell, params, carry, xs_T, lengths=None, *, hoist: bool = False, unroll: int = 1,
        remat: bool | int = False, h_mask=None, zone=None, gates: bool = False,
        states: bool = False, resets_T=None, emit: Callable | None = None):
    """Scan ``cell`` over xs_T (T, *batch, I): ``(carry, outputs_T, gx_T or None)``.

    Args:
      carry: the carry the loop begins with; resets return to it.
      hoist: project all inputs before the loop (one GEMM) instead of at each step;
        the hoisted projections (T, *batch, G) are returned as gx_T, else None.
      unroll, remat: as for ``lj.rnn``.
      h_mask: multiplies h_{t-1} before the recurrent matmul (recurrent dropout).
      zone: zoneout, see ``masked``.
      gates: keep each step's gate activations for ``emit``.
      states: stack each step's new carry (else None) as the third default output.
      resets_T: (T, *batch) bool or None, in the order the loop runs: where set, step t
        starts from ``carry`` again (``restart``). Resets at padding must be False.
      emit: ``(y_t, gates, carry_{t-1}, gx_t, gh_t, carry_t) -> what step t stacks``,
        carry_{t-1} as step t read it (after ``restart``); by default
        ``(y_t, gates or None, carry_t or None)``.

    ``hoist``, ``h_mask``, ``gates`` and ``emit``'s gx_t, gh_t need the projections
    capability; a cell with ``step`` alone gets None for gx_t and gh_t.
    """
    def stacked(y_t, step_gates, carry, gx_t, gh_t, new):
        return y_t, step_gates, new if states else None

    emit = emit or stacked
    split = protocol.has(cell, "projections")
    inputs_T = cell.project_inputs(params, xs_T) if hoist else xs_T
    carry0 = carry

    def body(carry, inputs):
        t, x_t, reset_t = inputs
        carry = restart(carry0, carry, reset_t)
        if not split:
            new, y_t = cell.step(params, carry, x_t)
            new, y_t, _ = masked(carry, new, y_t, None, t, lengths, zone)
            return new, emit(y_t, None, carry, None, None, new)
        gx_t = x_t if hoist else cell.project_inputs(params, x_t)
        gh_t = cell.project_hidden(params, carry, h_mask)
        new, y_t, step_gates = combine_step(cell, params, carry, gx_t, gh_t, t, lengths, zone,
                                            gates)
        return new, emit(y_t, step_gates, carry, gx_t, gh_t, new)

    T = xs_T.shape[0]
    carry, outputs = _chunked(body, carry, (steps(T), inputs_T, resets_T), unroll, remat, T)
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


def parallel(cell, params, carry, xs_T, lengths=None, resets_T=None):
    """``(carry, ys_T, states_T)`` of a cell with ``log_coefficients`` over xs_T
    (T, *batch, I), all steps at once: h_t = a_t ⊙ h_{t-1} + b_t as
    ``jax.lax.associative_scan``.

    Step t maps h to e^{α_t} h + e^{β_t} (α = log a, β = log b); two such maps compose
    to (α_1 + α_2, logaddexp(β_1 + α_2, β_2)), so the scan gives every h_t =
    e^{A_t} h_0 + e^{B_t} in O(log T) depth. h_0 stays outside the logarithms, so it
    may be zero or negative. A reset at step t (resets_T (T, *batch) bool, in running
    order) makes the step's map h -> e^{α_t} h_0 + e^{β_t}, which reads h_0 instead of h:
    composed after anything it is itself, so the formula above still gives h_t (a
    segmented scan). Padding (t >= lengths) comes after a sequence's valid steps, and
    the scan is causal: its outputs are set to 0, the carry is read at step lengths - 1
    (h_0 for an empty sequence), and the states there hold that carry. The scan runs in
    at least float32.
    """
    T = xs_T.shape[0]
    x_t = jax.ShapeDtypeStruct(xs_T.shape[1:], xs_T.dtype)
    out_dtype = jax.eval_shape(cell.step, params, carry, x_t)[1].dtype  # y_t's
    if T == 0:
        return carry, jnp.zeros((0, *carry.shape), out_dtype), carry[None][:0]
    wide = jnp.promote_types(carry.dtype, jnp.float32)
    gx_T = cell.project_inputs(params, xs_T).astype(wide)
    maps = cell.log_coefficients(params, gx_T)  # (log_a, log_b), (T, *batch, H) each
    if resets_T is not None:
        maps = (*maps, resets_T[..., None])  # (T, *batch, 1)

    def compose(first, then):
        (a1, b1, *r1), (a2, b2, *r2) = first, then
        a, b = a1 + a2, jnp.logaddexp(b1 + a2, b2)
        if not r2:
            return a, b
        return jnp.where(r2[0], a2, a), jnp.where(r2[0], b2, b), r1[0] | r2[0]

    A, Bs = jax.lax.associative_scan(compose, maps, axis=0)[:2]
    h_T = jnp.exp(A) * carry.astype(wide)[None] + jnp.exp(Bs)  # (T, *batch, H)
    if lengths is None:
        return h_T[-1].astype(carry.dtype), h_T.astype(out_dtype), h_T.astype(carry.dtype)
    valid = (time_index(T, lengths) < lengths[None])[..., None]
    last = jnp.take_along_axis(h_T, jnp.maximum(lengths - 1, 0)[None, ..., None], axis=0)[0]
    carry = jnp.where((lengths > 0)[..., None], last.astype(carry.dtype), carry)
    states_T = jnp.where(valid, h_T.astype(carry.dtype), carry[None])
    return carry, jnp.where(valid, h_T, 0).astype(out_dtype), states_T

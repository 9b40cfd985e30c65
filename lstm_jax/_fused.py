"""The time loop with a hand-written backward pass, as cuDNN organises it.

Autodiff of ``lax.scan`` forms, at every step, the weight gradients of that step's
matmuls (h_{t-1}ᵀ·dz_t and, without hoisting, x_tᵀ·dz_t) and adds them up: two or four
small GEMMs per step. Here the backward scan computes only what must be sequential,
d(gates) and dh_{t-1} = dz_t·w_hhᵀ, and the weight gradients are formed after it as a
few GEMMs over all T steps at once.

The gate math is not written again: the backward step is ``jax.vjp`` of the cell's
``combine``, which never reads ``w_ih`` or ``w_hh``. The linear parts around it (the
input projection and the recurrent matmul) are the only derivatives written here.

The price: ``jax.jvp`` (forward mode) cannot see through a ``custom_vjp``; runners
take ``fused_backward=False`` for that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.cells.base import Cell, broadcast_like, hidden, matmul


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


def _with_hidden(carry, h):
    """``carry`` with its first field (h) replaced by ``h``."""
    leaves, treedef = jax.tree.flatten(carry)
    return jax.tree.unflatten(treedef, [h, *leaves[1:]])


def fused_scan(cell: Cell, params, carry0, xs_T, lengths, h_mask, *, hoist: bool, unroll: int):
    """``(carry, ys_T)`` of ``cell`` over xs_T (T, *batch, I), differentiable in reverse mode.

    lengths: (*batch,) int or None (positions t >= lengths are padding);
    h_mask: multiplies h_{t-1} before the recurrent matmul, or None.
    """
    dtype = cell.config.dtype

    def h_in(carry, h_mask):
        """h_{t-1} as the recurrent matmul reads it; carry may be stacked over T."""
        h = hidden(carry)
        return h if h_mask is None else h * broadcast_like(h_mask, h)

    def step(rest, carry, gx_t, gh_t, t, lengths):
        """combine, then hold the carry and zero the output at padding."""
        new, y, _ = cell.combine(rest, carry, gx_t, gh_t)
        if lengths is None:
            return new, y
        valid = (t < lengths)[..., None]
        new = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, carry)
        return new, jnp.where(valid, y, 0).astype(y.dtype)

    summed = cell.config.sums_projections  # save gx_t + gh_t alone, as gh_t

    def loop(params, carry0, xs_T, lengths, h_mask, save: bool):
        """The forward scan; with ``save``, also every step's carry, gx_t and gh_t
        (None and gx_t + gh_t for a cell whose combine reads only their sum)."""
        rest = params._replace(w_ih=None, w_hh=None)
        inputs_T = cell.project_inputs(params, xs_T) if hoist else xs_T

        def body(carry, inputs):
            t, x_t = inputs
            gx_t = x_t if hoist else cell.project_inputs(params, x_t)
            gh_t = matmul(h_in(carry, h_mask), params.w_hh, dtype)
            new, y = step(rest, carry, gx_t, gh_t, t, lengths)
            if not save:
                return new, (y,)
            if summed:
                return new, (y, carry, None, gx_t + gh_t)
            return new, (y, carry, None if hoist else gx_t, gh_t)

        steps = jnp.arange(xs_T.shape[0])
        carry, outputs = scan(body, carry0, (steps, inputs_T), unroll=unroll)
        if save and hoist and not summed:
            outputs = (*outputs[:2], inputs_T, outputs[3])
        return carry, outputs

    # lengths and h_mask are arguments, not closed over: a custom_vjp's backward may be
    # traced apart from its forward (jax.vjp under one jit, its function under another)
    @jax.custom_vjp
    def run(params, carry0, xs_T, lengths, h_mask):
        carry, (ys_T,) = loop(params, carry0, xs_T, lengths, h_mask, save=False)
        return carry, ys_T

    def run_fwd(params, carry0, xs_T, lengths, h_mask):
        carry, (ys_T, carries, gx_T, gh_T) = loop(params, carry0, xs_T, lengths, h_mask, save=True)
        return (carry, ys_T), (params, xs_T, lengths, h_mask, carries, gx_T, gh_T)

    def run_bwd(residuals, cotangents):
        params, xs_T, lengths, h_mask, carries, gx_T, gh_T = residuals
        d_carry, d_ys = cotangents
        rest = params._replace(w_ih=None, w_hh=None)
        w_hh_t = params.w_hh.T

        def body(acc, inputs):
            d_carry, d_rest, gx_T, gh_T = acc
            carry, dy_t, t = inputs
            gh_t = gh_T[t]
            gx_t = jnp.zeros_like(gh_t) if gx_T is None else gx_T[t]
            _, vjp = jax.vjp(lambda r, c, gx, gh: step(r, c, gx, gh, t, lengths),
                             rest, carry, gx_t, gh_t)
            d_rest_t, d_prev, dgx_t, dgh_t = vjp((d_carry, dy_t))
            dh = matmul(dgh_t, w_hh_t, dtype)
            if h_mask is not None:
                dh = dh * h_mask
            d_prev = _with_hidden(d_prev, hidden(d_prev) + dh.astype(hidden(d_prev).dtype))
            d_rest = jax.tree.map(jnp.add, d_rest, d_rest_t)
            # step t's gate inputs are dead once read: their cotangents overwrite them in
            # place, so the backward pass allocates no (T, B, G) buffer of its own. When
            # combine reads gx_t + gh_t, dgx_t is dgh_t: it is written once.
            gh_T = gh_T.at[t].set(dgh_t)
            if dgx_t is not dgh_t:
                gx_T = gx_T.at[t].set(dgx_t)
            return (d_prev, d_rest, gx_T, gh_T), None

        zero_rest = jax.tree.map(jnp.zeros_like, rest)
        steps = jnp.arange(xs_T.shape[0])
        (d_carry0, d_rest, dgx_T, dgh_T), _ = jax.lax.scan(
            body, (d_carry, zero_rest, gx_T, gh_T), (carries, d_ys, steps), reverse=True,
            unroll=unroll)
        if dgx_T is gx_T:  # dgx_t was dgh_t at every step: gx_T was never written
            dgx_T = dgh_T
        # all the steps' h_{t-1}ᵀ·dz_t in one GEMM: (P, T·B) @ (T·B, G)
        h_T = h_in(carries, h_mask)
        d_w_hh = matmul(h_T.reshape(-1, h_T.shape[-1]).T, dgh_T.reshape(-1, dgh_T.shape[-1]), dtype)
        # the input projection's backward over the whole sequence: one GEMM each
        gx, project_vjp = jax.vjp(cell.project_inputs, params, xs_T)  # gx itself is unused
        d_params, d_xs = project_vjp(dgx_T.astype(gx.dtype))
        merged = jax.tree.map(jnp.add, d_params._replace(w_ih=None, w_hh=None), d_rest)
        d_params = merged._replace(w_ih=d_params.w_ih,
                                   w_hh=d_params.w_hh + d_w_hh.astype(params.w_hh.dtype))
        d_lengths = None if lengths is None else np.zeros(lengths.shape, jax.dtypes.float0)
        # h_mask is a dropout mask, a constant of the model: no gradient flows into it
        d_h_mask = None if h_mask is None else jnp.zeros_like(h_mask)
        return d_params, d_carry0, d_xs, d_lengths, d_h_mask

    run.defvjp(run_fwd, run_bwd)
    return run(params, carry0, xs_T, lengths, h_mask)

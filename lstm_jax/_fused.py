"""The backward pass of the time loop, hand-written as cuDNN organises it.

The forward pass is ``_loop.run``, unchanged; this module only wraps it in a
``custom_vjp``.

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

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _loop
from lstm_jax.cells.base import Cell, broadcast_like, hidden, matmul


def _with_hidden(carry, h):
    """``carry`` with its first field (h) replaced by ``h``."""
    leaves, treedef = jax.tree.flatten(carry)
    return jax.tree.unflatten(treedef, [h, *leaves[1:]])


def _without_weights(params):
    """What ``combine`` reads: params less w_ih and w_hh, whose gradients are formed here."""
    return params._replace(w_ih=None, w_hh=None)


def fused_scan(cell: Cell, params, carry0, xs_T, lengths, h_mask, resets_T=None, *,
               hoist: bool, unroll: int):
    """``(carry, ys_T)`` of ``cell`` over xs_T (T, *batch, I), differentiable in reverse mode.

    The forward pass is ``_loop.run``; this adds only the backward pass.
    lengths: (*batch,) int or None (positions t >= lengths are padding);
    h_mask: multiplies h_{t-1} before the recurrent matmul, or None;
    resets_T: (T, *batch) bool or None, as ``_loop.run`` takes them.
    """
    dtype = cell.config.dtype
    summed = cell.config.sums_projections  # save gx_t + gh_t alone, as gh_t

    def loop(params, carry0, xs_T, lengths, h_mask, resets_T, save: bool):
        """The forward scan; with ``save``, also every step's carry (as the step read
        it, after any reset), gx_t and gh_t (None and gx_t + gh_t for a cell whose
        combine reads only their sum)."""

        def emit(y, _, carry, gx_t, gh_t, new):
            if not save:
                return (y,)
            if summed:
                return (y, carry, None, gx_t + gh_t)
            return (y, carry, None if hoist else gx_t, gh_t)

        carry, outputs, gx_T = _loop.run(cell, params, carry0, xs_T, lengths, hoist=hoist,
                                         unroll=unroll, h_mask=h_mask, resets_T=resets_T,
                                         emit=emit, combine_params=_without_weights(params))
        if save and hoist and not summed:
            outputs = (*outputs[:2], gx_T, outputs[3])
        return carry, outputs

    # lengths, h_mask and resets_T are arguments, not closed over: a custom_vjp's backward
    # may be traced apart from its forward (jax.vjp under one jit, its function under another)
    @jax.custom_vjp
    def run(params, carry0, xs_T, lengths, h_mask, resets_T):
        carry, (ys_T,) = loop(params, carry0, xs_T, lengths, h_mask, resets_T, save=False)
        return carry, ys_T

    def run_fwd(params, carry0, xs_T, lengths, h_mask, resets_T):
        carry, (ys_T, carries, gx_T, gh_T) = loop(params, carry0, xs_T, lengths, h_mask,
                                                  resets_T, save=True)
        return (carry, ys_T), (params, xs_T, lengths, h_mask, resets_T, carries, gx_T, gh_T)

    def run_bwd(residuals, cotangents):
        params, xs_T, lengths, h_mask, resets_T, carries, gx_T, gh_T = residuals
        d_carry, d_ys = cotangents
        rest = _without_weights(params)
        w_hh_t = params.w_hh.T

        def body(acc, inputs):
            d_carry, d_carry0, d_rest, gx_T, gh_T = acc
            carry, dy_t, t, reset_t = inputs
            gh_t = gh_T[t]
            gx_t = jnp.zeros_like(gh_t) if gx_T is None else gx_T[t]

            def step(r, c, gx, gh):
                return _loop.masked_step(cell, r, c, gx, gh, t, lengths)[:2]

            _, vjp = jax.vjp(step, rest, carry, gx_t, gh_t)
            d_rest_t, d_prev, dgx_t, dgh_t = vjp((d_carry, dy_t))
            dh = matmul(dgh_t, w_hh_t, dtype)
            if h_mask is not None:
                dh = dh * h_mask
            d_prev = _with_hidden(d_prev, hidden(d_prev) + dh.astype(hidden(d_prev).dtype))
            if reset_t is not None:  # where step t restarted, its carry came from carry0
                _, restart_vjp = jax.vjp(partial(_loop.restart, reset_t=reset_t), carry, carry)
                d_start, d_prev = restart_vjp(d_prev)
                d_carry0 = jax.tree.map(jnp.add, d_carry0, d_start)
            d_rest = jax.tree.map(jnp.add, d_rest, d_rest_t)
            # step t's gate inputs are dead once read: their cotangents overwrite them in
            # place, so the backward pass allocates no (T, B, G) buffer of its own. When
            # combine reads gx_t + gh_t, dgx_t is dgh_t: it is written once.
            gh_T = gh_T.at[t].set(dgh_t)
            if dgx_t is not dgh_t:
                gx_T = gx_T.at[t].set(dgx_t)
            return (d_prev, d_carry0, d_rest, gx_T, gh_T), None

        zero_rest, zero_carry = jax.tree.map(jnp.zeros_like, (rest, d_carry))
        steps = jnp.arange(xs_T.shape[0])
        (d_first, d_carry0, d_rest, dgx_T, dgh_T), _ = jax.lax.scan(
            body, (d_carry, zero_carry, zero_rest, gx_T, gh_T), (carries, d_ys, steps, resets_T),
            reverse=True, unroll=unroll)
        d_carry0 = jax.tree.map(jnp.add, d_first, d_carry0)
        if dgx_T is gx_T:  # dgx_t was dgh_t at every step: gx_T was never written
            dgx_T = dgh_T
        # all the steps' h_{t-1}ᵀ·dz_t in one GEMM: (P, T·B) @ (T·B, G)
        h_T = hidden(carries)  # h_{t-1} as the recurrent matmul read it
        h_T = h_T if h_mask is None else h_T * broadcast_like(h_mask, h_T)
        d_w_hh = matmul(h_T.reshape(-1, h_T.shape[-1]).T, dgh_T.reshape(-1, dgh_T.shape[-1]), dtype)
        # the input projection's backward over the whole sequence: one GEMM each
        gx, project_vjp = jax.vjp(cell.project_inputs, params, xs_T)  # gx itself is unused
        d_params, d_xs = project_vjp(dgx_T.astype(gx.dtype))
        merged = jax.tree.map(jnp.add, _without_weights(d_params), d_rest)
        d_params = merged._replace(w_ih=d_params.w_ih,
                                   w_hh=d_params.w_hh + d_w_hh.astype(params.w_hh.dtype))
        d_lengths, d_resets = (None if a is None else np.zeros(a.shape, jax.dtypes.float0)
                               for a in (lengths, resets_T))
        # h_mask is a dropout mask, a constant of the model: no gradient flows into it
        d_h_mask = None if h_mask is None else jnp.zeros_like(h_mask)
        return d_params, d_carry0, d_xs, d_lengths, d_h_mask, d_resets

    run.defvjp(run_fwd, run_bwd)
    return run(params, carry0, xs_T, lengths, h_mask, resets_T)

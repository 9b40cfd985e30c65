"""The backward pass of the time loop, hand-written as cuDNN organises it.

The forward pass is ``_loop.run``, unchanged; this module only wraps it in a
``custom_vjp``, for any cell with the projections capability.

Autodiff of ``lax.scan`` forms, at every step, the weight gradients of that step's
matmuls (h_{t-1}ᵀ·dz_t and, without hoisting, x_tᵀ·dz_t) and adds them up: two or four
small GEMMs per step. Here the backward scan computes only what must be sequential:
d(gates), and dh_{t-1} through ``project_hidden``'s carry. The weight gradients of the
two projections are formed after it, each as one call over all T steps at once: the
vjp of ``project_inputs`` on xs_T and of ``project_hidden`` on every step's carry
stacked, which for a matmul is one GEMM.

Nothing of a cell is written again: the backward step is ``jax.vjp`` of the cell's
``combine`` (with zoneout and padding), and the projections are differentiated by JAX.

Under ``jax.vmap`` over models (params stacked) on a CPU, the forward loop and the
backward pass each run model after model (``_models_mapped_on_cpu``).

The price: ``jax.jvp`` (forward mode) cannot see through a ``custom_vjp``; runners
take ``fused_backward=False`` for that.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _dropout, _loop, _machine
from lstm_jax.cells import protocol


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


def _flatten(a, lead: int):
    """``a`` (T, *batch, ...) with its ``lead`` leading axes (T and the batch axes) as
    one, (T·B, ...), for the weight gradients: each a plain GEMM contracting one axis,
    which XLA:CPU runs on the stacks as they lie. Contracting (T, B) as two axes, XLA
    transposed the (T, B, G) cotangents to (G, T·B) before the dot (under ``vmap``, the
    model axis between T and B, the whole (T, N, B, G) stack): the adding model's LSTM
    training step took 21-24 ms alone and 86-99 ms for 4 models vmapped, flattened 17-18
    and 72-76 ms (CPU time on one core; benchmarks/NOTES.md, "Many models at once")."""
    return a.reshape((-1, *a.shape[lead:]))


MODELS_WRITTEN_OUT = 16  # models mapped on a CPU as one call each, at most; lax.map beyond


def _models_mapped_on_cpu(fn):
    """``fn`` (a function of its arguments alone, its params first) with its derivatives,
    but run model after model where ``jax.vmap`` batches it over models (its params
    batched) on a CPU; batched as usual on an accelerator or with the params shared
    (``_machine.maps_models``). 4 adding models' training steps vmapped took 1.23x the
    time of the 4 one after the other; with the pass mapped by ``jax.lax.map``, 1.06-1.29x;
    with it written out as one call per model, 0.97-1.01x (1.07x the CPU time on one core;
    benchmarks/NOTES.md, "Many models at once", findings 10 and 11): ``lax.map`` stacks
    each model's outputs into an (N, ...) buffer that a CPU zero-fills first, and the
    forward pass's saved stacks are such outputs; written out, one concatenate joins
    them. Beyond ``MODELS_WRITTEN_OUT`` models, ``lax.map``: each call written out adds
    its loops to the program (compiling 16 LSTM models' training step took 3.2 s, 1.4 s
    mapped).

    A ``custom_vmap`` cannot be differentiated in reverse mode, so its derivatives are
    ``fn``'s own (``custom_jvp``): the backward pass, second order included, is traced
    from ``fn`` and batched as usual."""
    mapped = jax.custom_batching.custom_vmap(fn)

    @mapped.def_vmap
    def over_models(axis_size, in_batched, *args):
        leaves, tree = jax.tree.flatten(args)
        batched = jax.tree.leaves(in_batched)
        if _machine.maps_models() and any(jax.tree.leaves(in_batched[0])):
            at = [i for i, b in enumerate(batched) if b]

            def one_model(slices):
                each = list(leaves)
                for i, a in zip(at, slices):
                    each[i] = a
                return fn(*jax.tree.unflatten(tree, each))

            stacks = [leaves[i] for i in at]
            if axis_size > MODELS_WRITTEN_OUT:
                out = jax.lax.map(one_model, stacks)
            else:
                outs = [one_model([a[k] for a in stacks]) for k in range(axis_size)]
                out = jax.tree.map(lambda *each: jnp.stack(each), *outs)
        else:
            axes = jax.tree.unflatten(tree, [0 if b else None for b in batched])
            out = jax.vmap(fn, in_axes=tuple(axes))(*args)
        return out, jax.tree.map(lambda _: True, out)

    @jax.custom_jvp
    def run(*args):
        return mapped(*args)

    run.defjvp(lambda primals, tangents: jax.jvp(fn, primals, tangents))
    return run


def fused_scan(cell, params, carry0, xs_T, lengths, h_mask, resets_T=None, *, hoist: bool,
               unroll: int, zoneout=0.0, zone_key=None):
    """``(carry, ys_T)`` of ``cell`` over xs_T (T, *batch, I), differentiable in reverse mode.

    The forward pass is ``_loop.run``; this adds only the backward pass.
    lengths: (*batch,) int or None (positions t >= lengths are padding);
    h_mask: multiplies h_{t-1} before the recurrent matmul, or None;
    resets_T: (T, *batch) bool or None, as ``_loop.run`` takes them;
    zoneout, zone_key: the rates and key of ``_dropout.zone``.
    """
    summed = protocol.sums_projections(cell)  # save gx_t + gh_t alone, as gh_t

    def loop(params, carry0, xs_T, lengths, h_mask, resets_T, zone_key, save: bool):
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
                                         zone=_dropout.zone(zoneout, zone_key), emit=emit)
        if save and hoist and not summed:
            outputs = (*outputs[:2], gx_T, outputs[3])
        return carry, outputs

    forward = {save: _models_mapped_on_cpu(partial(loop, save=save)) for save in (False, True)}

    # lengths, h_mask, resets_T and zone_key are arguments, not closed over: a custom_vjp's
    # backward may be traced apart from its forward (jax.vjp under one jit, its function
    # under another)
    @jax.custom_vjp
    def run(params, carry0, xs_T, lengths, h_mask, resets_T, zone_key):
        carry, (ys_T,) = forward[False](params, carry0, xs_T, lengths, h_mask, resets_T,
                                        zone_key)
        return carry, ys_T

    def run_fwd(params, carry0, xs_T, lengths, h_mask, resets_T, zone_key):
        carry, (ys_T, carries, gx_T, gh_T) = forward[True](params, carry0, xs_T, lengths,
                                                           h_mask, resets_T, zone_key)
        return (carry, ys_T), (params, xs_T, lengths, h_mask, resets_T, zone_key, carries,
                               gx_T, gh_T)

    @_models_mapped_on_cpu
    def backward(params, d_carry, d_ys, xs_T, lengths, h_mask, resets_T, zone_key, carries,
                 gx_T, gh_T):
        """``(d_params, d_carry0, d_xs)`` from the cotangents of the final carry and the
        outputs: the backward loop, then the projections' weight gradients."""
        zone = _dropout.zone(zoneout, zone_key)

        def project_hidden(carry):
            return cell.project_hidden(params, carry, h_mask)

        def body(acc, inputs):
            d_carry, d_carry0, d_params = acc
            carry, dy_t, t, reset_t, gx_t, gh_t = inputs
            if summed:
                gx_t = jnp.zeros_like(gh_t)

            def step(p, c, gx, gh):
                return _loop.combine_step(cell, p, c, gx, gh, t, lengths, zone)[:2]

            _, vjp = jax.vjp(step, params, carry, gx_t, gh_t)
            d_params_t, d_prev, dgx_t, dgh_t = vjp((d_carry, dy_t))
            d_prev = _add(d_prev, jax.vjp(project_hidden, carry)[1](dgh_t)[0])
            if reset_t is not None:  # where step t restarted, its carry came from carry0
                _, restart_vjp = jax.vjp(partial(_loop.restart, reset_t=reset_t), carry, carry)
                d_start, d_prev = restart_vjp(d_prev)
                d_carry0 = _add(d_carry0, d_start)
            # when combine reads gx_t + gh_t, dgx_t is dgh_t: it is returned once
            return (d_prev, d_carry0, _add(d_params, d_params_t)), (
                None if summed else dgx_t, dgh_t)

        # the saved gate inputs are read as the scan's xs and their cotangents are its ys.
        # (Overwriting each step's inputs with their cotangents in a carried buffer saved
        # that buffer, but XLA then copied the whole (T, B, G) buffer at every step,
        # O(T²): an IndRNN's training step at T = 1000 took 52 s instead of 0.013 s.)
        zero_params, zero_carry = jax.tree.map(jnp.zeros_like, (params, d_carry))
        steps = jnp.arange(xs_T.shape[0])
        (d_first, d_carry0, d_params), (dgx_T, dgh_T) = jax.lax.scan(
            body, (d_carry, zero_carry, zero_params),
            (carries, d_ys, steps, resets_T, None if summed else gx_T, gh_T), reverse=True,
            unroll=unroll)
        d_carry0 = _add(d_first, d_carry0)
        # the projections' weight gradients over the whole sequence, one call each, on the
        # (T, *batch) axes flattened into one: for a matmul, (F, T·B) @ (T·B, G)
        flat = partial(_flatten, lead=xs_T.ndim - protocol.feature_axes(cell))
        h_mask_T = None if h_mask is None else flat(
            jnp.broadcast_to(h_mask, (xs_T.shape[0], *h_mask.shape)))
        # materialised flat (a copy under vmap, the model axis moved first), or XLA folds
        # the reshapes back into the dots and the bias's reduction and transposes again
        carries, xs_K, dgh_K, dgx_K = jax.lax.optimization_barrier(
            (jax.tree.map(flat, carries), flat(xs_T), flat(dgh_T),
             None if summed else flat(dgx_T)))
        dgx_K = dgh_K if summed else dgx_K
        _, hidden_vjp = jax.vjp(lambda p: cell.project_hidden(p, carries, h_mask_T), params)
        gx, inputs_vjp = jax.vjp(cell.project_inputs, params, xs_K)  # gx is unused
        d_inputs, d_xs = inputs_vjp(dgx_K.astype(gx.dtype))
        d_params = _add(_add(d_params, hidden_vjp(dgh_K)[0]), d_inputs)
        return d_params, d_carry0, d_xs.reshape(xs_T.shape)

    def run_bwd(residuals, cotangents):
        params, xs_T, lengths, h_mask, resets_T, zone_key, carries, gx_T, gh_T = residuals
        d_carry, d_ys = cotangents
        d_params, d_carry0, d_xs = backward(params, d_carry, d_ys, xs_T, lengths, h_mask,
                                            resets_T, zone_key, carries, gx_T, gh_T)
        d_lengths, d_resets, d_zone_key = (
            None if a is None else np.zeros(a.shape, jax.dtypes.float0)
            for a in (lengths, resets_T, zone_key))
        # h_mask is a dropout mask, a constant of the model: no gradient flows into it
        d_h_mask = None if h_mask is None else jnp.zeros_like(h_mask)
        return d_params, d_carry0, d_xs, d_lengths, d_h_mask, d_resets, d_zone_key

    run.defvjp(run_fwd, run_bwd)
    return run(params, carry0, xs_T, lengths, h_mask, resets_T, zone_key)

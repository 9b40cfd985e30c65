"""Dropout, zoneout and weight-drop: the randomness a runner adds around its cell."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def drop(key: Array, x: Array, rate: float) -> Array:
    """Inverted dropout: zero each entry with probability ``rate``, scale the rest."""
    return x * mask(key, rate, x.shape, x.dtype)


def mask(key, rate, shape, dtype):
    """Entries 0 with probability ``rate``, else 1 / (1 - rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return (keep / (1.0 - rate)).astype(dtype)


def weight_drop(key, params, rate: float):
    """``(params with w_hh weight-dropped, the key left for the other regularizers)``.

    DropConnect on the recurrent weight (Merity et al., 2017): one mask shaped like
    w_hh ((P, G), or IndRNN's (H,)) for the whole call, so every step and every
    sequence sees the same dropped weights. Without a key, or at rate 0, nothing is
    drawn and ``(params, key)`` come back as they are; else the key is split into
    (the mask's, the rest's).
    """
    if key is None or rate == 0:
        return params, key
    weight_key, key = jax.random.split(key)
    w_hh = drop(weight_key, recurrent_weight(params), rate)
    return ({**params, "w_hh": w_hh} if isinstance(params, dict) else params._replace(w_hh=w_hh)), key


def recurrent_weight(params):
    """``params``' recurrent weight w_hh (a field or a dict key), or None."""
    return params.get("w_hh") if isinstance(params, dict) else getattr(params, "w_hh", None)


def uses_zoneout(rates) -> bool:
    return any(p > 0 for p in jax.tree.leaves(rates))


def zoneout(rates, key, old, new):
    """Per unit, keep the old carry with probability p (expectation without a key)."""

    def mix(p, old_leaf, new_leaf, leaf_key):
        if p == 0.0:
            return new_leaf
        if leaf_key is None:
            return (p * old_leaf + (1.0 - p) * new_leaf).astype(new_leaf.dtype)
        keep_old = jax.random.bernoulli(leaf_key, p, new_leaf.shape)
        return jnp.where(keep_old, old_leaf, new_leaf)

    treedef = jax.tree.structure(new)
    if isinstance(rates, float):
        rates = jax.tree.unflatten(treedef, [rates] * treedef.num_leaves)
    elif jax.tree.structure(rates) != treedef:
        raise ValueError(
            f"`zoneout` must be a float or rates shaped like the carry {treedef}, "
            f"got {jax.tree.structure(rates)}"
        )
    n = treedef.num_leaves
    keys = [None] * n if key is None else list(jax.random.split(key, n))
    leaves = [
        mix(p, o, w, k)
        for p, o, w, k in zip(jax.tree.leaves(rates), jax.tree.leaves(old), jax.tree.leaves(new), keys)
    ]
    return jax.tree.unflatten(treedef, leaves)


def zone(rates, key) -> Callable | None:
    """``zone(t, old, new)``: zoneout at ``rates`` with a fresh draw at each step t from
    ``key`` (its expectation without one); None when every rate is 0."""
    if not uses_zoneout(rates):
        return None

    def zone_step(t, old, new):
        step_key = None if key is None else jax.random.fold_in(key, t)
        return zoneout(rates, step_key, old, new)

    return zone_step


def regularizers(key, xs_T, h, *, input_dropout: float, recurrent_dropout: float
                 ) -> tuple[Array, Array | None, Array | None]:
    """(xs_T with input dropout, the mask of h_{t-1} or None, zoneout's key or None).

    Without a key there is no dropout and zoneout uses its expectation; one mask per
    sequence for both dropouts (variational); ``zone(rates, zoneout's key)`` draws
    afresh at every step.
    """
    keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
    if keys[0] is not None and input_dropout > 0:
        xs_T = xs_T * mask(keys[0], input_dropout, xs_T.shape[1:], xs_T.dtype)[None]
    h_mask = None
    if keys[1] is not None and recurrent_dropout > 0:
        h_mask = mask(keys[1], recurrent_dropout, h.shape, h.dtype)
    return xs_T, h_mask, keys[2]

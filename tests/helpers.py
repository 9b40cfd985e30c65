"""Cell configurations shared by the tests, params with every part non-trivial, and the
flags of a small `lstm-jax train adding`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import lstm_jax as lj

# Distinct sizes so that a swapped axis fails loudly.
B, T, I, H, P = 3, 7, 5, 6, 4

# (name, cell factory, reference kind, reference options)
CELLS = [
    ("lstm", lambda **kw: lj.lstm(H, **kw), "lstm", {}),
    ("lstm_peephole", lambda **kw: lj.lstm(H, peephole=True, **kw), "lstm", {}),
    ("lstm_layer_norm", lambda **kw: lj.lstm(H, layer_norm=True, **kw), "lstm", {}),
    ("lstm_proj", lambda **kw: lj.lstm(H, proj_size=P, **kw), "lstm", {}),
    ("lstm_coupled", lambda **kw: lj.lstm(H, coupled=True, **kw), "lstm", {"coupled": True}),
    ("lstm_no_bias", lambda **kw: lj.lstm(H, bias=False, **kw), "lstm", {}),
    (
        "lstm_all",
        lambda **kw: lj.lstm(H, proj_size=P, peephole=True, layer_norm=True, coupled=True, **kw),
        "lstm",
        {"coupled": True},
    ),
    ("gru", lambda **kw: lj.gru(H, **kw), "gru", {}),
    ("gru_no_bias", lambda **kw: lj.gru(H, bias=False, **kw), "gru", {}),
    ("simple_tanh", lambda **kw: lj.simple(H, **kw), "simple", {}),
    ("simple_relu", lambda **kw: lj.simple(H, activation="relu", **kw), "simple", {"act": lambda x: np.maximum(x, 0)}),
]
CELL_IDS = [c[0] for c in CELLS]
BASIC_CELLS = [c for c in CELLS if c[0] in ("lstm", "lstm_all", "gru", "simple_tanh")]
BASIC_IDS = [c[0] for c in BASIC_CELLS]

# `lstm-jax train adding` small enough for a test; FINISHED: the session's shared run
# (the `finished_run` fixture of conftest.py) and the tests that train one like it.
SMALL = ["--task-options", "length=12", "--hidden-size", "8", "--batch-size", "16",
         "--eval-batches", "2", "--no-progress"]
FINISHED = ["--steps", "10", "--seed", "4", "--checkpoint-every", "5", *SMALL]


def perturbed(params, key, scale=0.3):
    """Add noise to every leaf, so layer-norm scales, peepholes and biases all matter."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [a + scale * jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, noisy)


def make(factory, seed=0, input_size=I):
    cell = factory()
    params = perturbed(cell.init(jax.random.key(seed), input_size), jax.random.key(seed + 100))
    return cell, params


def inputs(shape=(B, T, I), seed=1):
    return jax.random.normal(jax.random.key(seed), shape)


def carry_tuple(carry):
    """Our carry as the reference's tuple: LSTM (h, c), others (h,)."""
    return tuple(carry) if isinstance(carry, lj.LSTMState) else (carry,)


def random_carry(cell, params, batch_shape, seed=7):
    zeros = cell.initial_carry(params, batch_shape)
    leaves, treedef = jax.tree.flatten(zeros)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)])


def assert_close(actual, expected, atol=1e-5, rtol=1e-5):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               atol=atol, rtol=rtol)


def assert_trees_close(a, b, atol=1e-5, rtol=1e-5):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert_close(x, y, atol, rtol)


jnp  # re-exported for tests that import * from here


def extra_requirement(name: str) -> str:
    """The requirement of distribution ``name`` as pyproject.toml's extras write it."""
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    found = {line for lines in project["optional-dependencies"].values() for line in lines
             if re.match(r"[A-Za-z0-9._-]+", line).group().lower() == name.lower()}
    assert len(found) == 1, (name, found)
    return found.pop()

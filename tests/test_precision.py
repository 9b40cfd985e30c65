"""float16/bfloat16 params, and the mixed policy: bfloat16 matmuls, float32 state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax as lj
from tests.helpers import BASIC_CELLS, BASIC_IDS, B, I, T, inputs

LENGTHS = jnp.array([7, 4, 2])
TOLERANCE = {jnp.bfloat16: 0.08, jnp.float16: 0.01}


def run(layer, params, xs):
    def loss(params, xs):
        _, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
        return jnp.mean(jnp.square(ys.astype(jnp.float32))), ys

    (value, ys), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, xs)
    return value, ys, grads


def dot_generals(jaxpr):
    """Every dot_general equation in ``jaxpr`` and the jaxprs nested in it (scan bodies)."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            yield eqn
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if hasattr(inner, "eqns"):
                yield from dot_generals(inner)


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_low_precision_params_are_finite_and_close_to_float32(dtype, name, factory, kind, options):
    low_cell = factory(param_dtype=dtype)
    low_params = low_cell.init(jax.random.key(0), I)  # orthogonal init in bf16/f16 works
    assert {leaf.dtype for leaf in jax.tree.leaves(low_params)} == {jnp.dtype(dtype)}
    f32_params = jax.tree.map(lambda a: a.astype(jnp.float32), low_params)
    xs = inputs()
    low = run(lj.rnn(low_cell), low_params, xs.astype(dtype))
    ref = run(lj.rnn(factory()), f32_params, xs)
    assert low[1].dtype == dtype
    for a in jax.tree.leaves(low):
        assert bool(jnp.all(jnp.isfinite(a.astype(jnp.float32))))
    assert relative_error(low[1], ref[1]) < TOLERANCE[dtype]
    for g_low, g_ref in zip(jax.tree.leaves(low[2]), jax.tree.leaves(ref[2])):
        assert relative_error(g_low, g_ref) < 3 * TOLERANCE[dtype]


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_mixed_policy_bf16_matmuls_with_f32_params_and_state(name, factory, kind, options):
    mixed_cell, f32_cell = factory(dtype=jnp.bfloat16), factory()
    params = f32_cell.init(jax.random.key(0), I)
    layer = lj.rnn(mixed_cell)
    xs = inputs()
    carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
    assert ys.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree.leaves(carry)} == {jnp.dtype(jnp.float32)}
    _, ys_f32 = lj.rnn(f32_cell).apply(params, xs, seq_lengths=LENGTHS)
    assert relative_error(ys, ys_f32) < TOLERANCE[jnp.bfloat16]
    # every matmul reads bfloat16 operands and accumulates into float32
    dots = list(dot_generals(jax.make_jaxpr(lambda p: layer.apply(p, xs))(params).jaxpr))
    assert len(dots) >= 2  # the input projection and the recurrent matmul
    for eqn in dots:
        assert [v.aval.dtype for v in eqn.invars] == [jnp.bfloat16, jnp.bfloat16]
        assert eqn.params["preferred_element_type"] == jnp.float32
    value, _, grads = run(layer, params, xs)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    assert np.isfinite(float(value))

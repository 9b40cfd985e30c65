"""Cells: one step against the NumPy reference, shapes, inits, dtypes and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax as lj
from tests import reference
from tests.helpers import BASIC_CELLS, BASIC_IDS, CELL_IDS, CELLS, B, H, I, P, assert_close, carry_tuple, make, random_carry


@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_step_matches_numpy_reference(name, factory, kind, options):
    cell, params = make(factory)
    carry = random_carry(cell, params, (B,))
    x = jax.random.normal(jax.random.key(3), (B, I))
    new_carry, y = cell.step(params, carry, x)
    p64, c64 = reference.to64(params), [np.asarray(c, np.float64) for c in carry_tuple(carry)]
    x64 = np.asarray(x, np.float64)
    if kind == "lstm":
        h, c, _ = reference.lstm_step(p64, *c64, x64, **options)
        expected = (h, c)
    elif kind == "gru":
        expected = (reference.gru_step(p64, *c64, x64, **options)[0],)
    else:
        expected = (reference.simple_step(p64, *c64, x64, **options)[0],)
    for got, want in zip(carry_tuple(new_carry), expected):
        assert_close(got, want)
    assert_close(y, expected[0])


@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_param_shapes_follow_pytorch_layout(name, factory, kind, options):
    cell = factory()
    params = cell.init(jax.random.key(0), input_size=I)
    gates = {"lstm": 3 if options.get("coupled") else 4, "gru": 3, "simple": 1}[kind]
    assert params.w_ih.shape == (I, gates * H)
    assert params.w_hh.shape == (cell.output_size, gates * H)
    if cell.config.bias:
        assert params.b.shape == (gates * H,)
    else:
        assert params.b is None
    assert cell.hidden_size == H
    assert cell.output_size == (P if getattr(cell.config, "proj_size", None) else H)


@pytest.mark.parametrize("batch_shape", [(), (2,), (2, 3)])
@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_step_works_on_any_leading_batch_shape(batch_shape, name, factory, kind, options):
    cell, params = make(factory)
    x = jax.random.normal(jax.random.key(3), (*batch_shape, I))
    carry = random_carry(cell, params, batch_shape)
    new_carry, y = cell.step(params, carry, x)
    flat = lambda a: jnp.reshape(a, (-1, a.shape[-1]))  # noqa: E731
    flat_carry, flat_y = cell.step(params, jax.tree.map(flat, carry), flat(x))
    assert y.shape == (*batch_shape, cell.output_size)
    assert_close(flat(y), flat_y, atol=1e-6)
    for a, b in zip(jax.tree.leaves(new_carry), jax.tree.leaves(flat_carry)):
        assert_close(flat(a), b, atol=1e-6)


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_step_is_a_scan_body(name, factory, kind, options):
    """cell.step plugs into lax.scan unchanged, and a hand loop gives the same result."""
    cell, params = make(factory)
    xs_T = jax.random.normal(jax.random.key(4), (5, B, I))
    carry0 = cell.initial_carry(params, (B,))
    final, ys = jax.lax.scan(lambda c, x: cell.step(params, c, x), carry0, xs_T)
    carry = carry0
    for t in range(5):
        carry, y = cell.step(params, carry, xs_T[t])
        assert_close(ys[t], y, atol=1e-6)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(carry)):
        assert_close(a, b, atol=1e-6)


def test_initial_carry_is_zeros_without_randomness():
    cell = lj.lstm(H, proj_size=P)
    params = cell.init(jax.random.key(0), I)
    carry = cell.initial_carry(params, batch_shape=(2, 3))
    assert isinstance(carry, lj.LSTMState)
    assert carry.h.shape == (2, 3, P) and carry.c.shape == (2, 3, H)
    assert not jnp.any(carry.h) and not jnp.any(carry.c)
    gru = lj.gru(H)
    assert gru.initial_carry(gru.init(jax.random.key(0), I)).shape == (H,)


@pytest.mark.parametrize("coupled, forget_block", [(False, 1), (True, 0)])
def test_forget_bias_is_added_to_the_forget_block_only(coupled, forget_block):
    params = lj.lstm(H, coupled=coupled, forget_bias=1.5).init(jax.random.key(0), I)
    blocks = np.asarray(params.b).reshape(-1, H)
    np.testing.assert_array_equal(blocks[forget_block], 1.5)
    others = np.delete(blocks, forget_block, axis=0)
    np.testing.assert_array_equal(others, 0.0)  # the flax preset's biases start at zero


def test_pytorch_preset_is_uniform_within_one_over_sqrt_h():
    params = lj.lstm(64, init="pytorch", forget_bias=0.0).init(jax.random.key(0), 32)
    bound = 64**-0.5
    for w in (params.w_ih, params.w_hh, params.b):
        assert float(jnp.max(jnp.abs(w))) <= bound
        assert float(jnp.max(jnp.abs(w))) > 0.9 * bound  # it fills the range
        assert abs(float(jnp.mean(w))) < 0.1 * bound


def test_flax_preset_has_orthogonal_recurrent_blocks():
    params = lj.lstm(H, init="flax").init(jax.random.key(0), I)
    for k in range(4):
        block = params.w_hh[:, k * H : (k + 1) * H]
        assert_close(block.T @ block, np.eye(H), atol=1e-5)


def test_custom_initializers_override_the_preset():
    cell = lj.simple(4, activation="relu", recurrent_init=lj.initializers.identity(),
                     bias_init=lj.initializers.constant(0.25))
    params = cell.init(jax.random.key(0), 3)
    np.testing.assert_array_equal(params.w_hh, np.eye(4))
    np.testing.assert_array_equal(params.b, 0.25)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("preset", ["flax", "pytorch"])
@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_init_works_for_every_float_dtype(dtype, preset, name, factory, kind, options):
    params = factory(param_dtype=dtype, init=preset).init(jax.random.key(0), I)
    for leaf in jax.tree.leaves(params):
        assert leaf.dtype == dtype
        assert bool(jnp.all(jnp.isfinite(leaf.astype(jnp.float32))))


# ---- errors -------------------------------------------------------------------------

@pytest.mark.parametrize("factory", [lj.lstm, lj.gru, lj.simple])
@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                        ("8", TypeError), (True, TypeError)])
def test_bad_hidden_size(factory, bad, error):
    with pytest.raises(error, match="`hidden_size` must be a positive int"):
        factory(bad)


def test_bad_cell_options():
    with pytest.raises(ValueError, match="`proj_size` must be a positive int, got 0"):
        lj.lstm(H, proj_size=0)
    with pytest.raises(ValueError, match="`init` must be one of \\['flax', 'pytorch'\\], got 'xavier'"):
        lj.gru(H, init="xavier")
    with pytest.raises(ValueError, match="`activation` must be one of"):
        lj.simple(H, activation="gelu")
    with pytest.raises(ValueError, match="`input_size` must be a positive int, got 0"):
        lj.lstm(H).init(jax.random.key(0), 0)


def test_step_rejects_bad_inputs():
    cell, params = make(lambda: lj.lstm(H))
    carry = cell.initial_carry(params, (B,))
    with pytest.raises(ValueError, match=r"`x_t` must have 5 features.*got shape \(3, 4\)"):
        cell.step(params, carry, jnp.ones((B, 4)))
    with pytest.raises(TypeError, match="`x_t` must have a floating-point dtype, got int32"):
        cell.step(params, carry, jnp.ones((B, I), jnp.int32))
    with pytest.raises(ValueError, match=r"`carry` must have shapes and dtypes .*\(3, 6\).* got .*\(2, 6\)"):
        cell.step(params, cell.initial_carry(params, (2,)), jnp.ones((B, I)))
    with pytest.raises(TypeError, match="`carry` must have the structure"):
        cell.step(params, (carry.h, carry.c), jnp.ones((B, I)))
    gru_params = lj.gru(H).init(jax.random.key(0), I)
    with pytest.raises(TypeError, match="`params` must be LSTMParams for a lstm cell, got GRUParams"):
        cell.step(gru_params, carry, jnp.ones((B, I)))


@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_sums_projections_is_true_of_combine(name, factory, kind, options):
    """A cell that declares ``sums_projections`` gives the same step from (gx, gh) as
    from (gx + gh, 0): the fused backward pass relies on it to save only the sum. A
    cell that does not declare it really reads them apart (GRU's reset gate, layer norm)."""
    cell, params = make(factory)
    carry = random_carry(cell, params, (B,))
    keys = jax.random.split(jax.random.key(3))
    gx, gh = (jax.random.normal(k, (B, params.w_hh.shape[1])) for k in keys)
    apart = cell.combine(params, carry, gx, gh)[:2]
    summed = cell.combine(params, carry, gx + gh, jnp.zeros_like(gh))[:2]
    differences = [float(jnp.max(jnp.abs(a - b)))
                   for a, b in zip(jax.tree.leaves(apart), jax.tree.leaves(summed))]
    expected = kind == "simple" or (kind == "lstm" and not cell.config.layer_norm)
    assert cell.config.sums_projections == expected
    if expected:
        assert max(differences) < 1e-6
    else:
        assert max(differences) > 1e-3


def test_options_every_cell_has_are_declared_once():
    """``common_options`` declares the options every cell has; each factory's signature
    is its own options followed by those, with the same defaults unless the factory
    declares the option itself (IndRNN's ``activation="relu"``)."""
    import inspect

    from lstm_jax.cells.base import common_options

    common = {n: p.default for n, p in inspect.signature(common_options).parameters.items()
              if p.kind is p.KEYWORD_ONLY}
    for kind in lj.KINDS.values():
        options = {n: p.default for n, p in inspect.signature(kind.factory).parameters.items()}
        own = inspect.signature(kind.factory.__wrapped__).parameters
        assert {n: options[n] for n in common if n not in own} == {
            n: v for n, v in common.items() if n not in own}
    with pytest.raises(TypeError, match=r"gru\(\) got an unexpected keyword argument 'proj_size'"):
        lj.gru(H, proj_size=2)

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
    for option, value, shown in (("dtype", jnp.int32, "int32"), ("param_dtype", jnp.bool_, "bool"),
                                 ("dtype", "half-ish", "'half-ish'")):
        with pytest.raises(TypeError, match=f"^`{option}` must be a floating-point dtype such as "
                                            f"jnp.float32, got {shown}$"):
            lj.gru(H, **{option: value})  # int32 computed gates of 0 and 1, silently
    with pytest.raises(TypeError, match="^`forget_bias` must be a float, got 'one'$"):
        lj.lstm(H, forget_bias="one")
    with pytest.raises(ValueError, match="^`forget_bias` must be finite, got nan$"):
        lj.mgu(H, forget_bias=float("nan"))
    with pytest.raises(TypeError, match="^`kernel_init` must be an initializer init\\(key, shape, "
                                        "dtype\\) such as lstm_jax.initializers.orthogonal\\(\\), "
                                        "got 'orthogonal'$"):
        lj.lstm(H, kernel_init="orthogonal")  # at construction, not at init


# params of another cell, or of this cell built with other options: the check names what
# differs, before the step's own math meets the shapes (factory of the cell, of the params)
OTHER_PARAMS = {
    "wider": (lambda: lj.lstm(H), lambda: lj.lstm(2 * H), ValueError,
              r"^params.w_ih is \(5, 48\) where this model has \(5, 24\)$"),
    "coupled": (lambda: lj.lstm(H), lambda: lj.lstm(H, coupled=True), ValueError,
                r"^params.w_ih is \(5, 18\) where this model has \(5, 24\)$"),
    "projected": (lambda: lj.lstm(H), lambda: lj.lstm(H, proj_size=P), TypeError,
                  r"^'params' holds another structure than this model's \(unexpected w_hr\)$"),
    "not projected": (lambda: lj.lstm(H, proj_size=P), lambda: lj.lstm(H), TypeError,
                      r"\(missing w_hr\)$"),
    "peephole": (lambda: lj.lstm(H), lambda: lj.lstm(H, peephole=True), TypeError,
                 r"\(unexpected peephole.f, peephole.i, peephole.o\)$"),
    "layer norm": (lambda: lj.lstm(H, layer_norm=True), lambda: lj.lstm(H), TypeError,
                   r"\(missing layer_norm.cell.bias, layer_norm.cell.scale, layer_norm.inputs.scale\)$"),
    "bias": (lambda: lj.gru(H, bias=False), lambda: lj.gru(H), TypeError, r"\(unexpected b, b_hn\)$"),
    "kind": (lambda: lj.lstm(H), lambda: lj.gru(H), TypeError,
             "^`params` must be LSTMParams for a lstm cell, got GRUParams$"),
    "dict": (lambda: lj.lstm(H), lambda: lj.lstm(H), TypeError,
             "^`params` must be LSTMParams for a lstm cell, got dict$"),
}


@pytest.mark.parametrize("name", OTHER_PARAMS)
def test_params_of_another_cell_are_refused_naming_what_differs(name):
    make_cell, make_other, error, match = OTHER_PARAMS[name]
    cell = make_cell()
    params = make_other().init(jax.random.key(0), I)
    if name == "dict":  # a flax module's variables, lj.nn.to_dict's form
        params = lj.nn.to_dict(params)
    carry = cell.initial_carry(cell.init(jax.random.key(0), I), (B,))
    with pytest.raises(error, match=match):
        cell.step(params, carry, jnp.ones((B, I)))
    with pytest.raises(error, match=match):
        cell.initial_carry(params, (B,))
    with pytest.raises(error, match=match):
        lj.rnn(cell).apply(params, jnp.ones((B, 7, I)))


def test_params_with_one_array_of_another_shape_name_it():
    cell, params = make(lambda: lj.lstm(H))
    wrong = params._replace(w_hh=jnp.zeros((H, 2 * 4 * H)))
    with pytest.raises(ValueError, match=r"^params.w_hh is \(6, 48\) where this model has \(6, 24\)$"):
        lj.rnn(cell).apply(wrong, jnp.ones((B, 7, I)))
    halved = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)  # another dtype is a choice
    assert lj.rnn(cell).apply(halved, jnp.ones((B, 7, I)))[1].shape == (B, 7, H)


def test_initial_carry_takes_a_batch_shape_or_one_batch_size():
    cell, params = make(lambda: lj.lstm(H))
    assert_close(cell.initial_carry(params, B), cell.initial_carry(params, (B,)))
    assert lj.rnn(cell).initial_carry(params, np.int64(B)).h.shape == (B, H)
    for bad in ((-1,), (2.0,), "3", None, (B, True)):
        with pytest.raises(TypeError, match=r"`batch_shape` must be a tuple of ints >= 0 such as \(B,\), got "):
            cell.initial_carry(params, bad)
        with pytest.raises(TypeError, match="`batch_shape` must be a tuple of ints >= 0"):
            lj.rnn(cell).initial_carry(params, bad)


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

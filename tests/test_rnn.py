"""The scan runner: parity with the NumPy reference, transforms, masking, options, errors."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax.runner import reverse_in_time
from tests import reference
from tests.helpers import (BASIC_CELLS, BASIC_IDS, CELL_IDS, CELLS, B, H, I, T, assert_close,
                           assert_trees_close, carry_tuple, inputs, make, perturbed, random_carry)

LENGTHS = jnp.array([7, 3, 0])  # full, partial and empty sequences


def check_against_reference(layer, params, kind, options, xs, *, lengths=None, carry=None,
                            reverse=False):
    out_carry, ys = layer.apply(params, xs, seq_lengths=lengths, carry=carry, reverse=reverse)
    ref_carry, ref_ys, _ = reference.run(
        kind, params, xs, lengths=lengths, reverse=reverse,
        carry=None if carry is None else carry_tuple(carry), **options)
    assert_close(ys, ref_ys)
    for got, want in zip(carry_tuple(out_carry), ref_carry):
        assert_close(got, want)


@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_layer_matches_numpy_reference(name, factory, kind, options):
    cell, params = make(factory)
    layer = lj.rnn(cell)
    xs = inputs()
    check_against_reference(layer, params, kind, options, xs)
    check_against_reference(layer, params, kind, options, xs, lengths=LENGTHS, reverse=True,
                            carry=random_carry(cell, params, (B,)))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("with_carry", [False, True])
@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_masking_reverse_and_carry_match_reference(reverse, with_lengths, with_carry, name,
                                                  factory, kind, options):
    cell, params = make(factory)
    carry = random_carry(cell, params, (B,)) if with_carry else None
    check_against_reference(lj.rnn(cell), params, kind, options, inputs(),
                            lengths=LENGTHS if with_lengths else None, carry=carry,
                            reverse=reverse)


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_time_major_and_unbatched_layouts(name, factory, kind, options):
    cell, params = make(factory)
    xs = inputs()
    carry, ys = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS)
    tm_carry, tm_ys = lj.rnn(cell, time_major=True).apply(params, jnp.swapaxes(xs, 0, 1),
                                                          seq_lengths=LENGTHS)
    assert_close(jnp.swapaxes(tm_ys, 0, 1), ys, atol=1e-6)
    assert_trees_close(tm_carry, carry, atol=1e-6)
    one_carry, one_ys = lj.rnn(cell).apply(params, xs[1], seq_lengths=LENGTHS[1])
    assert_close(one_ys, ys[1], atol=1e-6)
    assert_trees_close(one_carry, jax.tree.map(lambda a: a[1], carry), atol=1e-6)


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_hand_stepped_loop_equals_scan(name, factory, kind, options):
    cell, params = make(factory)
    xs = inputs()
    carry = cell.initial_carry(params, (B,))
    ys = []
    for t in range(T):
        carry, y = cell.step(params, carry, xs[:, t])
        ys.append(y)
    scan_carry, scan_ys = lj.rnn(cell).apply(params, xs)
    assert_close(scan_ys, jnp.stack(ys, axis=1), atol=1e-6)
    assert_trees_close(scan_carry, carry, atol=1e-6)


def _loss(layer, params, xs, **kwargs):
    carry, ys = layer.apply(params, xs, **kwargs)
    weights = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
    return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(carry))


def _grads(layer, params, xs, **kwargs):
    """The gradients of ``_loss`` with respect to params and xs, as one jitted program
    (eager differentiation dispatches and compiles op by op: most of a test's time)."""
    return jax.jit(jax.grad(lambda p, x: _loss(layer, p, x, **kwargs), argnums=(0, 1)))(params, xs)


RUNNER_OPTIONS = [dict(hoist=True), dict(unroll=2), dict(unroll=T), dict(remat=True), dict(remat=2),
                  dict(remat=T + 5), dict(hoist=True, remat=True, unroll=4)]
OPTION_CASES = [(cells[0], options) for cells in BASIC_CELLS if cells[0] in ("lstm", "gru")
                for options in RUNNER_OPTIONS]
OPTION_CASES += [(name, dict(hoist=True, remat=True, unroll=4)) for name in ("lstm_all", "simple_tanh")]


@pytest.mark.parametrize("name, options", OPTION_CASES,
                         ids=[f"{n}-" + ",".join(f"{k}={v}" for k, v in o.items()) for n, o in OPTION_CASES])
def test_runner_options_do_not_change_results(name, options):
    """hoist, unroll and remat change how the loop runs, never what it computes."""
    cell, params = make(dict((c[0], c[1]) for c in CELLS)[name])
    xs = inputs()
    plain, layer = lj.rnn(cell, hoist=False), lj.rnn(cell, **options)
    kwargs = dict(seq_lengths=LENGTHS, reverse=True)
    assert_trees_close(layer.apply(params, xs, **kwargs), plain.apply(params, xs, **kwargs), atol=1e-6)
    assert_trees_close(_grads(layer, params, xs, **kwargs), _grads(plain, params, xs, **kwargs),
                       atol=1e-5)


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_jit_gives_the_same_results(name, factory, kind, options):
    cell, params = make(factory)
    layer, xs = lj.rnn(cell), inputs()
    apply = functools.partial(layer.apply, seq_lengths=LENGTHS)
    assert_trees_close(jax.jit(apply)(params, xs), apply(params, xs), atol=1e-6)


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_vmap_over_a_batch_of_parameter_sets(name, factory, kind, options):
    cell = factory()
    layer, xs = lj.rnn(cell), inputs()
    keys = jax.random.split(jax.random.key(0), 4)
    stacked = jax.vmap(lambda k: layer.init(k, I))(keys)
    carry, ys = jax.vmap(lambda p: layer.apply(p, xs, seq_lengths=LENGTHS))(stacked)
    for n in range(4):
        one = jax.tree.map(lambda a: a[n], stacked)
        c, y = layer.apply(one, xs, seq_lengths=LENGTHS)
        assert_close(ys[n], y, atol=1e-6)
        assert_trees_close(jax.tree.map(lambda a: a[n], carry), c, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False], ids=["fused_backward", "autodiff"])
@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_check_grads(fused, name, factory, kind, options):
    """Derivatives against finite differences, in float64: reverse mode through the
    hand-written backward pass; forward and reverse mode through plain autodiff."""
    with jax.enable_x64(True):
        cell = factory(param_dtype=jnp.float64)
        params = perturbed(cell.init(jax.random.key(0), I), jax.random.key(1))
        layer = lj.rnn(cell, fused_backward=fused)
        xs = inputs((2, 4, I)).astype(jnp.float64)
        carry = random_carry(cell, params, (2,))
        lengths = jnp.array([4, 2])

        def f(params, xs, carry):
            out_carry, ys = layer.apply(params, xs, carry=carry, seq_lengths=lengths)
            return ys, out_carry

        check_grads(jax.jit(f), (params, xs, carry), order=1,
                    modes=["rev"] if fused else ["fwd", "rev"])


FUSED_CASES = [(c, False) for c in CELLS] + [(c, True) for c in BASIC_CELLS]


@pytest.mark.parametrize("case, hoist", FUSED_CASES, ids=[f"{c[0]}-hoist={h}" for c, h in FUSED_CASES])
def test_fused_backward_equals_autodiff(case, hoist):
    name, factory, kind, options = case
    cell, params = make(factory)
    xs, carry = inputs(), random_carry(cell, params, (B,))

    def grads(fused, **kwargs):
        layer = lj.rnn(cell, hoist=hoist, fused_backward=fused)
        return _grads(layer, params, xs, carry=carry, **kwargs)

    for kwargs in (dict(), dict(seq_lengths=LENGTHS, reverse=True)):
        assert_trees_close(grads(True, **kwargs), grads(False, **kwargs), atol=1e-5)


def test_fused_backward_with_recurrent_dropout_equals_autodiff():
    cell, params = make(lambda: lj.lstm(H, proj_size=4))
    xs = inputs()

    def grads(fused):
        layer = lj.rnn(cell, recurrent_dropout=0.3, input_dropout=0.2, fused_backward=fused)
        return jax.grad(lambda p, x: jnp.sum(layer.apply(p, x, key=jax.random.key(0))[1] ** 2),
                        argnums=(0, 1))(params, xs)

    assert_trees_close(grads(True), grads(False), atol=1e-5)


@pytest.mark.parametrize("factory", [lambda: lj.lstm(H), lambda: lj.gru(H)], ids=["lstm", "gru"])
def test_fused_backward_traced_apart_from_its_forward(factory):
    """jax.vjp under one jit and its function under another: the backward pass must not
    close over the forward trace's values (lengths, dropout masks, step indices)."""
    cell, params = make(factory)
    xs = inputs()

    def loss(fused):
        layer = lj.rnn(cell, recurrent_dropout=0.3, fused_backward=fused)
        return lambda p, x: jnp.sum(
            layer.apply(p, x, seq_lengths=LENGTHS, key=jax.random.key(0))[1] ** 2)

    pullback = jax.jit(lambda p, x: jax.vjp(loss(True), p, x)[1])(params, xs)
    apart = jax.jit(lambda pb: pb(jnp.ones(())))(pullback)
    assert_trees_close(apart, jax.grad(loss(False), argnums=(0, 1))(params, xs), atol=1e-5)


def _while_bodies(hlo: str) -> dict[str, str]:
    """{name: text} of the computations that run as the body of a compiled while loop."""
    names = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    blocks = re.split(r"\n(?=%?[\w.\-]+ \()", hlo)
    return {name: block for block in blocks for name in names
            if re.match(rf"%?{re.escape(name)} \(", block)}


@pytest.mark.parametrize("factory", [lambda: lj.indrnn(H), lambda: lj.lstm(H), lambda: lj.gru(H)],
                         ids=["indrnn", "lstm", "gru"])
def test_the_fused_backward_loop_copies_no_whole_sequence_per_step(factory):
    """No step of the backward scan copies a (T, B, G) buffer: written in place with two
    readers, XLA copied the saved gate inputs at every step of an IndRNN (O(T²): 52 s per
    training step at T = 1000, 0.013 s with fused_backward=False)."""
    steps = 40
    cell, params = make(factory)
    xs = jax.random.normal(jax.random.key(1), (B, steps, I))
    layer = lj.rnn(cell, fused_backward=True)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply(p, xs)[1] ** 2)))
    hlo = grad.lower(params).compile().as_text()
    bodies = _while_bodies(hlo)
    assert len(bodies) == 2  # the forward and the backward scan
    for name, body in bodies.items():
        whole = [line for line in body.splitlines()
                 if re.search(rf"= f32\[{steps},{B},\d+\]\S* copy\(", line)]
        assert not whole, (name, whole)


def test_forward_mode_needs_fused_backward_off():
    cell, params = make(lambda: lj.gru(H))
    xs = inputs()
    f = lambda layer: lambda x: layer.apply(params, x)[1]  # noqa: E731
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(f(lj.rnn(cell)), (xs,), (xs,))
    _, tangent = jax.jvp(f(lj.rnn(cell, fused_backward=False)), (xs,), (xs,))
    assert tangent.shape == (B, T, H)


def test_second_order_reverse_mode_runs_through_the_fused_backward():
    """jax.grad of a function of jax.grad (a gradient penalty, MAML's inner step): the
    fused backward is itself differentiable, and agrees with autodiff of the scan."""
    cell, params = make(lambda: lj.lstm(H))
    xs = inputs()

    def penalty(layer):
        loss = lambda p: jnp.sum(layer.apply(p, xs)[1] ** 2)  # noqa: E731
        return jax.jit(jax.grad(lambda p: sum(jnp.sum(g ** 2) for g in
                                              jax.tree.leaves(jax.grad(loss)(p)))))

    fused, plain = (penalty(lj.rnn(cell, fused_backward=on))(params) for on in (True, False))
    for a, b in zip(jax.tree.leaves(fused), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize("name, factory, kind, options", BASIC_CELLS, ids=BASIC_IDS)
def test_grad_matches_the_numpy_reference_by_finite_differences(name, factory, kind, options):
    """d loss / d w_hh from JAX against float64 central differences of the reference."""
    cell, params = make(factory)
    xs = inputs()
    weights = np.cos(np.arange(B * T * cell.output_size)).reshape(B, T, cell.output_size)

    def ref_loss(w_hh):
        p = params._replace(w_hh=w_hh)
        _, ys, _ = reference.run(kind, p, xs, lengths=LENGTHS, reverse=True, **options)
        return float(np.sum(ys * weights))

    grad = jax.grad(lambda p: jnp.sum(lj.rnn(cell).apply(p, xs, seq_lengths=LENGTHS, reverse=True)[1]
                                      * weights))(params).w_hh
    w = np.asarray(params.w_hh, np.float64)
    eps = 1e-6
    for idx in [(0, 0), (1, 2), (w.shape[0] - 1, w.shape[1] - 1)]:
        up, down = w.copy(), w.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric = (ref_loss(up) - ref_loss(down)) / (2 * eps)
        assert abs(float(grad[idx]) - numeric) < 1e-4 * max(1.0, abs(numeric))


@pytest.mark.slow  # a fast sibling covers its path
def test_long_sequence_with_remat_is_finite():
    cell = lj.lstm(16)
    layer = lj.rnn(cell, remat=True)
    params = layer.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (2, 10_000, 4))
    loss, grads = jax.jit(jax.value_and_grad(lambda p: jnp.mean(layer.apply(p, xs)[1] ** 2)))(params)
    assert np.isfinite(float(loss))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads))


def test_remat_bounds_activation_memory():
    """Training memory at T=2,000 with remat stays a small fraction of without."""
    layer_args = dict(hoist=False)
    cell = lj.lstm(32)
    params = cell.init(jax.random.key(0), 8)
    xs = jnp.zeros((4, 2000, 8))

    def temp_bytes(remat):
        layer = lj.rnn(cell, remat=remat, **layer_args)
        grad = jax.jit(jax.grad(lambda p: jnp.mean(layer.apply(p, xs)[1] ** 2)))
        return grad.lower(params).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(True) < temp_bytes(False) / 4


# ---- gates --------------------------------------------------------------------------

@pytest.mark.parametrize("name, factory, kind, options", CELLS, ids=CELL_IDS)
def test_return_gates_matches_reference_activations(name, factory, kind, options):
    cell, params = make(factory)
    xs = inputs()
    carry, ys, gates = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, reverse=True,
                                          return_gates=True)
    _, ref_ys, ref_gates = reference.run(kind, params, xs, lengths=LENGTHS, reverse=True, **options)
    assert set(gates._fields) == set(ref_gates)
    for field in gates._fields:
        assert_close(getattr(gates, field), ref_gates[field])
    assert_close(gates.h, ys)


# ---- dropout and zoneout ------------------------------------------------------------

def _linear_identity_cell(size):
    """h_t = x_t + h_{t-1}: an Elman cell with identity weights and no nonlinearity."""
    cell = lj.simple(size, activation=lambda z: z, bias=False)
    params = lj.SimpleParams(w_ih=jnp.eye(size), w_hh=jnp.eye(size), b=None)
    return cell, params


def test_input_dropout_uses_one_mask_per_sequence():
    size, rate = 32, 0.25
    cell, params = _linear_identity_cell(size)
    params = params._replace(w_hh=jnp.zeros((size, size)))  # h_t = x_t (masked)
    layer = lj.rnn(cell, input_dropout=rate)
    xs = jnp.ones((64, 5, size))
    _, ys = layer.apply(params, xs, key=jax.random.key(0))
    assert_close(ys, jnp.broadcast_to(ys[:, :1], ys.shape), atol=0)  # the same mask at every t
    assert np.all(np.isclose(ys, 0.0) | np.isclose(ys, 1 / (1 - rate)))
    assert abs(float(jnp.mean(ys == 0)) - rate) < 0.03
    _, ys_eval = layer.apply(params, xs)
    assert_close(ys_eval, xs, atol=0)  # no key: no dropout


def test_recurrent_dropout_uses_one_mask_per_sequence():
    size, rate = 32, 0.5
    cell, params = _linear_identity_cell(size)
    layer = lj.rnn(cell, recurrent_dropout=rate)
    xs = jnp.zeros((64, 4, size)).at[:, 0].set(1.0)  # h_0 = 1, then h_t = m * h_{t-1}
    _, ys = layer.apply(params, xs, key=jax.random.key(1))
    mask = ys[:, 1]
    assert np.all(np.isclose(mask, 0.0) | np.isclose(mask, 2.0))
    assert_close(ys[:, 2], mask * mask, atol=0)
    assert_close(ys[:, 3], mask**3, atol=0)


def test_zoneout_keeps_whole_units_and_uses_the_expectation_without_key():
    size, rate = 32, 0.3
    cell, params = _linear_identity_cell(size)
    layer = lj.rnn(cell, zoneout=rate)
    xs = jnp.ones((64, 20, size))
    _, ys, states = layer.apply(params, xs, key=jax.random.key(2), return_all_states="with_initial")
    steps = jnp.diff(states, axis=1)  # each unit of the carry either kept (0) or moved by 1
    assert np.all(np.isclose(steps, 0.0) | np.isclose(steps, 1.0))
    assert abs(float(jnp.mean(steps == 0)) - rate) < 0.02
    assert float(jnp.mean(jnp.std(steps, axis=1))) > 0  # masks differ between steps
    assert_close(ys, states[:, :-1] + 1, atol=0)  # y_t is the step's own h, not the zoned one
    _, ys_eval, states = layer.apply(params, xs, return_all_states=True)
    expected = np.cumsum(np.full(20, 1 - rate))  # carry_t = carry_{t-1} + (1 - p) * x_t
    assert_close(states[0, :, 0], expected, atol=1e-5)
    assert_close(ys_eval[0, :, 0], expected - (1 - rate) + 1, atol=1e-5)


def test_zoneout_rates_per_carry_field():
    cell, params = make(lambda: lj.lstm(H))
    xs = inputs()
    layer = lj.rnn(cell, zoneout=lj.LSTMState(h=0.0, c=0.5))
    _, ys = layer.apply(params, xs)
    h, c = np.zeros((B, H)), np.zeros((B, H))
    p64 = reference.to64(params)
    for t in range(T):
        h_new, c_new, _ = reference.lstm_step(p64, h, c, np.asarray(xs[:, t], np.float64))
        h, c = h_new, 0.5 * c + 0.5 * c_new
        assert_close(ys[:, t], h)


# ---- errors -------------------------------------------------------------------------

def test_apply_rejects_bad_inputs():
    cell, params = make(lambda: lj.lstm(H))
    layer = lj.rnn(cell)
    xs = inputs()
    with pytest.raises(ValueError, match=r"`xs` must have shape \(B, T, I\), \(\*batch, T, I\) or "
                                         r"\(T, I\), got shape \(5,\)"):
        layer.apply(params, jnp.ones(5))
    with pytest.raises(TypeError, match="`xs` must have a floating-point dtype, got int32"):
        layer.apply(params, jnp.ones((B, T, I), jnp.int32))
    with pytest.raises(ValueError, match=r"`xs` must have 5 features .* got shape \(3, 7, 4\)"):
        layer.apply(params, jnp.ones((B, T, 4)))
    with pytest.raises(TypeError, match="`seq_lengths` must have an integer dtype, got float32"):
        layer.apply(params, xs, seq_lengths=jnp.ones(B))
    with pytest.raises(ValueError, match=r"`seq_lengths` has shape \(2,\) but `xs` has batch shape \(3,\)"):
        layer.apply(params, xs, seq_lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, T=7\], got values in \[0, 8\]"):
        layer.apply(params, xs, seq_lengths=jnp.array([8, 0, 1]))
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, T=7\], got values in \[-1, 3\]"):
        layer.apply(params, xs, seq_lengths=np.array([-1, 3, 2]))
    with pytest.raises(TypeError, match="`carry` must have the structure"):
        layer.apply(params, xs, carry=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match=r"`carry` must have shapes and dtypes"):
        layer.apply(params, xs, carry=cell.initial_carry(params, (B + 1,)))
    with pytest.raises(TypeError, match="`reverse` must be True or False, got 'False'"):
        layer.apply(params, xs, reverse="False")  # a string would be read as True
    with pytest.raises(TypeError, match="`return_gates` must be True or False, got 'no'"):
        layer.apply(params, xs, return_gates="no")


def test_rnn_rejects_bad_options():
    cell = lj.lstm(H)
    with pytest.raises(TypeError, match="`cell` must be a cell: an object with init.*got str, which has no `init`"):
        lj.rnn("lstm")
    with pytest.raises(ValueError, match="`unroll` must be a positive int, got 0"):
        lj.rnn(cell, unroll=0)
    with pytest.raises(ValueError, match="`remat` must be a positive int, got -2"):
        lj.rnn(cell, remat=-2)
    with pytest.raises(ValueError, match=r"`recurrent_dropout` must be in \[0, 1\), got 1.0"):
        lj.rnn(cell, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match=r"`zoneout` must be in \[0, 1\), got -0.1"):
        lj.rnn(cell, zoneout=-0.1)
    layer = lj.rnn(lj.gru(H), zoneout=lj.LSTMState(h=0.1, c=0.1))
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="`zoneout` must be a float or rates shaped like the carry"):
        layer.apply(params, inputs())


def test_rates_take_any_real_number_but_a_bool():
    layer = lj.rnn(lj.lstm(H), input_dropout=np.int64(0), recurrent_dropout=np.float32(0.5))
    rates = layer.config.input_dropout, layer.config.recurrent_dropout
    assert rates == (0.0, 0.5) and all(type(p) is float for p in rates)
    assert lj.stack([lj.lstm(H)], dropout=np.int64(1)).config.dropout == 1.0
    with pytest.raises(TypeError, match=r"^`recurrent_dropout` must be a float in \[0, 1\), got True$"):
        lj.rnn(lj.lstm(H), recurrent_dropout=True)
    with pytest.raises(TypeError, match=r"^`dropout` must be a float in \[0, 1\], got np.False_$"):
        lj.stack([lj.lstm(H)], dropout=np.False_)
    with pytest.raises(ValueError, match=r"^`input_dropout` must be in \[0, 1\), got 1$"):
        lj.rnn(lj.lstm(H), input_dropout=np.int64(1))


def test_seq_lengths_may_be_traced_under_jit():
    cell, params = make(lambda: lj.gru(H))
    layer, xs = lj.rnn(cell), inputs()
    traced = jax.jit(lambda n: layer.apply(params, xs, seq_lengths=n))(LENGTHS)
    assert_trees_close(traced, layer.apply(params, xs, seq_lengths=LENGTHS), atol=1e-6)


def test_reverse_in_time_is_an_involution_within_lengths():
    xs_T = jnp.arange(7 * 3, dtype=jnp.float32).reshape(7, 3, 1)
    once = reverse_in_time(xs_T, LENGTHS)
    np.testing.assert_array_equal(once[:3, 1, 0], xs_T[2::-1, 1, 0])  # reversed within 3
    np.testing.assert_array_equal(once[3:, 1, 0], xs_T[3:, 1, 0])  # padding stays put
    np.testing.assert_array_equal(reverse_in_time(once, LENGTHS), xs_T)


def test_scan_stacks_half_precision_outputs_without_changing_them():
    """The runners' scan widens bf16/f16 stacks to float32 inside the loop (XLA's CPU
    code would rewrite the whole stack at every step) and returns lax.scan's result."""
    from lstm_jax._loop import scan

    def body(c, x):
        c = c * 1.01 + x
        return c, {"bf16": c.astype(jnp.bfloat16), "f16": (c / 3).astype(jnp.float16),
                   "f32": c, "int": jnp.round(c).astype(jnp.int32), "none": None}

    xs = jax.random.normal(jax.random.key(0), (9, 3))
    expected = jax.lax.scan(body, jnp.zeros(3), xs)
    got = jax.jit(lambda xs: scan(body, jnp.zeros(3), xs))(xs)
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))

"""MGU, IndRNN, minGRU and minLSTM: NumPy float64 references, the runner against
stepping by hand, gradients, bf16, gate activations, flax parity, parallel in time."""

from __future__ import annotations

import dataclasses

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax.cells import protocol
from tests import reference
from tests.helpers import B, H, I, T, assert_close, assert_trees_close, inputs, make, random_carry

LENGTHS = jnp.array([7, 3, 0])  # full, partial and empty sequences


# ---- NumPy float64 references, written from the papers' equations -------------------

def mgu_step(p, h, x, *, reset_gate=True, act=np.tanh, gate=reference.sigmoid):
    """Zhou et al. (2016) as flax's MGUCell: (B, I) x, (B, H) h -> (h, gates)."""
    b = np.zeros(2 * H) if p.b is None else p.b
    W_if, W_in = p.w_ih[:, :H], p.w_ih[:, H:]
    W_hf, W_hn = p.w_hh[:, :H], p.w_hh[:, H:]
    f = gate(x @ W_if + b[:H] + h @ W_hf)
    recurrent = h @ W_hn
    if reset_gate:
        recurrent = f * (recurrent + (0.0 if p.b_hn is None else p.b_hn))
    n = act(x @ W_in + b[H:] + recurrent)
    h_new = (1 - f) * n + f * h
    return h_new, dict(f=f, n=n, h=h_new)


def relu(x):
    return np.maximum(x, 0.0)


def indrnn_step(p, h, x, *, act=relu, min_abs=None, max_abs=None):
    """Li et al. (2018): h = act(x W + b + u * h), |u| bounded as the paper's ReLU cell."""
    u = p.w_hh.copy()
    if min_abs is not None:
        u = np.where(u < 0, -1.0, 1.0) * np.maximum(np.abs(u), min_abs)
    if max_abs is not None:
        u = np.clip(u, -max_abs, max_abs)
    h_new = act(x @ p.w_ih + (0.0 if p.b is None else p.b) + u * h)
    return h_new, dict(h=h_new)


def g(x):
    """The minGRU paper's positive candidate activation."""
    return np.where(x >= 0, x + 0.5, reference.sigmoid(x))


def min_gru_step(p, h, x):
    """Feng et al. (2024), in plain (not log) space."""
    k = x @ p.w_ih + (0.0 if p.b is None else p.b)
    z, n = reference.sigmoid(k[:, :H]), g(k[:, H:])
    h_new = (1 - z) * h + z * n
    return h_new, dict(z=z, n=n, h=h_new)


def min_lstm_step(p, h, x):
    k = x @ p.w_ih + (0.0 if p.b is None else p.b)
    f, i, n = reference.sigmoid(k[:, :H]), reference.sigmoid(k[:, H : 2 * H]), g(k[:, 2 * H :])
    f, i = f / (f + i), i / (f + i)
    h_new = f * h + i * n
    return h_new, dict(f=f, i=i, n=n, h=h_new)


def run_reference(step, p, xs, *, lengths=None, carry=None, reverse=False):
    """``step`` over each sequence of xs (B, T, I) cut to its length: (h (B, H), ys, gates)."""
    p = reference.to64(p)
    xs = np.asarray(xs, np.float64)
    lengths = np.full(xs.shape[0], xs.shape[1]) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((xs.shape[0], H)) if carry is None else np.asarray(carry, np.float64)
    finals, ys, gates = h0.copy(), np.zeros((*xs.shape[:2], H)), {}
    for b, n in enumerate(lengths):
        h = h0[b : b + 1]
        for t in (range(n - 1, -1, -1) if reverse else range(n)):
            h, g = step(p, h, xs[b : b + 1, t])
            ys[b, t] = h[0]
            for name, value in g.items():
                gates.setdefault(name, np.zeros((*xs.shape[:2], H)))[b, t] = value[0]
        finals[b] = h[0]
    return finals, ys, gates


# (name, factory, NumPy step)
CASES = [
    ("mgu", lambda **kw: lj.mgu(H, **kw), mgu_step),
    ("mgu_no_reset", lambda **kw: lj.mgu(H, reset_gate=False, **kw),
     lambda *a: mgu_step(*a, reset_gate=False)),
    ("mgu_no_bias", lambda **kw: lj.mgu(H, bias=False, **kw), mgu_step),
    ("indrnn", lambda **kw: lj.indrnn(H, **kw), indrnn_step),
    # make() perturbs u by N(0, 0.3²): these bounds bite on some units, not on others
    ("indrnn_tanh_bounded",
     lambda **kw: lj.indrnn(H, activation="tanh", recurrent_min_abs=0.2,
                            recurrent_max_abs=0.7, **kw),
     lambda *a: indrnn_step(*a, act=np.tanh, min_abs=0.2, max_abs=0.7)),
    ("indrnn_no_bias", lambda **kw: lj.indrnn(H, bias=False, **kw), indrnn_step),
    ("min_gru", lambda **kw: lj.min_gru(H, **kw), min_gru_step),
    ("min_lstm", lambda **kw: lj.min_lstm(H, **kw), min_lstm_step),
    ("min_lstm_no_bias", lambda **kw: lj.min_lstm(H, bias=False, **kw), min_lstm_step),
]
IDS = [c[0] for c in CASES]
EACH = pytest.mark.parametrize("name, factory, step", CASES, ids=IDS)


@EACH
def test_step_matches_numpy_reference(name, factory, step):
    cell, params = make(factory)
    h = random_carry(cell, params, (B,))
    x = jax.random.normal(jax.random.key(3), (B, I))
    new_h, y = cell.step(params, h, x)
    want, _ = step(reference.to64(params), np.asarray(h, np.float64), np.asarray(x, np.float64))
    assert_close(new_h, want)
    assert_close(y, want)


def in_parallel(cell) -> dict:
    """``parallel=True`` for the cells that have the capability (min_gru, min_lstm)."""
    return {"parallel": True} if protocol.has(cell, "parallel") else {}


@pytest.mark.parametrize("reverse", [False, True])
@EACH
def test_layer_matches_numpy_reference(reverse, name, factory, step):
    cell, params = make(factory)
    xs, h0 = inputs(), random_carry(cell, params, (B,))
    carry, ys = lj.rnn(cell, **in_parallel(cell)).apply(params, xs, seq_lengths=LENGTHS,
                                                       carry=h0, reverse=reverse)
    want_h, want_ys, _ = run_reference(step, params, xs, lengths=LENGTHS, carry=h0,
                                       reverse=reverse)
    assert_close(ys, want_ys)
    assert_close(carry, want_h)


@EACH
def test_layer_equals_stepping_the_cell_by_hand(name, factory, step):
    """lj.rnn with seq_lengths: each sequence's first n steps, then zeros; the carry
    after step n - 1."""
    cell, params = make(factory)
    xs = inputs()
    carry, ys = jax.jit(lj.rnn(cell, **in_parallel(cell)).apply)(params, xs, seq_lengths=LENGTHS)
    for b, n in enumerate(LENGTHS.tolist()):
        h = cell.initial_carry(params, ())
        for t in range(n):
            h, y = cell.step(params, h, xs[b, t])
            assert_close(ys[b, t], y, atol=1e-6)
        assert not jnp.any(ys[b, n:])
        assert_close(carry[b], h, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False], ids=["fused_backward", "autodiff"])
@EACH
def test_check_grads(fused, name, factory, step):
    with jax.enable_x64(True):
        cell = factory(param_dtype=jnp.float64)
        params = make(lambda: cell)[1]
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        layer = lj.rnn(cell, fused_backward=fused, **({} if fused else in_parallel(cell)))
        xs = inputs((2, 4, I)).astype(jnp.float64)
        h0 = random_carry(cell, params, (2,))

        def f(params, xs, carry):
            return layer.apply(params, xs, carry=carry, seq_lengths=jnp.array([4, 2]))

        check_grads(jax.jit(f), (params, xs, h0), order=1,
                    modes=["rev"] if fused else ["fwd", "rev"])


@pytest.mark.parametrize("hoist", [False, True])
@EACH
def test_fused_backward_equals_autodiff(hoist, name, factory, step):
    cell, params = make(factory)
    xs, h0 = inputs(), random_carry(cell, params, (B,))

    def grads(fused, **kwargs):
        layer = lj.rnn(cell, hoist=hoist, fused_backward=fused, **kwargs)
        loss = lambda p, x, c: jnp.sum(jnp.sin(  # noqa: E731
            layer.apply(p, x, carry=c, seq_lengths=LENGTHS, reverse=True)[1]))
        return jax.grad(loss, argnums=(0, 1, 2))(params, xs, h0)

    assert_trees_close(grads(True), grads(False), atol=1e-5)


@EACH
def test_return_gates_match_reference(name, factory, step):
    cell, params = make(factory)
    xs = inputs()
    _, ys, gates = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, reverse=True,
                                      return_gates=True)
    _, _, want = run_reference(step, params, xs, lengths=LENGTHS, reverse=True)
    assert set(gates._fields) == set(want)
    for field in gates._fields:
        assert_close(getattr(gates, field), want[field])
    assert_close(gates.h, ys)


@EACH
def test_bfloat16_params_and_mixed_policy_run_close_to_float32(name, factory, step):
    low_cell = factory(param_dtype=jnp.bfloat16)
    low_params = low_cell.init(jax.random.key(0), I)
    assert {a.dtype for a in jax.tree.leaves(low_params)} == {jnp.dtype(jnp.bfloat16)}
    f32_params = jax.tree.map(lambda a: a.astype(jnp.float32), low_params)
    xs = inputs()

    def run(cell, params, xs):
        loss = lambda p: jnp.mean(jnp.square(  # noqa: E731
            lj.rnn(cell, **in_parallel(cell)).apply(p, xs, seq_lengths=LENGTHS)[1].astype(
                jnp.float32)))
        return jax.jit(jax.value_and_grad(loss))(params)

    ref_loss, ref_grads = run(factory(), f32_params, xs)
    for cell, params, x in ((low_cell, low_params, xs.astype(jnp.bfloat16)),
                            (factory(dtype=jnp.bfloat16), f32_params, xs)):
        loss, grads = run(cell, params, x)
        assert bool(jnp.isfinite(loss))
        assert abs(float(loss) - float(ref_loss)) < 0.05 * float(ref_loss)
        for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            g = np.asarray(g, np.float32)
            assert np.all(np.isfinite(g))
            scale = max(float(np.max(np.abs(g_ref))), 1e-6)
            assert float(np.max(np.abs(g - g_ref))) / scale < 0.25


@EACH
def test_sums_projections_is_true_of_combine(name, factory, step):
    cell, params = make(factory)
    h = random_carry(cell, params, (B,))
    G = cell.project_inputs(params, jnp.zeros((B, I))).shape[-1]
    gx, gh = (jax.random.normal(k, (B, G)) for k in jax.random.split(jax.random.key(3)))
    apart = cell.combine(params, h, gx, gh)[0]
    summed = cell.combine(params, h, gx + gh, jnp.zeros_like(gh))[0]
    difference = float(jnp.max(jnp.abs(apart - summed)))
    assert difference < 1e-6 if cell.config.sums_projections else difference > 1e-3
    # MGU with its reset gate reads gh_t apart; minGRU and minLSTM do not read it at all
    assert cell.config.sums_projections == (name in ("mgu_no_reset", "indrnn",
                                                     "indrnn_tanh_bounded", "indrnn_no_bias"))


@pytest.mark.parametrize("kind", ["mgu", "indrnn", "min_gru", "min_lstm"])
def test_torch_has_no_counterpart(kind):
    cell = lj.KINDS[kind].factory(H)
    params = cell.init(jax.random.key(0), I)
    message = (f"torch has no counterpart of a '{kind}' cell; "
               r"supported: \['gru', 'lstm', 'simple'\]")
    for module in (cell, lj.rnn(cell)):
        with pytest.raises(ValueError, match=message):
            lj.interop.to_torch(module, params)


@pytest.mark.parametrize("kind", ["mgu", "indrnn", "min_gru", "min_lstm"])
def test_kind_is_registered_and_trains_from_a_config(kind):
    from lstm_jax.train.config import Config
    from lstm_jax.train.model import build_layer

    assert lj.KINDS[kind].factory is getattr(lj, kind)
    config = dataclasses.replace(Config(), cell=kind, hidden_size=H, num_layers=2)
    layer = build_layer(config)
    assert [c.config.kind for c in layer.cells] == [kind, kind]
    params = layer.init(jax.random.key(0), I)
    assert isinstance(params[0], lj.KINDS[kind].params)
    _, ys = layer.apply(params, inputs())
    assert ys.shape == (B, T, H)


# ---- MGU ----------------------------------------------------------------------------

def test_mgu_init_matches_flax_defaults():
    params = lj.mgu(H).init(jax.random.key(0), I)
    np.testing.assert_array_equal(params.b[:H], 1.0)  # flax's forget_bias_init: ones
    np.testing.assert_array_equal(params.b[H:], 0.0)
    np.testing.assert_array_equal(params.b_hn, 0.0)
    for k in range(2):
        block = params.w_hh[:, k * H : (k + 1) * H]
        assert_close(block.T @ block, np.eye(H), atol=1e-5)
    assert lj.mgu(H, reset_gate=False).init(jax.random.key(0), I).b_hn is None
    assert lj.mgu(H, forget_bias=0.0).init(jax.random.key(0), I).b[0] == 0.0


@pytest.mark.parametrize("reset_gate", [True, False])
def test_mgu_matches_flax_through_from_flax(reset_gate):
    import flax.linen as nn

    flax_cell = nn.MGUCell(H, reset_gate=reset_gate,
                           forget_bias_init=nn.initializers.normal(0.5),
                           activation_bias_init=nn.initializers.normal(0.5))
    x0 = jnp.zeros((B, I))
    variables = flax_cell.init(jax.random.key(1), flax_cell.initialize_carry(
        jax.random.key(0), x0.shape), x0)
    cell, params = lj.interop.from_flax(flax_cell, variables)
    assert cell.config.kind == "mgu" and cell.config.reset_gate == reset_gate
    assert (params.b_hn is not None) == reset_gate
    xs, h0 = inputs(), jax.random.normal(jax.random.key(5), (B, H))
    want_h, want_ys = nn.RNN(flax_cell, return_carry=True).apply(
        {"params": {"cell": variables["params"]}}, xs, initial_carry=h0)
    h, ys = lj.rnn(cell).apply(params, xs, carry=h0)
    assert_close(ys, want_ys, atol=1e-5)
    assert_close(h, want_h, atol=1e-5)
    # and back: to_flax gives the same flax cell and variables
    back_cell, back = lj.interop.to_flax(cell, params)
    assert type(back_cell) is nn.MGUCell and back_cell.reset_gate == reset_gate
    assert jax.tree.structure(back) == jax.tree.structure(
        jax.tree.map(lambda a: a, dict(variables)))
    assert_trees_close(back, dict(variables), atol=0)


def test_mgu_to_flax_rejects_what_flax_cannot_express():
    cell = lj.mgu(H, bias=False)
    with pytest.raises(ValueError, match="flax's MGUCell cannot express an MGU with bias=False"):
        lj.interop.to_flax(cell, cell.init(jax.random.key(0), I))


# ---- IndRNN -------------------------------------------------------------------------

def test_indrnn_bounds_are_applied_in_the_step_and_stop_gradients_beyond_them():
    cell = lj.indrnn(4, activation="identity", bias=False, recurrent_min_abs=0.5,
                     recurrent_max_abs=1.0)
    params = lj.IndRNNParams(w_ih=jnp.zeros((1, 4)), w_hh=jnp.array([3.0, -0.1, 0.0, 0.75]),
                             b=None)
    h = jnp.ones((2, 4))
    new_h, _ = cell.step(params, h, jnp.zeros((2, 1)))
    np.testing.assert_array_equal(new_h, [[1.0, -0.5, 0.5, 0.75]] * 2)  # u as the step uses it
    d_u = jax.grad(lambda p: jnp.sum(cell.step(p, h, jnp.zeros((2, 1)))[1]))(params).w_hh
    np.testing.assert_array_equal(d_u, [0.0, 0.0, 0.0, 2.0])  # only the unit within bounds
    assert lj.indrnn(4, bias=False).step(params, h, jnp.zeros((2, 1)))[0][0, 0] == 3.0  # no bounds


def test_indrnn_max_bound_keeps_a_relu_unit_within_two_over_t_steps():
    """The paper's |u| <= 2^(1/T): a ReLU unit fed once grows at most 2x over T steps."""
    T_long = 500
    cell = lj.indrnn(3, bias=False, recurrent_max_abs=2 ** (1 / T_long))
    params = lj.IndRNNParams(w_ih=jnp.ones((1, 3)), w_hh=jnp.array([5.0, 1.0, 0.5]), b=None)
    xs = jnp.zeros((1, T_long, 1)).at[0, 0, 0].set(1.0)
    _, ys = lj.rnn(cell).apply(params, xs)
    assert_close(ys[0, -1], [2 ** ((T_long - 1) / T_long), 1.0, 0.5 ** (T_long - 1)], rtol=1e-4)


def test_indrnn_init_and_options():
    params = lj.indrnn(64, recurrent_max_abs=0.5).init(jax.random.key(0), I)
    assert params.w_hh.shape == (64,) and params.b.shape == (64,)
    assert 0.4 < float(jnp.max(jnp.abs(params.w_hh))) <= 0.5  # uniform on [-0.5, 0.5]
    assert lj.indrnn(H).config.activation is jax.nn.relu
    assert lj.indrnn(H, activation="tanh").config.activation is jnp.tanh
    with pytest.raises(ValueError, match=r"`recurrent_min_abs` \(0.9\) must not exceed "
                                         r"`recurrent_max_abs` \(0.5\)"):
        lj.indrnn(H, recurrent_min_abs=0.9, recurrent_max_abs=0.5)
    with pytest.raises(ValueError, match="`recurrent_max_abs` must be > 0, got 0"):
        lj.indrnn(H, recurrent_max_abs=0)
    with pytest.raises(ValueError, match="`recurrent_min_abs` must be >= 0, got -1"):
        lj.indrnn(H, recurrent_min_abs=-1)
    with pytest.raises(TypeError, match="`recurrent_max_abs` must be a float or None, got '1'"):
        lj.indrnn(H, recurrent_max_abs="1")


def test_indrnn_with_recurrent_dropout_equals_autodiff_of_masked_steps():
    """recurrent_dropout masks h_{t-1} before u ⊙ h_{t-1}, as it does before h @ w_hh."""
    cell, params = make(lambda: lj.indrnn(H, activation="tanh"))
    xs = inputs()
    key = jax.random.key(0)
    _, ys = lj.rnn(cell, recurrent_dropout=0.5).apply(params, xs, key=key)
    _, ys_plain = lj.rnn(cell).apply(params, xs)
    assert float(jnp.max(jnp.abs(ys - ys_plain))) > 1e-3
    _, ys_again = lj.rnn(cell, recurrent_dropout=0.5).apply(params, xs, key=key)
    np.testing.assert_array_equal(ys, ys_again)


# ---- minGRU, minLSTM: parallel in time ----------------------------------------------

MIN_CELLS = pytest.mark.parametrize("factory", [lj.min_gru, lj.min_lstm],
                                    ids=["min_gru", "min_lstm"])


def _loops(jaxpr):
    """The names of the loop primitives in ``jaxpr`` and the jaxprs nested in it."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("scan", "while"):
            yield eqn.primitive.name
        for value in eqn.params.values():
            inner = getattr(value, "jaxpr", value)
            if hasattr(inner, "eqns"):
                yield from _loops(inner)


@pytest.mark.parametrize("reverse", [False, True])
@MIN_CELLS
def test_parallel_scan_equals_stepping(reverse, factory):
    cell, params = make(lambda: factory(H))
    xs, h0 = inputs((B, 40, I)), random_carry(cell, params, (B,))
    lengths = jnp.array([40, 17, 0])
    parallel, sequential = lj.rnn(cell, parallel=True), lj.rnn(cell, parallel=False)
    for kwargs in (dict(), dict(seq_lengths=lengths, carry=h0)):
        a = jax.jit(partial(parallel.apply, reverse=reverse, **kwargs))(params, xs)
        b = jax.jit(partial(sequential.apply, reverse=reverse, **kwargs))(params, xs)
        assert_trees_close(a, b, atol=1e-5, rtol=1e-5)
    # the parallel layer has no time loop at all; the sequential one has one
    loops = lambda layer: list(_loops(jax.make_jaxpr(  # noqa: E731
        lambda p, x: layer.apply(p, x, seq_lengths=lengths))(params, xs).jaxpr))
    assert loops(parallel) == [] and loops(sequential) != []


@MIN_CELLS
def test_parallel_scan_gradients_equal_stepping(factory):
    cell, params = make(lambda: factory(H))
    xs, h0 = inputs((B, 30, I)), random_carry(cell, params, (B,))
    lengths = jnp.array([30, 11, 0])

    def grads(layer, reverse):
        loss = lambda p, x, c: jnp.sum(jnp.sin(3.0 * layer.apply(  # noqa: E731
            p, x, carry=c, seq_lengths=lengths, reverse=reverse)[1])) + jnp.sum(
            layer.apply(p, x, carry=c, seq_lengths=lengths, reverse=reverse)[0] ** 2)
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, xs, h0)

    for reverse in (False, True):
        assert_trees_close(grads(lj.rnn(cell, parallel=True), reverse),
                           grads(lj.rnn(cell, parallel=False), reverse), atol=1e-5, rtol=1e-4)


@MIN_CELLS
def test_parallel_scan_is_exact_on_long_sequences_and_keeps_the_layouts(factory):
    cell, params = make(lambda: factory(H))
    xs = inputs((2, 1000, I))
    run = lambda layer, x: jax.jit(layer.apply)(params, x)  # noqa: E731  (one compile, not
    #   one per operation of the scan's 2·log2(T) levels)
    carry, ys = run(lj.rnn(cell, parallel=True), xs)
    carry_s, ys_s = run(lj.rnn(cell, parallel=False), xs)
    assert_close(ys, ys_s, atol=1e-5, rtol=1e-5)
    assert_close(carry, carry_s, atol=1e-5, rtol=1e-5)
    tm_carry, tm_ys = run(lj.rnn(cell, time_major=True, parallel=True), jnp.swapaxes(xs, 0, 1))
    assert_close(jnp.swapaxes(tm_ys, 0, 1), ys, atol=1e-6)
    one_carry, one_ys = run(lj.rnn(cell, parallel=True), xs[1])  # unbatched (T, I)
    assert_close(one_ys, ys[1], atol=1e-6)
    empty_carry, empty_ys = lj.rnn(cell, parallel=True).apply(params, xs[:, :0])
    assert empty_ys.shape == (2, 0, H) and not jnp.any(empty_carry)


@MIN_CELLS
def test_min_cells_reject_options_they_cannot_use(factory):
    name = factory.__name__
    with pytest.raises(ValueError, match=f"{name} has no recurrent weights"):
        factory(H, recurrent_init=lj.initializers.identity())
    with pytest.raises(ValueError, match="`activation` does not apply"):
        factory(H, activation="relu")


def test_parallel_scan_is_chosen_per_backend():
    """parallel=None: the associative scan off on CPU, where stepping measured faster."""
    cell, params = make(lambda: lj.min_gru(H))
    xs = inputs()
    loops = lambda layer: list(_loops(jax.make_jaxpr(  # noqa: E731
        lambda p, x: layer.apply(p, x))(params, xs).jaxpr))
    assert (loops(lj.rnn(cell)) == []) == (jax.default_backend() != "cpu")

"""sLSTM (Beck et al., 2024): a NumPy float64 reference of the published equations, the
runner against stepping by hand, gradients, padding, bf16, gates, heads, T = 10,000."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from tests import reference
from tests.helpers import B, H, I, T, assert_close, assert_trees_close, inputs, make

LENGTHS = jnp.array([7, 3, 0])  # full, partial and empty sequences


# ---- NumPy float64 reference, written from the paper's equations --------------------

def dense_recurrent(w_hh):
    """The block-diagonal (H, 4H) matrix of per-head blocks w_hh (K, D, 4D): head k of
    h_{t-1} feeds gate j of head k only, gate j's columns in block j of H."""
    K, D, _ = w_hh.shape
    R = np.zeros((K * D, 4 * K * D))
    for k in range(K):
        for j in range(4):
            R[k * D : (k + 1) * D, j * K * D + k * D : j * K * D + (k + 1) * D] = (
                w_hh[k][:, j * D : (j + 1) * D])
    return R


def pre_activations(p, h, x):
    z = x @ p.w_ih + h @ dense_recurrent(p.w_hh) + (0.0 if p.b is None else p.b)
    return np.split(z, 4, axis=-1)  # (i, f, z, o)


def log_forget(z_f, forget_gate):
    return z_f if forget_gate == "exp" else -np.logaddexp(0.0, -z_f)  # log σ


def slstm_step(p, state, x, *, forget_gate="sigmoid"):
    """The stabilised step: state (h, c, n, m), each (B, H) -> (state, gates dict).

    A unit with n_{t-1} = 0 has no past: m_t = log i_t and f'_t = 0 (NX-AI's kernels).
    """
    h, c, n, m = state
    z_i, z_f, z_z, z_o = pre_activations(p, h, x)
    log_i, log_f = z_i, log_forget(z_f, forget_gate)
    fresh = n == 0
    m_new = np.where(fresh, log_i, np.maximum(log_f + m, log_i))
    i = np.exp(log_i - m_new)
    f = np.where(fresh, 0.0, np.exp(np.where(fresh, 0.0, log_f + m - m_new)))
    g, o = np.tanh(z_z), reference.sigmoid(z_o)
    c_new, n_new = f * c + i * g, f * n + i
    h_new = o * c_new / n_new
    gates = dict(f=f, i=i, g=g, o=o, c=c_new, n=n_new, m=m_new, h=h_new)
    return (h_new, c_new, n_new, m_new), gates


def unstabilised_h(p, xs, *, forget_gate="sigmoid"):
    """h over xs (B, T, I) from zero states with the raw gates i = exp(ĩ), f = σ(f̃) or
    exp(f̃): the paper's equations before stabilisation (for moderate inputs)."""
    h = c = n = np.zeros((xs.shape[0], p.w_hh.shape[0] * p.w_hh.shape[1]))
    ys = []
    for t in range(xs.shape[1]):
        z_i, z_f, z_z, z_o = pre_activations(p, h, xs[:, t])
        i, f = np.exp(z_i), np.exp(log_forget(z_f, forget_gate))
        c, n = f * c + i * np.tanh(z_z), f * n + i
        h = reference.sigmoid(z_o) * c / n
        ys.append(h)
    return np.stack(ys, axis=1)


def run_reference(p, xs, *, lengths=None, carry=None, reverse=False, forget_gate="sigmoid"):
    """``slstm_step`` over each sequence of xs (B, T, I) cut to its length:
    (final state tuple, ys (B, T, H), gates dict of (B, T, H))."""
    p = reference.to64(p)
    xs = np.asarray(xs, np.float64)
    lengths = np.full(xs.shape[0], xs.shape[1]) if lengths is None else np.asarray(lengths)
    zeros = np.zeros((4, xs.shape[0], H))
    state0 = zeros if carry is None else np.stack([np.asarray(a, np.float64) for a in carry])
    finals, ys, gates = state0.copy(), np.zeros((*xs.shape[:2], H)), {}
    for b, length in enumerate(lengths):
        state = tuple(s[b : b + 1] for s in state0)
        for t in (range(length - 1, -1, -1) if reverse else range(length)):
            state, step_gates = slstm_step(p, state, xs[b : b + 1, t], forget_gate=forget_gate)
            ys[b, t] = state[0][0]
            for name, value in step_gates.items():
                gates.setdefault(name, np.zeros((*xs.shape[:2], H)))[b, t] = value[0]
        finals[:, b] = np.stack(state)[:, 0]
    return tuple(finals), ys, gates


def valid_carry(batch_shape, seed=7, dtype=jnp.float32):
    """A carry the cell can reach: h, c, m anything, n >= 1; units of the first row
    not yet written (n = c = 0)."""
    h, c, n, m = (jax.random.normal(k, (*batch_shape, H), dtype)
                  for k in jax.random.split(jax.random.key(seed), 4))
    fresh = jnp.zeros((*batch_shape, H), bool).at[..., :1, : H // 2].set(True)
    n = jnp.where(fresh, 0.0, 1.0 + jnp.abs(n)).astype(dtype)
    return lj.SLSTMState(h, jnp.where(fresh, 0.0, c).astype(dtype), n, m)


# (name, factory, forget gate)
CASES = [
    ("one_head", lambda **kw: lj.slstm(H, **kw), "sigmoid"),
    ("two_heads_no_bias", lambda **kw: lj.slstm(H, num_heads=2, bias=False, **kw), "sigmoid"),
    ("three_heads_exp", lambda **kw: lj.slstm(H, num_heads=3, forget_gate="exp", **kw), "exp"),
]
EACH = pytest.mark.parametrize("name, factory, forget_gate", CASES, ids=[c[0] for c in CASES])


def test_reference_stabiliser_leaves_h_unchanged():
    """The reference's stabilised h equals the paper's unstabilised equations."""
    _, params = make(lambda: lj.slstm(H, num_heads=2))
    xs = np.asarray(inputs(), np.float64)
    for forget_gate in ("sigmoid", "exp"):
        _, ys, gates = run_reference(params, xs, forget_gate=forget_gate)
        assert_close(ys, unstabilised_h(reference.to64(params), xs, forget_gate=forget_gate),
                     atol=1e-12, rtol=1e-10)
        assert np.all(gates["n"] >= 1.0) and np.all(gates["i"] <= 1.0) and np.all(gates["f"] <= 1.0)


@EACH
def test_step_matches_numpy_reference(name, factory, forget_gate):
    cell, params = make(factory)
    carry = valid_carry((B,))
    x = jax.random.normal(jax.random.key(3), (B, I))
    new, y = jax.jit(cell.step)(params, carry, x)
    want, _ = slstm_step(reference.to64(params), tuple(np.asarray(a, np.float64) for a in carry),
                         np.asarray(x, np.float64), forget_gate=forget_gate)
    assert isinstance(new, lj.SLSTMState)
    assert_trees_close(tuple(new), want)
    assert_close(y, want[0])


@pytest.mark.parametrize("reverse", [False, True])
@EACH
def test_layer_and_its_gates_match_numpy_reference(reverse, name, factory, forget_gate):
    cell, params = make(factory)
    xs, carry0 = inputs(), valid_carry((B,))
    carry, ys, gates = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, carry=carry0,
                                          reverse=reverse, return_gates=True)
    want_carry, want_ys, want_gates = run_reference(
        params, xs, lengths=LENGTHS, carry=carry0, reverse=reverse, forget_gate=forget_gate)
    assert_close(ys, want_ys)
    assert_trees_close(tuple(carry), want_carry)
    assert isinstance(gates, lj.SLSTMGates) and set(gates._fields) == set(want_gates)
    for field in gates._fields:
        assert_close(getattr(gates, field), want_gates[field])


@EACH
def test_layer_equals_stepping_the_cell_by_hand(name, factory, forget_gate):
    cell, params = make(factory)
    xs = inputs()
    carry, ys = jax.jit(lj.rnn(cell).apply)(params, xs, seq_lengths=LENGTHS)
    step = jax.jit(cell.step)
    for b, length in enumerate(LENGTHS.tolist()):
        state = cell.initial_carry(params, ())
        for t in range(length):
            state, y = step(params, state, xs[b, t])
            assert_close(ys[b, t], y, atol=1e-6)
        assert not jnp.any(ys[b, length:])
        assert_trees_close(jax.tree.map(lambda a: a[b], carry), state, atol=1e-6)


def test_check_grads():
    """Two heads with the sigmoid forget gate from a given carry (n > 0), three heads
    with the exponential one from the zero carry (m_t = log i_t at the first step)."""
    cells, params = zip(*(make(factory) for _, factory, _ in CASES[1:]))  # float32 inits
    carry0 = valid_carry((2,))
    carry0 = carry0._replace(n=1.0 + jnp.abs(carry0.m))  # n > 0: a smooth point
    args = (params, inputs((2, 3, I)), carry0)
    with jax.enable_x64(True):
        params, xs, carry0 = jax.tree.map(lambda a: np.asarray(a, np.float64), args)
        lengths = jnp.array([3, 1])
        sigmoid_layer, exp_layer = (lj.rnn(c) for c in cells)

        @jax.jit
        def f(params, xs, carry0):
            return (sigmoid_layer.apply(params[0], xs, seq_lengths=lengths, carry=carry0),
                    exp_layer.apply(params[1], xs, seq_lengths=lengths))

        check_grads(jax.jit(f), (params, xs, carry0), order=1, modes=["rev"])  # the fused pass

        @jax.jit
        def plain(params, xs, carry0):  # plain autodiff, which forward mode can trace
            return lj.rnn(cells[0], fused_backward=False).apply(params[0], xs, carry=carry0)

        check_grads(plain, (params, xs, carry0), order=1, modes=["fwd", "rev"])


def test_padding_never_changes_valid_outputs():
    cell, params = make(lambda: lj.slstm(H, num_heads=2))
    xs = inputs()
    valid = (jnp.arange(T)[None, :] < LENGTHS[:, None])[..., None]
    junk = jnp.where(valid, xs, 1e4 * inputs(seed=9))
    apply = jax.jit(lj.rnn(cell).apply, static_argnames=("reverse", "return_gates"))
    for reverse in (False, True):
        a = apply(params, xs, seq_lengths=LENGTHS, reverse=reverse, return_gates=True)
        b = apply(params, junk, seq_lengths=LENGTHS, reverse=reverse, return_gates=True)
        assert_trees_close(a, b, atol=0, rtol=0)
        assert not jnp.any(jnp.where(valid, 0.0, a[1]))
        assert all(not jnp.any(jnp.where(valid, 0.0, g)) for g in a[2])
    # the empty sequence keeps the initial carry
    assert not any(jnp.any(leaf[2]) for leaf in a[0])


def test_heads_are_a_block_diagonal_recurrence():
    """K heads equal one head whose (H, 4H) recurrent matrix holds the K blocks on its
    diagonal and zeros elsewhere; a full matrix there gives other outputs."""
    cell, params = make(lambda: lj.slstm(H, num_heads=3))
    assert params.w_hh.shape == (3, H // 3, 4 * H // 3)
    heads, one_head = (jax.jit(lj.rnn(c).apply) for c in (cell, lj.slstm(H)))
    dense = jnp.asarray(dense_recurrent(np.asarray(params.w_hh)), jnp.float32)[None]
    xs = inputs()
    want = heads(params, xs)
    assert_trees_close(one_head(params._replace(w_hh=dense), xs), want, atol=1e-6)
    full = params._replace(w_hh=dense + 0.3 * jax.random.normal(jax.random.key(4), dense.shape))
    assert float(jnp.max(jnp.abs(one_head(full, xs)[1] - want[1]))) > 1e-2
    # recurrent dropout multiplies h_{t-1} before the per-head matmul
    carry, mask = valid_carry((B,)), jax.random.bernoulli(jax.random.key(5), 0.5, (B, H)) * 2.0
    assert_close(cell.project_hidden(params, carry, mask),
                 cell.project_hidden(params, carry._replace(h=carry.h * mask)), atol=0)


def test_bfloat16_params_and_mixed_policy_run_close_to_float32():
    factory = lambda **kw: lj.slstm(H, num_heads=2, **kw)  # noqa: E731
    low_cell = factory(param_dtype=jnp.bfloat16)
    low_params = low_cell.init(jax.random.key(0), I)
    assert {a.dtype for a in jax.tree.leaves(low_params)} == {jnp.dtype(jnp.bfloat16)}
    f32_params = jax.tree.map(lambda a: a.astype(jnp.float32), low_params)
    xs = inputs((B, 16, I))
    lengths = jnp.array([16, 9, 0])

    def run(cell, params, xs):
        def loss(p):
            carry, ys = lj.rnn(cell).apply(p, xs, seq_lengths=lengths)
            assert ys.dtype == jnp.dtype(cell.config.dtype or cell.config.param_dtype)
            return jnp.mean(jnp.square(ys.astype(jnp.float32))), carry
        (value, carry), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        assert carry.m.dtype == params.w_hh.dtype
        return value, grads

    ref_loss = np.mean(np.square(run_reference(f32_params, xs, lengths=lengths)[1]))
    for cell, params, x in ((low_cell, low_params, xs.astype(jnp.bfloat16)),
                            (factory(dtype=jnp.bfloat16), f32_params, xs)):
        loss, grads = run(cell, params, x)
        assert abs(float(loss) - float(ref_loss)) < 0.05 * float(ref_loss)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
        assert all(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("forget_gate, forget_bias", [("sigmoid", "powerlaw"), ("exp", 1.0)])
def test_finite_at_ten_thousand_steps_with_remat(forget_gate, forget_bias):
    """The stabiliser keeps 10,000 steps finite forward and backward, also where the
    exponential forget gate (f = e^1) makes the unstabilised c and n overflow: m grows
    by about 1 a step."""
    cell = lj.slstm(4, num_heads=2, forget_gate=forget_gate, forget_bias=forget_bias)
    params = cell.init(jax.random.key(0), 2)
    xs = 3.0 * jax.random.normal(jax.random.key(1), (1, 10_000, 2))
    layer = lj.rnn(cell, remat=True)

    def loss(params, xs):
        carry, ys = layer.apply(params, xs)
        return jnp.sum(ys**2) + jnp.sum(carry.h), carry

    (value, carry), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
        params, xs)
    assert bool(jnp.isfinite(value))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves((carry, grads)))
    assert float(jnp.max(jnp.abs(grads[0].w_hh))) > 0
    if forget_gate == "exp":
        assert float(jnp.min(carry.m)) > 1000  # exp(m) would overflow float32 long before


def test_init_follows_the_official_defaults():
    params = lj.slstm(8, num_heads=2).init(jax.random.key(0), I)
    head = 5.0 - 12.0 * (np.arange(4) / 3) ** 0.3  # NX-AI's powerlaw forget bias per head
    assert_close(params.b[8:16], np.tile(head, 2), atol=1e-6)
    np.testing.assert_array_equal(np.delete(np.asarray(params.b), np.s_[8:16]), 0.0)
    for k in range(2):  # orthogonal blocks per head and gate
        for j in range(4):
            block = params.w_hh[k, :, j * 4 : (j + 1) * 4]
            assert_close(block.T @ block, np.eye(4), atol=1e-5)
    shifted = lj.slstm(8, forget_bias=2.0).init(jax.random.key(0), I)
    np.testing.assert_array_equal(shifted.b[8:16], 2.0)
    zero = lj.slstm(8, recurrent_init=lj.initializers.zeros()).init(jax.random.key(0), I)
    assert not jnp.any(zero.w_hh)
    np.testing.assert_array_equal(lj.slstm(2, num_heads=2).init(jax.random.key(0), 1).b[2:4],
                                  5.0)  # one unit per head
    carry = lj.slstm(8, num_heads=2).initial_carry(params, (3,))
    assert isinstance(carry, lj.SLSTMState)
    assert all(a.shape == (3, 8) and not jnp.any(a) for a in carry)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`hidden_size` \(6\) must be divisible by "
                                         r"`num_heads` \(4\)"):
        lj.slstm(6, num_heads=4)
    with pytest.raises(ValueError, match="`num_heads` must be a positive int, got 0"):
        lj.slstm(6, num_heads=0)
    with pytest.raises(ValueError, match=r"`forget_gate` must be one of \['exp', 'sigmoid'\], "
                                         "got 'tanh'"):
        lj.slstm(6, forget_gate="tanh")
    with pytest.raises(ValueError, match=r"`forget_bias` must be one of \['powerlaw'\], "
                                         "got 'chrono'"):
        lj.slstm(6, forget_bias="chrono")
    with pytest.raises(TypeError, match="`forget_bias` must be a float or 'powerlaw', got True"):
        lj.slstm(6, forget_bias=True)
    with pytest.raises(TypeError,
                       match=r"slstm\(\) got an unexpected keyword argument 'proj_size'"):
        lj.slstm(6, proj_size=2)
    cell, params = make(lambda: lj.slstm(H, num_heads=3))
    x = jnp.zeros((B, I))
    with pytest.raises(TypeError, match="`params` must be SLSTMParams for a slstm cell, "
                                        "got LSTMParams"):
        cell.step(lj.lstm(H).init(jax.random.key(0), I), cell.initial_carry(params, (B,)), x)
    with pytest.raises(TypeError, match="`carry` must have the structure"):
        cell.step(params, lj.LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H))), x)
    other = lj.slstm(H, num_heads=2).init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=r"^params.w_hh is \(2, 3, 12\) where this model has "
                                         r"\(3, 2, 8\)$"):  # 2 heads of 3 units, not 3 of 2
        cell.step(other, cell.initial_carry(params, (B,)), x)


def test_kind_is_registered_and_trains_from_a_config():
    from lstm_jax.train.config import Config
    from lstm_jax.train.model import build_layer

    assert lj.KINDS["slstm"].factory is lj.slstm
    config = dataclasses.replace(Config(), cell="slstm", hidden_size=H, num_layers=2,
                                 cell_options={"num_heads": 3})
    layer = build_layer(config)
    assert [c.config.num_heads for c in layer.cells] == [3, 3]
    params = layer.init(jax.random.key(0), I)
    assert isinstance(params[0], lj.SLSTMParams)
    _, ys = jax.eval_shape(layer.apply, params, inputs())
    assert ys.shape == (B, T, H)
    cell = lj.slstm(H)
    with pytest.raises(ValueError, match="torch has no counterpart of a 'slstm' cell"):
        lj.interop.to_torch(cell, cell.init(jax.random.key(0), I))

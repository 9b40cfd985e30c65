"""``resets=`` and ``return_all_states=`` on apply: segments run separately, every step's
carry, through reverse, padding, bidirectional layers, stacks, the fused backward pass
and the parallel scan."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax.layers import join, split
from tests.helpers import B, I, T, H, assert_close, assert_trees_close, inputs

LENGTHS = jnp.array([7, 5, 0])
# row 0: two resets; row 1: a reset at t = 0 (no-op), one inside, one at padding (ignored);
# row 2: empty, a reset anyway
RESETS = np.zeros((B, T), bool)
RESETS[0, [2, 3]] = True
RESETS[1, [0, 3, 6]] = True
RESETS[2, 1] = True
RESETS = jnp.asarray(RESETS)


def take(tree, b):
    return jax.tree.map(lambda a: a[b], tree)


def run_segments(layer, params, xs, resets, lengths, carry0):
    """The reference: each sequence cut at its resets, and the segments run as separate
    sequences of one padded batch, each from its row's carry0; ys back in place (zero at
    padding). Returns ``(carry, ys)``; a forward direction's carry is its row's last
    segment's, a backward direction's its first segment's (the one it runs last)."""
    rows, starts, ends = [], [], []
    for b, n in enumerate(np.asarray(lengths).tolist()):
        cuts = [0] + [t for t in range(1, n) if resets[b, t]] + [n]
        rows += [b] * (len(cuts) - 1)
        starts, ends = starts + cuts[:-1], ends + cuts[1:]
    xs = np.asarray(xs)  # cut and pasted in NumPy, not by one small XLA program a slice
    seg_xs = np.stack([np.roll(xs[b], -s, axis=0) for b, s in zip(rows, starts)])
    carry, seg_ys = layer.apply(params, seg_xs, seq_lengths=np.array(ends) - np.array(starts),
                                carry=take(carry0, np.array(rows)))
    ys, seg_ys = np.zeros(xs.shape[:2] + (layer.output_size,), np.float32), np.asarray(seg_ys)
    for k, (b, s, e) in enumerate(zip(rows, starts, ends)):
        ys[b, s:e] = seg_ys[k, : e - s]
    rows = np.array(rows)
    segments = [np.flatnonzero(rows == b) for b in range(len(lengths))]  # each row's, in order
    first, last = (take(carry, np.array([k[i] for k in segments])) for i in (0, -1))
    directions = [(f[0], b[1]) if len(f) == 2 else f
                  for f, b in zip(split(layer, last), split(layer, first))]
    return join(layer, directions), ys


@pytest.mark.parametrize("make", [
    lambda: lj.bidirectional(lj.lstm(H, proj_size=4)),
    lambda: lj.rnn(lj.lstm(H), zoneout=0.2),  # zoneout's old carry: carry0 at a reset
    lambda: lj.stack([lj.gru(H), lj.bidirectional(lj.lstm(4))]),
], ids=["lstm_proj", "zoneout", "stack"])
def test_resets_equal_running_the_segments_separately(make):
    """Forward and backward directions (reverse=True), padding, a given carry."""
    layer = make()
    params = layer.init(jax.random.key(0), I)
    xs, carry0 = inputs(), random_carry_of(layer, params)
    want = run_segments(layer, params, xs, RESETS, LENGTHS, carry0)
    got = layer.apply(params, xs, seq_lengths=LENGTHS, carry=carry0, resets=RESETS)
    assert_trees_close(got, want, atol=1e-6)


def random_carry_of(layer, params, batch_shape=(B,), seed=7):
    """A carry of ``layer`` with every entry drawn from N(0, 1), negative ones too."""
    zeros = layer.initial_carry(params, batch_shape)
    keys = jax.random.split(jax.random.key(seed), len(jax.tree.leaves(zeros)))
    leaves = [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, jax.tree.leaves(zeros))]
    return jax.tree.unflatten(jax.tree.structure(zeros), leaves)


def test_resets_return_to_the_learned_initial_carry():
    layer = lj.rnn(lj.lstm(H), learn_initial_carry=True)
    params = layer.init(jax.random.key(0), I)
    params = params._replace(initial_carry=jax.tree.map(lambda a: a + 0.5, params.initial_carry))
    carry0 = layer.initial_carry(params, (B,))  # the learned one, broadcast
    want = run_segments(layer, params, inputs(), RESETS, LENGTHS, carry0)
    got = layer.apply(params, inputs(), seq_lengths=LENGTHS, resets=RESETS)
    assert_trees_close(got, want, atol=1e-6)


def test_a_reset_at_the_first_step_or_at_padding_does_nothing():
    layer = lj.rnn(lj.lstm(H))
    params = layer.init(jax.random.key(0), I)
    xs, carry0 = inputs(), random_carry_of(layer, params)
    first_and_padding = jnp.zeros((B, T), bool).at[:, 0].set(True).at[1, 5:].set(True)
    kwargs = dict(seq_lengths=LENGTHS, carry=carry0)
    assert_trees_close(layer.apply(params, xs, resets=first_and_padding, **kwargs),
                       layer.apply(params, xs, **kwargs), atol=0)


def test_runner_options_keep_the_segments():
    """How the loop runs changes nothing; time-major takes resets as (T, B) like xs."""
    plain = lj.rnn(lj.lstm(H), fused_backward=False)
    other = lj.rnn(lj.lstm(H), time_major=True, remat=3, unroll=2, hoist=True)
    params = plain.init(jax.random.key(0), I)
    xs = inputs()
    kwargs = dict(seq_lengths=LENGTHS, reverse=True, return_gates=True, return_all_states=True)
    carry, *per_step = plain.apply(params, xs, resets=RESETS, **kwargs)
    got = other.apply(params, xs.swapaxes(0, 1), resets=RESETS.T, **kwargs)
    # ys, gates and states (T, B, ...) when time-major
    assert_trees_close(got, (carry, *jax.tree.map(lambda a: a.swapaxes(0, 1), per_step)),
                       atol=1e-6)


def test_fused_backward_equals_autodiff_with_resets():
    fused, plain = lj.rnn(lj.lstm(H)), lj.rnn(lj.lstm(H), fused_backward=False)
    params = fused.init(jax.random.key(0), I)

    def loss(layer):
        def f(params, carry0, xs):
            carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS, carry=carry0, resets=RESETS)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(jnp.cos(c)) for c in jax.tree.leaves(carry))
        return f

    args = (params, random_carry_of(fused, params), inputs())
    grads = [jax.grad(loss(layer), argnums=(0, 1, 2))(*args) for layer in (fused, plain)]
    assert_trees_close(*grads, atol=1e-5)
    assert float(jnp.abs(grads[0][1].c[0]).sum()) > 0  # carry0 gets the segments' gradients


def test_check_grads_of_the_fused_backward_pass_with_resets():
    layer = lj.rnn(lj.lstm(2))
    params = layer.init(jax.random.key(0), 2)
    lengths, resets = jnp.array([4, 3]), jnp.array([[0, 1, 0, 1], [0, 0, 1, 1]], bool)

    @jax.jit
    def f(params, carry0, xs):
        carry, ys = layer.apply(params, xs, seq_lengths=lengths, carry=carry0, resets=resets)
        return ys, carry

    carry0 = random_carry_of(layer, params, (2,))
    xs = jax.random.normal(jax.random.key(1), (2, 4, 2))
    check_grads(jax.jit(f), (params, carry0, xs), order=1, modes=["rev"], atol=5e-3, rtol=5e-3)


@pytest.mark.slow  # a fast sibling covers its path
def test_parallel_scan_equals_stepping_with_resets():
    """min_gru's segmented associative scan: outputs and all states, from a carry0 with
    negative entries. (Reversal happens before the loop, the same for both.)"""
    parallel, stepping = (lj.rnn(lj.min_gru(H), parallel=p) for p in (True, False))
    params = parallel.init(jax.random.key(0), I)
    carry0 = random_carry_of(parallel, params)

    def run(layer, params, carry0):
        return layer.apply(params, inputs(), seq_lengths=LENGTHS, carry=carry0, resets=RESETS,
                           return_all_states=True)

    assert_trees_close(run(parallel, params, carry0), run(stepping, params, carry0), atol=1e-5)
    for layer in (parallel, stepping):  # T = 0: the initial carry alone
        _, _, states = layer.apply(params, inputs()[:, :0], carry=carry0,
                                   return_all_states="with_initial")
        assert_close(states, carry0[:, None], atol=0)


def step_by_hand(cell, params, xs, carry0, resets):
    """Every step's carry of ``cell.step`` over xs (B, T, I), back to carry0 at resets."""
    carry, states = carry0, []
    for t in range(xs.shape[1]):
        carry = jax.tree.map(lambda c0, c: jnp.where(resets[:, t, None], c0, c), carry0, carry)
        carry, _ = cell.step(params, carry, xs[:, t])
        states.append(carry)
    return jax.tree.map(lambda *a: jnp.stack(a, axis=1), *states)  # (B, T, ...)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_all_states_equal_stepping_the_cell_by_hand(reverse):
    layer = lj.rnn(lj.lstm(H))
    params = layer.init(jax.random.key(0), I)
    xs, carry0 = inputs(), random_carry_of(layer, params)
    carry, ys, states = layer.apply(params, xs, carry=carry0, resets=RESETS, reverse=reverse,
                                    return_all_states=True)
    if reverse:  # the reversed loop reads step t - 1 first where a reset is at t
        ends = jnp.concatenate([RESETS[:, 1:], jnp.zeros((B, 1), bool)], axis=1)
        want = jax.tree.map(lambda a: a[:, ::-1],
                            step_by_hand(layer.cell, params, xs[:, ::-1], carry0, ends[:, ::-1]))
        assert_trees_close(take(states, (slice(None), 0)), carry, atol=1e-6)
    else:
        want = step_by_hand(layer.cell, params, xs, carry0, RESETS)
        assert_trees_close(take(states, (slice(None), -1)), carry, atol=1e-6)
    assert_trees_close(states, want, atol=1e-6)
    assert_close(states.h, ys, atol=1e-6)


def test_all_states_hold_the_carry_at_padding_and_may_start_with_the_initial_one():
    layer = lj.rnn(lj.gru(H))
    params = layer.init(jax.random.key(0), I)
    xs, carry0 = inputs(), random_carry_of(layer, params)
    carry, ys, gates, states = layer.apply(params, xs, seq_lengths=LENGTHS, carry=carry0,
                                           return_gates=True, return_all_states="with_initial")
    assert states.shape == (B, T + 1, H) and gates.z.shape == (B, T, H)  # gates, then states
    assert_close(states[:, 0], carry0, atol=0)
    _, ys_plain, states_plain = layer.apply(params, xs, seq_lengths=LENGTHS, carry=carry0,
                                            return_all_states=True)
    assert_close(states[:, 1:], states_plain, atol=0)
    for b, n in enumerate(LENGTHS.tolist()):
        assert_close(states_plain[b, :n], ys_plain[b, :n], atol=0)
        assert_close(states_plain[b, n:], jnp.broadcast_to(carry[b], (T - n, H)), atol=0)


def test_all_states_of_bidirectional_and_stacked_layers_have_their_carry_structure():
    model = lj.stack([lj.bidirectional(lj.lstm(H)), lj.gru(4)])
    params = model.init(jax.random.key(0), I)
    carry, _, states = model.apply(params, inputs(), seq_lengths=LENGTHS, resets=RESETS,
                                   return_all_states=True)
    assert jax.tree.structure(states) == jax.tree.structure(carry)
    assert jax.tree.map(jnp.shape, states) == jax.tree.map(lambda a: (B, T, a.shape[-1]), carry)
    # the returned carry is the state at the step each direction runs last (t = T - 1 is
    # a row's last valid step or padding, where the carry is held; backward: t = 0)
    last = (take(states[0].forward, (slice(None), -1)), take(states[0].backward, (slice(None), 0)))
    assert_trees_close(last, tuple(carry[0]), atol=0)
    assert_trees_close(take(states[1], (slice(None), -1)), carry[1], atol=0)


@pytest.mark.parametrize("make", [lambda: lj.rnn(lj.lstm(H)), lambda: lj.bidirectional(lj.gru(H)),
                                  lambda: lj.stack([lj.gru(H), lj.gru(H)])],
                         ids=["rnn", "bidirectional", "stack"])
def test_bad_resets_and_return_all_states_are_exact_errors(make):
    layer = make()
    params = layer.init(jax.random.key(0), I)
    xs = inputs()
    with pytest.raises(TypeError, match=re.escape("`resets` must have a boolean dtype, got int32")):
        layer.apply(params, xs, resets=jnp.zeros((B, T), jnp.int32))
    with pytest.raises(ValueError, match=re.escape(
            "`resets` must have shape (*batch, T) = (3, 7) to match `xs`, got shape (7, 3)")):
        layer.apply(params, xs, resets=jnp.zeros((T, B), bool))
    with pytest.raises(ValueError, match=re.escape(
            "`return_all_states` must be False, True or 'with_initial', got 'initial'")):
        layer.apply(params, xs, return_all_states="initial")


def test_time_major_resets_are_time_major_and_cudnn_refuses_them():
    layer = lj.rnn(lj.lstm(H), time_major=True)
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=re.escape(
            "`resets` must have shape (T, *batch) = (7, 3) to match `xs`, got shape (3, 7)")):
        layer.apply(params, inputs().swapaxes(0, 1), resets=RESETS)
    cudnn = lj.rnn(lj.lstm(H), backend="cudnn")
    with pytest.raises(ValueError, match="`resets` and `return_all_states` need the XLA loop"):
        cudnn.apply(params, inputs(), resets=RESETS)

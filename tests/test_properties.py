"""Hypothesis properties of padded batches, reversal and bidirectional layers.

Reversal within a length is computed here with NumPy slicing, independently of
``lstm_jax.runner.reverse_in_time``.
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import lstm_jax as lj
from lstm_jax.runner import reverse_in_time
from tests.helpers import B, H, I, T, assert_close, assert_trees_close

lengths_strategy = st.lists(st.integers(0, T), min_size=B, max_size=B).map(np.array)
seeds = st.integers(0, 2**31 - 1)

MODEL = lj.stack([lj.bidirectional(lj.lstm(H, proj_size=4, peephole=True)), lj.rnn(lj.gru(5))])
MODEL_PARAMS = MODEL.init(jax.random.key(0), I)
apply_model = jax.jit(MODEL.apply, static_argnames="reverse")

FORWARD = lj.rnn(lj.lstm(H))
BACKWARD = lj.rnn(lj.lstm(H))
BI = lj.bidirectional(FORWARD, BACKWARD)
BI_PARAMS = BI.init(jax.random.key(1), I)
apply_forward = jax.jit(FORWARD.apply, static_argnames="reverse")
apply_bi = jax.jit(BI.apply)


def random_xs(seed):
    return np.asarray(jax.random.normal(jax.random.key(seed), (B, T, I)))


def reverse_within(xs, lengths):
    """Reverse each xs[b, :lengths[b]] along time; padding stays where it is."""
    out = np.array(xs)
    for b, n in enumerate(lengths):
        out[b, :n] = xs[b, :n][::-1]
    return out


@given(lengths=lengths_strategy, seed=seeds, reverse=st.booleans())
def test_padding_values_never_change_valid_outputs_or_final_carry(lengths, seed, reverse):
    xs = random_xs(seed)
    garbage = 100 * random_xs(seed + 1)
    padding = np.arange(T)[None, :, None] >= lengths[:, None, None]
    xs_dirty = np.where(padding, garbage, xs)
    carry, ys = apply_model(MODEL_PARAMS, xs, seq_lengths=lengths, reverse=reverse)
    carry_dirty, ys_dirty = apply_model(MODEL_PARAMS, xs_dirty, seq_lengths=lengths, reverse=reverse)
    assert_close(ys_dirty, ys, atol=1e-6)
    assert_trees_close(carry_dirty, carry, atol=1e-6)
    assert not np.any(np.where(padding, ys, 0))


@given(lengths=lengths_strategy, seed=seeds)
def test_reverse_equals_forward_on_reversed_sequences(lengths, seed):
    xs = random_xs(seed)
    carry, ys = apply_forward(BI_PARAMS.forward, xs, seq_lengths=lengths)
    carry_rev, ys_rev = apply_forward(BI_PARAMS.forward, reverse_within(xs, lengths),
                                      seq_lengths=lengths, reverse=True)
    assert_close(ys_rev, reverse_within(np.asarray(ys), lengths), atol=1e-6)
    assert_trees_close(carry_rev, carry, atol=1e-6)


@given(lengths=lengths_strategy, seed=seeds)
def test_reversing_twice_is_the_identity(lengths, seed):
    xs = random_xs(seed)
    once = reverse_within(xs, lengths)
    np.testing.assert_array_equal(reverse_within(once, lengths), xs)
    xs_T = jnp.moveaxis(xs, 1, 0)
    from_library = reverse_in_time(xs_T, jnp.asarray(lengths))
    np.testing.assert_array_equal(np.moveaxis(np.asarray(from_library), 0, 1), once)


@given(lengths=lengths_strategy, seed=seeds)
def test_bidirectional_is_forward_concat_reversed_within_length(lengths, seed):
    xs = random_xs(seed)
    carry, ys = apply_bi(BI_PARAMS, xs, seq_lengths=lengths)
    f_carry, f_ys = apply_forward(BI_PARAMS.forward, xs, seq_lengths=lengths)
    b_carry, b_ys = apply_forward(BI_PARAMS.backward, reverse_within(xs, lengths), seq_lengths=lengths)
    expected = np.concatenate([np.asarray(f_ys), reverse_within(np.asarray(b_ys), lengths)], -1)
    assert_close(ys, expected, atol=1e-6)
    assert_trees_close(carry, lj.Directions(f_carry, b_carry), atol=1e-6)

"""lj.sample: greedy and random draws fed back through a step function, under scan."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import lstm_jax as lj

V, H, B = 7, 5, 3  # vocabulary, hidden units, batch: distinct so a swapped axis fails


def tiny_rnn(seed=0):
    """A step ``(carry (B, H), token (B,)) -> (carry, logits (B, V))`` and its weights."""
    rng = np.random.default_rng(seed)
    embed, w_hh, w_out = (rng.normal(size=s).astype(np.float32) for s in ((V, H), (H, H), (H, V)))

    def step(carry, token):
        carry = jnp.tanh(jnp.asarray(embed)[token] + carry @ w_hh)
        return carry, 3.0 * carry @ w_out

    return step, (embed, w_hh, w_out)


def test_temperature_zero_is_greedy_stepping_written_by_hand():
    step, (embed, w_hh, w_out) = tiny_rnn()
    carry0 = np.random.default_rng(1).normal(size=(B, H)).astype(np.float32)
    token0 = np.array([0, 3, 6])
    tokens, carry = lj.sample(step, jnp.asarray(carry0), jnp.asarray(token0), jax.random.key(0),
                              length=9, temperature=0.0)
    h, token, expected = carry0.astype(np.float64), token0, []
    for _ in range(9):
        h = np.tanh(embed[token] + h @ w_hh)
        token = np.argmax(3.0 * h @ w_out, axis=-1)
        expected.append(token)
    assert tokens.shape == (B, 9) and tokens.dtype == jnp.int32
    np.testing.assert_array_equal(tokens, np.stack(expected, axis=1))
    np.testing.assert_allclose(carry, h, rtol=1e-5, atol=1e-5)


def test_the_same_seed_gives_the_same_sample_and_another_seed_a_different_one():
    step, _ = tiny_rnn()
    draw = jax.jit(functools.partial(lj.sample, step, length=40, temperature=1.0))
    carry, token = jnp.zeros((B, H)), jnp.zeros(B, jnp.int32)
    first, _ = draw(carry, token, jax.random.key(0))
    again, _ = draw(carry, token, jax.random.key(0))
    other, _ = draw(carry, token, jax.random.key(1))
    unjitted, _ = lj.sample(step, carry, token, jax.random.key(0), length=40)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, unjitted)
    assert np.any(np.asarray(first) != np.asarray(other))


def test_a_draw_made_in_pieces_from_start_is_the_draw_made_at_once():
    step, _ = tiny_rnn()
    carry, token, key = jnp.zeros((B, H)), jnp.array([0, 3, 6]), jax.random.key(5)
    draw = functools.partial(lj.sample, step, temperature=4.0)  # far from greedy
    at_once, carry_at_once = draw(carry, token, key, length=23)
    piece = jax.jit(functools.partial(draw, length=5))  # start traced: one compile
    pieces = []
    for start in range(0, 23, 5):  # the last piece drawn whole, then cut
        tokens, carry = piece(carry, token, key, start=start)
        token = tokens[:, -1]
        pieces.append(tokens)
    np.testing.assert_array_equal(jnp.concatenate(pieces, axis=1)[:, :23], at_once)
    _, carry_at_25 = draw(carry_at_once, at_once[:, -1], key, length=2, start=23)
    np.testing.assert_allclose(carry, carry_at_25, rtol=1e-6)  # 25 steps each
    assert piece._cache_size() == 1
    later, _ = draw(jnp.zeros((B, H)), jnp.array([0, 3, 6]), key, length=23, start=1)
    assert np.any(np.asarray(later) != np.asarray(at_once))  # start moves the random stream


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_draws_follow_softmax_of_logits_over_temperature(temperature):
    logits = jnp.array([2.0, 1.0, 0.0, -1.0, 0.5])
    fixed = lambda carry, token: (carry, jnp.broadcast_to(logits, (token.shape[0], 5)))
    tokens, _ = lj.sample(fixed, jnp.zeros(()), jnp.zeros(2000, jnp.int32), jax.random.key(3),
                          length=10, temperature=temperature)
    counts = np.bincount(np.asarray(tokens).ravel(), minlength=5)
    expected = np.asarray(jax.nn.softmax(logits / temperature)) * counts.sum()
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < stats.chi2.ppf(1 - 1e-6, df=4), (counts, expected.round())


def test_the_carry_drives_the_draws():
    # the logits depend on the carry alone: row b counts up from its own start
    counter = lambda carry, token: (carry + 1, 50.0 * jax.nn.one_hot(carry % V, V))
    tokens, carry = lj.sample(counter, jnp.array([0, 2, 5]), jnp.zeros(B, jnp.int32),
                              jax.random.key(0), length=4, temperature=1.0)
    np.testing.assert_array_equal(tokens, [[0, 1, 2, 3], [2, 3, 4, 5], [5, 6, 0, 1]])
    np.testing.assert_array_equal(carry, [4, 6, 9])


def test_each_drawn_token_is_fed_back_as_the_next_input():
    echo = lambda carry, token: (carry, 50.0 * jax.nn.one_hot((token + 1) % V, V))
    tokens, _ = lj.sample(echo, jnp.zeros(()), jnp.array([0, 4, 6]), jax.random.key(0),
                          length=3, temperature=1.0)
    np.testing.assert_array_equal(tokens, [[1, 2, 3], [5, 6, 0], [0, 1, 2]])


@pytest.mark.parametrize("kwargs, message", [
    ({"length": 0}, "`length` must be a positive int, got 0"),
    ({"length": 3, "temperature": -0.5}, "`temperature` must be a finite float >= 0, got -0.5"),
    ({"length": 3, "temperature": float("nan")}, "`temperature` must be a finite float >= 0, got nan"),
    ({"length": 3, "temperature": float("inf")}, "`temperature` must be a finite float >= 0, got inf"),
    ({"length": 3, "temperature": True}, "`temperature` must be a finite float >= 0, got True"),
    ({"length": 3, "temperature": "0.8"}, "`temperature` must be a finite float >= 0, got '0.8'"),
])
def test_bad_length_or_temperature_name_the_argument(kwargs, message):
    step, _ = tiny_rnn()
    with pytest.raises(ValueError, match=f"^{message}$".replace("(", r"\(")):
        lj.sample(step, jnp.zeros((B, H)), jnp.zeros(B, jnp.int32), jax.random.key(0), **kwargs)


def test_a_numpy_temperature_is_a_number_like_any_other():
    step, _ = tiny_rnn()
    draw = lambda temperature: lj.sample(step, jnp.zeros((B, H)), jnp.zeros(B, jnp.int32),
                                         jax.random.key(0), length=4, temperature=temperature)[0]
    np.testing.assert_array_equal(draw(np.float32(0.5)), draw(0.5))
    np.testing.assert_array_equal(draw(np.int64(0)), draw(0.0))


@pytest.mark.parametrize("start, got", [(1.5, "1.5"), (np.zeros(2, np.int32), r"int32 \(2,\)")])
def test_a_start_that_is_not_an_int_is_refused(start, got):
    step, _ = tiny_rnn()
    with pytest.raises(ValueError, match=rf"^`start` must be an int or a \(\) int array, got {got}$"):
        lj.sample(step, jnp.zeros((B, H)), jnp.zeros(B, jnp.int32), jax.random.key(0), length=2,
                  start=start)


def test_a_token_that_is_not_a_batch_of_ids_is_refused():
    step, _ = tiny_rnn()
    with pytest.raises(ValueError, match=r"^`token` must be \(B,\) int ids, got float32 \(3,\)$"):
        lj.sample(step, jnp.zeros((B, H)), jnp.zeros(B), jax.random.key(0), length=2)

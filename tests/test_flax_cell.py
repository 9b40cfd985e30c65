"""lj.interop.flax_cell: any flax.linen cell module as a cell, its params flax's own.

The adapter's three callables are checked against the module itself; the runner tests
(lj.rnn against flax.linen.RNN on unpadded data, against a Python loop over ``step`` on
padded data) wait for the cell protocol in lj.rnn and are skipped until it accepts a
cell that is not an ``lj.Cell``.
"""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax.interop import FlaxCell, flax_cell

B, T, I, H, P = 3, 4, 5, 6, 2  # distinct, so a swapped axis fails
LENGTHS = jnp.array([4, 2, 0])
BIAS = nn.initializers.normal(0.5)  # random biases, so a lost bias shows


class TwoPartCell(nn.RNNCellBase):
    """A user's cell: a dict carry of two sizes starting at non-zero values, and an
    output of size P != H, so a runner that mixes output and carry, or assumes a zero
    carry, fails."""

    features: int  # H
    out_features: int  # P

    @nn.compact
    def __call__(self, carry, x):
        h = jnp.tanh(nn.Dense(self.features)(x)
                     + nn.Dense(self.features, use_bias=False)(carry["h"]))
        total = carry["total"] + jnp.mean(h, axis=-1, keepdims=True)  # (*batch, 1)
        y = nn.Dense(self.out_features)(jnp.concatenate([h, total], axis=-1))
        return {"h": h, "total": total}, y

    def initialize_carry(self, rng, input_shape):
        batch = input_shape[:-1]
        return {"h": jnp.zeros(batch + (self.features,)), "total": jnp.ones(batch + (1,))}

    @property
    def num_feature_axes(self):
        return 1


class InputSizedCarry(nn.RNNCellBase):
    """A cell whose carry has the input's size I: initial_carry must be told I."""

    @nn.compact
    def __call__(self, carry, x):
        carry = jnp.tanh(carry + nn.Dense(x.shape[-1])(x))
        return carry, carry

    def initialize_carry(self, rng, input_shape):
        return jnp.zeros(input_shape)

    @property
    def num_feature_axes(self):
        return 1


MODULES = {
    "lstm": nn.LSTMCell(H, bias_init=BIAS),
    "optimized_lstm": nn.OptimizedLSTMCell(H, bias_init=BIAS),
    "gru": nn.GRUCell(H, bias_init=BIAS),
    "mgu": nn.MGUCell(H, activation_bias_init=BIAS),
    "simple": nn.SimpleCell(H, bias_init=BIAS),
    "two_part": TwoPartCell(H, P),
}
ALL = pytest.mark.parametrize("name", list(MODULES))
# one built-in LSTM (a tuple carry) and the user's cell (a dict carry, P != H)
RUNNER = pytest.mark.parametrize("name", ["lstm", "two_part"])


def output_size(name):
    return P if name == "two_part" else H


def random_carry(cell, params, batch_shape, key):
    zeros = cell.initial_carry(params, batch_shape)
    leaves, treedef = jax.tree.flatten(zeros)
    keys = jax.random.split(key, len(leaves))
    leaves = [jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)]
    return jax.tree.unflatten(treedef, leaves)


def assert_close(a, b, tol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=tol, rtol=tol), a, b)


# ---- the adapter's init, initial_carry and step ----------------------------------------


@ALL
def test_step_is_the_modules_own_call(name):
    module = MODULES[name]
    cell = flax_cell(module)
    params = cell.init(jax.random.key(0), I)
    carry = random_carry(cell, params, (B,), jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (B, I))
    carry_ref, y_ref = module.apply(params, carry, x)
    carry_new, y = cell.step(params, carry, x)
    assert y.shape == (B, output_size(name))
    assert_close((carry_new, y), (carry_ref, y_ref), 0)
    assert_close(jax.jit(cell.step)(params, carry, x), (carry_ref, y_ref))


@ALL
def test_init_makes_the_variables_flax_makes(name):
    """The same tree, shapes and dtypes as flax's own init at another batch size, and
    the same values for the same key (flax draws params from the key only)."""
    module = MODULES[name]
    key = jax.random.key(3)
    x = jnp.zeros((B, I))
    expected = module.init(key, module.initialize_carry(jax.random.key(9), x.shape), x)
    params = flax_cell(module).init(key, I)
    assert list(params) == ["params"]
    assert_close(params, expected, 0)


@ALL
@pytest.mark.parametrize("batch_shape", [(), (B,), (2, B)])
def test_initial_carry_is_flax_initialize_carry(name, batch_shape):
    module = MODULES[name]
    cell = flax_cell(module)
    params = cell.init(jax.random.key(0), I)
    carry = cell.initial_carry(params, batch_shape)
    expected = module.initialize_carry(jax.random.key(4), (*batch_shape, I))
    assert_close(carry, expected, 0)
    assert all(a.shape[: len(batch_shape)] == batch_shape for a in jax.tree.leaves(carry))


def test_random_carry_init_draws_the_same_carry_every_call():
    """A carry_init that draws randomness draws from the fixed key 0 (documented)."""
    module = nn.GRUCell(H, carry_init=nn.initializers.normal(1.0))
    cell = flax_cell(module)
    params = cell.init(jax.random.key(0), I)
    carry = cell.initial_carry(params, (B,))
    assert float(jnp.std(carry)) > 0.1
    assert_close(carry, module.initialize_carry(jax.random.key(0), (B, I)), 0)
    assert_close(cell.initial_carry(params, (B,)), carry, 0)


def test_conv_lstm_cell_has_spatial_feature_axes():
    """x_t (B, *S, I); the runner's batch_shape for the carry is (B, *S)."""
    module = nn.ConvLSTMCell(H, kernel_size=(3, 2))
    cell = flax_cell(module)
    assert cell.feature_axes == 3
    params = cell.init(jax.random.key(0), I)  # S taken as (1, 1): conv kernels do not see S
    assert params["params"]["ih"]["kernel"].shape == (3, 2, I, 4 * H)
    x = jax.random.normal(jax.random.key(1), (B, 7, 8, I))
    carry = cell.initial_carry(params, x.shape[:-1])
    assert [a.shape for a in carry] == [(B, 7, 8, H)] * 2
    carry = random_carry(cell, params, x.shape[:-1], jax.random.key(2))
    assert_close(cell.step(params, carry, x), module.apply(params, carry, x), 0)


def test_feature_shape_gives_the_spatial_axes_and_input_size():
    cell = flax_cell(nn.ConvLSTMCell(H, kernel_size=(3, 3)), feature_shape=(7, 8, I))
    params = cell.init(jax.random.key(0), I)
    assert params["params"]["hh"]["kernel"].shape == (3, 3, H, 4 * H)
    with pytest.raises(ValueError, match=r"^`input_size` is 4, but this cell was built with "
                       r"feature_shape=\(7, 8, 5\), I = 5$"):
        cell.init(jax.random.key(0), 4)


def test_a_carry_of_the_inputs_size_needs_feature_shape():
    with pytest.raises(ValueError, match=(
            r"^the carry of InputSizedCarry.initialize_carry\(rng, input_shape\) changes "
            r"shape with the input size I = input_shape\[-1\], which initial_carry\(params, "
            r"batch_shape\) does not know: pass `feature_shape=\(I,\)`$")):
        flax_cell(InputSizedCarry())
    module = InputSizedCarry()
    cell = flax_cell(module, feature_shape=(I,))
    params = cell.init(jax.random.key(0), I)
    carry = cell.initial_carry(params, (B,))
    assert carry.shape == (B, I)
    x = jax.random.normal(jax.random.key(1), (B, I))
    assert_close(cell.step(params, carry, x), module.apply(params, carry, x), 0)


def test_repr_hashing_and_feature_axes():
    cell = flax_cell(nn.LSTMCell(H))
    assert repr(cell) == "FlaxCell(LSTMCell(features=6))"
    assert repr(flax_cell(nn.GRUCell(H, activation_fn=jax.nn.relu))) == (
        "FlaxCell(GRUCell(features=6, activation_fn=relu))")
    assert repr(flax_cell(TwoPartCell(H, P))) == "FlaxCell(TwoPartCell(features=6, out_features=2))"
    assert repr(flax_cell(nn.SimpleCell(H), feature_shape=[I])) == (
        "FlaxCell(SimpleCell(features=6), feature_shape=(5,))")
    assert isinstance(cell, FlaxCell) and cell.feature_axes == 1
    assert cell == flax_cell(nn.LSTMCell(H)) and hash(cell) == hash(flax_cell(nn.LSTMCell(H)))
    assert lj.interop.flax_cell is flax_cell
    with pytest.raises(AttributeError):
        cell.module = nn.GRUCell(H)


# ---- errors ------------------------------------------------------------------------------


class NoCall(nn.RNNCellBase):
    def initialize_carry(self, rng, input_shape):
        return jnp.zeros(input_shape)


class OneArgCall(nn.RNNCellBase):
    @nn.compact
    def __call__(self, x):
        return x


@pytest.mark.parametrize("module, message", [
    (lj.lstm(H), "`module` must be a flax.linen RNNCellBase such as nn.LSTMCell(features=H), "
                 "got Cell"),
    (nn.Dense(H), "`module` must be a flax.linen RNNCellBase such as "
                  "nn.LSTMCell(features=H), got Dense"),
    (nn.LSTMCell, "`module` must be a flax.linen cell module instance, got the class LSTMCell: "
                  "pass an instance such as LSTMCell(...)"),
    (NoCall(), "`module` must have a method __call__(carry, x) -> (carry, y), as "
               "flax.linen.RNN calls its cell; NoCall has none"),
    (OneArgCall(), "`module` must have a method __call__(carry, x) -> (carry, y), as "
                   "flax.linen.RNN calls its cell; OneArgCall has none"),
])
def test_not_a_cell_module_is_refused(module, message):
    with pytest.raises(TypeError, match="^" + re.escape(message) + "$"):
        flax_cell(module)


@pytest.mark.parametrize("module, feature_shape, message", [
    (nn.LSTMCell(H), (2, I), r"`feature_shape` must be \(I,\): 1 positive ints, as "
                             r"LSTMCell.num_feature_axes = 1, got \(2, 5\)"),
    (nn.LSTMCell(H), (0,), r"`feature_shape` must be \(I,\): 1 positive ints, as "
                           r"LSTMCell.num_feature_axes = 1, got \(0,\)"),
    (nn.ConvLSTMCell(H, (3, 3)), (I,),
     r"`feature_shape` must be \(\*S, I\) with 2 spatial axes S: 3 positive ints, as "
     r"ConvLSTMCell.num_feature_axes = 3, got \(5,\)"),
])
def test_bad_feature_shape_is_refused(module, feature_shape, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        flax_cell(module, feature_shape=feature_shape)


@pytest.mark.parametrize("input_size, error, message", [
    (0, ValueError, "`input_size` must be a positive int, got 0"),
    (2.0, TypeError, "`input_size` must be a positive int, got 2.0"),
])
def test_bad_input_size_is_refused(input_size, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        flax_cell(nn.GRUCell(H)).init(jax.random.key(0), input_size)


# ---- under the runner ------------------------------------------------------------------


def flax_rnn_variables(params):
    """Our params (the cell's variables) as flax.linen.RNN's, whose cell is "cell"."""
    return {"params": {"cell": params["params"]}}


def hand_loop(cell, params, xs, lengths, reverse=False, carry0=None):
    """Each sequence b alone, as a Python loop over ``step`` on its first lengths[b]
    positions (backwards with ``reverse``); outputs at padding 0. xs (B, T, *S, I)."""
    carries, ys = [], []
    for b in range(xs.shape[0]):
        carry = (cell.initial_carry(params, xs[b : b + 1, 0].shape[:-1]) if carry0 is None
                 else jax.tree.map(lambda a: a[b : b + 1], carry0))
        y_b = [None] * xs.shape[1]
        steps = range(int(lengths[b]))
        for t in (reversed(steps) if reverse else steps):
            carry, y_b[t] = cell.step(params, carry, xs[b : b + 1, t])
        y_shape = jax.eval_shape(cell.step, params, carry, xs[:1, 0])[1]
        ys.append(jnp.stack([jnp.zeros(y_shape.shape) if y is None else y for y in y_b], axis=1))
        carries.append(carry)
    return (jax.tree.map(lambda *a: jnp.concatenate(a), *carries), jnp.concatenate(ys))


def setup(name):
    cell = flax_cell(MODULES[name])
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    return cell, params, xs


@RUNNER
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("given_carry", [False, True])
def test_rnn_matches_flax_rnn_unpadded(name, reverse, given_carry):
    cell, params, xs = setup(name)
    carry0 = random_carry(cell, params, (B,), jax.random.key(2)) if given_carry else None
    flax_rnn = nn.RNN(cell.module, return_carry=True, reverse=reverse, keep_order=True)
    carry_flax, ys_flax = flax_rnn.apply(flax_rnn_variables(params), xs, initial_carry=carry0)
    carry, ys = lj.rnn(cell).apply(params, xs, carry=carry0, reverse=reverse)
    assert ys.shape == (B, T, output_size(name))
    assert_close((carry, ys), (carry_flax, ys_flax))


@RUNNER
@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_on_padded_data_matches_a_hand_loop(name, reverse):
    """Outputs past a length 0, the carry the one after the last valid step (the
    initial one for length 0), reverse within each length."""
    cell, params, xs = setup(name)
    carry0 = random_carry(cell, params, (B,), jax.random.key(2))
    for given in (None, carry0):
        expected = hand_loop(cell, params, xs, LENGTHS, reverse, given)
        got = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, carry=given, reverse=reverse)
        assert_close(got, expected)
    assert not jnp.any(got[1][1, 2:]) and not jnp.any(got[1][2])
    assert_close(jax.tree.map(lambda a: a[2], got[0]), jax.tree.map(lambda a: a[2], carry0), 0)


@RUNNER
def test_bidirectional_on_padded_data_matches_two_hand_loops(name):
    cell, _, xs = setup(name)
    layer = lj.bidirectional(cell)
    params = layer.init(jax.random.key(0), I)
    carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
    carry_f, ys_f = hand_loop(cell, params.forward, xs, LENGTHS)
    carry_b, ys_b = hand_loop(cell, params.backward, xs, LENGTHS, reverse=True)
    assert ys.shape == (B, T, 2 * output_size(name))
    assert_close((carry.forward, carry.backward, ys),
                 (carry_f, carry_b, jnp.concatenate([ys_f, ys_b], axis=-1)))


@RUNNER
def test_jit_matches_eager(name):
    cell, params, xs = setup(name)
    layer = lj.rnn(cell)
    apply = lambda p, xs, lengths: layer.apply(p, xs, seq_lengths=lengths, reverse=True)
    assert_close(jax.jit(apply)(params, xs, LENGTHS), apply(params, xs, LENGTHS))


def test_gradients_match_finite_differences():
    """Through padding and reversal, to the params and the inputs."""
    cell = flax_cell(TwoPartCell(3, P))
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (2, 3, 2))
    lengths = jnp.array([3, 2])
    layer = lj.rnn(cell)

    def loss(params, xs):
        carry, ys = layer.apply(params, xs, seq_lengths=lengths, reverse=True)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(a ** 2) for a in jax.tree.leaves(carry))

    check_grads(jax.jit(loss), (params, xs), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_conv_lstm_cell_under_the_runner():
    """Spatial axes: x_t (B, *S, I); unpadded as flax.linen.RNN, padded as a hand loop."""
    cell = flax_cell(nn.ConvLSTMCell(H, kernel_size=(3, 2)))
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, 4, 3, I))
    flax_rnn = nn.RNN(cell.module, return_carry=True, reverse=True, keep_order=True)
    expected = flax_rnn.apply(flax_rnn_variables(params), xs)
    assert_close(lj.rnn(cell).apply(params, xs, reverse=True), expected, 1e-5)
    got = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, reverse=True)
    assert got[1].shape == (B, T, 4, 3, H)
    assert_close(got, hand_loop(cell, params, xs, LENGTHS, reverse=True), 1e-5)

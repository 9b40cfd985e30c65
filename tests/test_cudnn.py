"""The cuDNN path's pure parts on the CPU: weight layout, padding, reversal, what it runs.

``jax.experimental.rnn.lstm`` needs a GPU; its CPU reference ``lstm_ref`` computes the
same function from the same flat weights, so the conversion and the padding rules are
checked here against our XLA loop. The GPU run itself is in the GPU test run.
"""


import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import rnn as experimental_rnn

import lstm_jax as lj
from lstm_jax import _cudnn, runner
from lstm_jax.cells.lstm import cudnn_unsupported
from lstm_jax.runner import reverse_in_time

B, T, I, H = 3, 5, 4, 6


def reference_implementation(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size):
    W_ih, W_hh, b_ih, b_hh = experimental_rnn.unpack_lstm_weights(
        weights, input_size, hidden_size, num_layers=1, bidirectional=False)
    assert bool(jnp.all(seq_lengths >= 1))  # as cuDNN requires
    return experimental_rnn.lstm_ref(x, h_0, c_0, W_ih, W_hh, b_ih, b_hh, seq_lengths, input_size,
                                     hidden_size, 1, 0.0, False)


@pytest.fixture
def layer_and_params():
    layer = lj.rnn(lj.lstm(H, forget_bias=0.5), fused_backward=False)
    params = layer.init(jax.random.key(0), input_size=I)
    params = params._replace(b=jax.random.normal(jax.random.key(1), params.b.shape))
    return layer, params


def test_weights_round_trip_and_match_the_documented_layout(layer_and_params):
    _, params = layer_and_params
    weights = layer_and_params[0].cell.cudnn_weights(params)
    assert weights.shape == (experimental_rnn.get_num_params_in_lstm(I, H, 1, False),)
    W_ih, W_hh, b_ih, b_hh = experimental_rnn.unpack_lstm_weights(weights, I, H, 1, False)
    np.testing.assert_array_equal(W_ih[0], params.w_ih.T)
    np.testing.assert_array_equal(W_hh[0], params.w_hh.T)
    np.testing.assert_array_equal(b_ih[0] + b_hh[0], params.b)
    back = _cudnn.from_weights(weights, I, H)
    for got, want in zip(back, params[:3]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("reverse", [False, True])
def test_cudnn_formula_equals_the_xla_loop_with_padding(layer_and_params, reverse):
    layer, params = layer_and_params
    xs = jax.random.normal(jax.random.key(2), (B, T, I))
    lengths = jnp.array([5, 2, 0])
    carry0 = lj.LSTMState(jax.random.normal(jax.random.key(3), (B, H)),
                          jax.random.normal(jax.random.key(4), (B, H)))
    want_carry, want_ys = layer.apply(params, xs, seq_lengths=lengths, carry=carry0, reverse=reverse)
    xs_T = jnp.moveaxis(xs, 1, 0)
    if reverse:
        xs_T = reverse_in_time(xs_T, lengths)
    carry, ys_T = _cudnn.run(layer.cell.cudnn_weights(params), carry0, xs_T, lengths,
                             implementation=reference_implementation)
    if reverse:
        ys_T = reverse_in_time(ys_T, lengths)
    np.testing.assert_allclose(jnp.moveaxis(ys_T, 0, 1), want_ys, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry.h, want_carry.h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry.c, want_carry.c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(carry.h[2], carry0.h[2])  # length 0 keeps its carry


def test_no_bias_means_zero_biases(layer_and_params):
    cell = lj.lstm(H, bias=False)
    weights = cell.cudnn_weights(cell.init(jax.random.key(0), input_size=I))
    np.testing.assert_array_equal(weights[-8 * H:], 0.0)


@pytest.mark.parametrize("cell, reason", [
    (lj.lstm(H), None),
    (lj.lstm(H, peephole=True), "cuDNN's LSTM has no `peephole`"),
    (lj.lstm(H, proj_size=3), "cuDNN's LSTM has no `proj_size`"),
    (lj.lstm(H, layer_norm=True), "cuDNN's LSTM has no `layer_norm`"),
    (lj.lstm(H, coupled=True), "cuDNN's LSTM has no `coupled`"),
    (lj.lstm(H, activation="relu"), "cuDNN's LSTM uses sigmoid gates and tanh, no other activations"),
    (lj.lstm(H, dtype=jnp.bfloat16), "jax.experimental.rnn runs float32 only, got `dtype` bfloat16"),
])
def test_what_cudnn_can_run(cell, reason):
    """Only the LSTMs that compute cuDNN's function have the cudnn capability."""
    assert cudnn_unsupported(cell.config) == reason
    assert (cell.cudnn_weights is None) == (reason is not None)
    assert lj.gru(H).cudnn_weights is None


# ---- backend= on lj.rnn ---------------------------------------------------------------


@pytest.mark.parametrize("layer, platform, return_gates, chosen", [
    (lj.rnn(lj.lstm(H)), "gpu", False, "cudnn"),
    (lj.rnn(lj.lstm(H)), "cpu", False, "xla"),
    (lj.rnn(lj.lstm(H)), "tpu", False, "xla"),
    (lj.rnn(lj.lstm(H)), "gpu", True, "xla"),
    (lj.rnn(lj.lstm(H), zoneout=0.1), "gpu", False, "xla"),
    (lj.rnn(lj.lstm(H), input_dropout=0.1), "gpu", False, "xla"),
    (lj.rnn(lj.lstm(H, dtype=jnp.bfloat16)), "gpu", False, "xla"),
    (lj.rnn(lj.gru(H)), "gpu", False, "xla"),
    (lj.rnn(lj.lstm(H), backend="xla"), "gpu", False, "xla"),
    (lj.rnn(lj.lstm(H), backend="cudnn"), "gpu", False, "cudnn"),
])
def test_auto_takes_cudnn_on_a_gpu_where_it_runs_the_layer(layer, platform, return_gates, chosen):
    assert runner.choose_backend(layer.config, return_gates, platform) == chosen


@pytest.mark.parametrize("make, message", [
    (lambda: lj.rnn(lj.gru(H), backend="cudnn"), "`backend='cudnn'` needs a cell with `cudnn_weights` (cudnn capability); `gru` has none"),
    (lambda: lj.rnn(lj.lstm(H, peephole=True), backend="cudnn"), "`backend='cudnn'` needs a cell with `cudnn_weights` (cudnn capability); `lstm` has none"),
    (lambda: lj.rnn(lj.lstm(H), backend="cudnn", zoneout=0.1), "backend='cudnn' cannot run this layer: cuDNN's LSTM has no variational dropout or zoneout"),
    (lambda: lj.rnn(lj.lstm(H), backend="cuda"), "`backend` must be one of ['auto', 'cudnn', 'xla'], got 'cuda'"),
])
def test_cudnn_refuses_what_it_cannot_run(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="the CPU's error")
def test_cudnn_on_the_cpu_is_a_clear_error():
    layer = lj.rnn(lj.lstm(H), backend="cudnn")
    params = layer.init(jax.random.key(0), input_size=I)
    with pytest.raises(ValueError, match="backend='cudnn': cuDNN needs a GPU; this computation runs on cpu"):
        layer.apply(params, jnp.ones((B, T, I)))


def test_the_cudnn_path_of_a_layer_equals_the_xla_loop(monkeypatch):
    """The whole layer through the cuDNN branch (its CPU reference standing in for the GPU
    kernel), with two batch axes, padding, reversal, a carry and gradients."""
    monkeypatch.setattr(_cudnn, "_cudnn_lstm", reference_implementation)
    monkeypatch.setattr(runner, "choose_backend", lambda config, gates, platform: config.backend)
    xla, cudnn = (lj.rnn(lj.lstm(H), backend=b, fused_backward=False) for b in ("xla", "cudnn"))
    params = xla.init(jax.random.key(0), input_size=I)
    xs = jax.random.normal(jax.random.key(1), (2, B, T, I))
    lengths = jnp.array([[5, 1, 3], [2, 4, 5]])

    def loss(params, layer, reverse):
        carry, ys = layer.apply(params, xs, seq_lengths=lengths, reverse=reverse)
        return jnp.sum(ys ** 2) + jnp.sum(carry.c), (carry, ys)

    for reverse in (False, True):
        (value_a, out_a), grads_a = jax.value_and_grad(loss, has_aux=True)(params, xla, reverse)
        (value_b, out_b), grads_b = jax.value_and_grad(loss, has_aux=True)(params, cudnn, reverse)
        for a, b in zip(jax.tree.leaves((out_a, grads_a)), jax.tree.leaves((out_b, grads_b))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN runs on a GPU only")
def test_cudnn_on_the_gpu_equals_the_xla_loop():
    xla, cudnn = (lj.rnn(lj.lstm(32), backend=b) for b in ("xla", "cudnn"))
    params = xla.init(jax.random.key(0), input_size=16)
    xs = jax.random.normal(jax.random.key(1), (4, 20, 16))
    lengths = jnp.array([20, 7, 1, 0])
    with jax.default_matmul_precision("highest"):
        for reverse in (False, True):
            want = jax.value_and_grad(lambda p: jnp.sum(xla.apply(p, xs, seq_lengths=lengths, reverse=reverse)[1] ** 2))(params)
            got = jax.value_and_grad(lambda p: jnp.sum(cudnn.apply(p, xs, seq_lengths=lengths, reverse=reverse)[1] ** 2))(params)
            for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

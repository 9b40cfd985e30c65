"""Truncated BPTT (lj.truncated_bptt): the untruncated layer's outputs, gradients cut at
chunk edges (checked against the chunks run by hand), keys, errors, and the Config option."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax as lj
from lstm_jax import cli
from lstm_jax import train as lt
from lstm_jax.train.config import Config, ConfigError
from tests.helpers import B, I, T, assert_trees_close, inputs, perturbed, random_carry

H = 6
LENGTHS = jnp.array([T, 3, 0])  # full, ending inside the first chunk of 3, empty


def make(layer, seed=0):
    return layer, perturbed(layer.init(jax.random.key(seed), I), jax.random.key(seed + 1))


def assert_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def by_hand(layer, params, xs, chunk, *, seq_lengths=None, keys=None):
    """ys of ``layer`` run chunk by chunk in a Python loop, the carry's gradient stopped
    between chunks: the reference for the truncated gradients."""
    carry, ys = layer.initial_carry(params, xs.shape[:1]), []
    for n, start in enumerate(range(0, xs.shape[1], chunk)):
        piece = xs[:, start:start + chunk]
        lengths = None if seq_lengths is None else jnp.clip(seq_lengths - start, 0, piece.shape[1])
        carry = carry if n == 0 else jax.lax.stop_gradient(carry)
        carry, y = layer.apply(params, piece, seq_lengths=lengths, carry=carry,
                               key=None if keys is None else keys[n])
        ys.append(y)
    return carry, jnp.concatenate(ys, axis=1)


# ---- the forward pass is the untruncated layer's -------------------------------------

def both(truncated, full, **options):
    """(truncated.apply, full.apply) of the same arguments, compiled as one program
    (one compilation instead of many eager ones keeps the file fast)."""
    return jax.jit(lambda params, xs, carry=None: tuple(
        layer.apply(params, xs, carry=carry, **options) for layer in (truncated, full)))


def test_outputs_and_carry_equal_the_full_layer_for_any_chunk():
    full, params = make(lj.rnn(lj.gru(H)))
    xs, carry0 = inputs(), random_carry(full, params, (B,))
    for chunk, options in [(3, {"seq_lengths": LENGTHS}),  # chunks of 3, 3 and 1 steps
                           (1, {"seq_lengths": LENGTHS, "reverse": True})]:
        assert_equal(*both(lj.truncated_bptt(full, chunk=chunk), full, **options)(params, xs, carry0))


def test_time_major_gates_and_nesting_in_a_bidirectional_layer():
    full, params = make(lj.rnn(lj.gru(H), time_major=True))
    xs_T = jnp.swapaxes(inputs(), 0, 1)  # (T, B, I)
    layer = lj.truncated_bptt(full, chunk=3)
    assert layer.time_major and layer.output_size == H
    ours, expected = both(layer, full, seq_lengths=LENGTHS, return_gates=True)(params, xs_T)
    assert_equal(ours, expected)
    assert ours[2].z.shape == (T, B, H)
    cell = lj.gru(H)
    wrapped, plain = lj.bidirectional(lj.truncated_bptt(cell, chunk=3)), lj.bidirectional(cell)
    params = wrapped.init(jax.random.key(0), I)  # the backward half runs reversed, in chunks
    assert_equal(*both(wrapped, plain, seq_lengths=LENGTHS)(params, inputs()))


# ---- gradients -----------------------------------------------------------------------

def grads(loss, *runs):
    """The gradients of ``loss(a, b, run)`` in a and b for each ``run``, compiled as one."""
    return jax.jit(lambda params, xs: [jax.grad(loss, argnums=(0, 1))(params, xs, run)
                                       for run in runs])


def test_chunk_at_least_T_is_full_bptt_in_values_and_gradients():
    full, params = make(lj.rnn(lj.gru(H)))
    xs, carry0 = inputs(), random_carry(full, params, (B,))
    truncated = lj.truncated_bptt(full, chunk=T)
    loss = lambda params, carry, layer: jnp.sum(layer.apply(params, xs, carry=carry)[1] ** 2)
    assert_equal(*grads(loss, truncated, full)(params, carry0))  # d/d params, d/d carry


def test_no_gradient_crosses_a_chunk_edge():
    full, params = make(lj.rnn(lj.gru(H)))
    truncated = lj.truncated_bptt(full, chunk=3)

    def second_chunk_loss(params, xs, layer):  # a loss on chunk 2's outputs (steps 3..5)
        return jnp.sum(layer.apply(params, xs)[1][:, 3:6] ** 2)

    (_, ours), (_, untruncated) = grads(second_chunk_loss, truncated, full)(params, inputs())
    assert np.all(np.asarray(ours[:, :3]) == 0)  # chunk 1's inputs: cut off
    assert np.all(np.abs(np.asarray(untruncated[:, :3])) > 0)  # full BPTT reaches them
    assert np.all(np.abs(np.asarray(ours[:, 3:6])) > 0)
    assert np.all(np.asarray(ours[:, 6:]) == 0)  # later steps do not feed the loss


def test_gradients_equal_the_chunks_run_by_hand():
    full, params = make(lj.rnn(lj.gru(H)))
    layer = lj.truncated_bptt(full, chunk=4)  # chunks of 4 and 3 steps

    def loss(params, xs, run):
        carry, ys = run(params, xs)
        return jnp.sum(ys ** 2) + jnp.sum(jnp.sin(carry))

    ours, reference = grads(loss, lambda p, x: layer.apply(p, x, seq_lengths=LENGTHS),
                            lambda p, x: by_hand(full, p, x, 4, seq_lengths=LENGTHS))(params, inputs())
    assert_trees_close(ours, reference, atol=1e-6, rtol=1e-6)


def test_each_chunk_draws_its_dropout_masks_from_the_key_folded_with_its_index():
    full, params = make(lj.rnn(lj.gru(H), input_dropout=0.3, recurrent_dropout=0.3))
    layer = lj.truncated_bptt(full, chunk=4)
    assert layer.uses_key

    @jax.jit
    def run(params, xs, key):
        keys = [jax.random.fold_in(key, n) for n in range(2)]
        return (layer.apply(params, xs, key=key)[1], by_hand(full, params, xs, 4, keys=keys)[1],
                full.apply(params, xs, key=key)[1])

    ys, reference, one_mask = run(params, inputs(), jax.random.key(4))
    assert_trees_close(ys, reference, atol=1e-6, rtol=1e-6)
    assert not np.allclose(ys, one_mask)  # not one mask for all chunks


def test_vmap_over_unbatched_sequences():
    full, params = make(lj.rnn(lj.gru(H)))
    layer = lj.truncated_bptt(full, chunk=3)
    xs = inputs()
    per_sequence = jax.vmap(lambda x: layer.apply(params, x)[1])(xs)  # each x (T, I)
    assert_trees_close(per_sequence, full.apply(params, xs)[1], atol=1e-6, rtol=1e-6)


# ---- errors --------------------------------------------------------------------------

def test_bad_arguments_are_exact_errors():
    cell = lj.lstm(H)
    with pytest.raises(ValueError, match="`chunk` must be a positive int, got 0"):
        lj.truncated_bptt(cell, chunk=0)
    with pytest.raises(TypeError, match="`chunk` must be a positive int, got '3'"):
        lj.truncated_bptt(cell, chunk="3")
    with pytest.raises(ValueError, match="truncated_bptt cannot chunk a bidirectional layer"):
        lj.truncated_bptt(lj.stack([lj.rnn(cell), lj.bidirectional(cell)]), chunk=3)
    with pytest.raises(TypeError, match=r"expected a cell \(init, initial_carry, step\) or a Layer, got int"):
        lj.truncated_bptt(3, chunk=3)
    with pytest.raises(ValueError, match=r"a cell with spatial inputs \(lj.conv_lstm\) is not"):
        lj.truncated_bptt(lj.stack([lj.conv_lstm(H, (3, 3))]), chunk=3)
    layer = lj.truncated_bptt(cell, chunk=3)
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=r"`xs` must have shape \(B, T, I\) or \(T, I\), got shape \(7,\)"):
        layer.apply(params, jnp.ones(T))
    with pytest.raises(ValueError, match=r"`seq_lengths` must lie in \[0, T=7\]"):
        layer.apply(params, inputs(), seq_lengths=jnp.array([8, 1, 1]))
    with pytest.raises(TypeError, match="`xs` must have a floating-point dtype, got int32"):
        layer.apply(params, jnp.ones((B, T, I), jnp.int32))


# ---- the Config option ---------------------------------------------------------------

TINY = Config(task="adding", task_options={"length": 12}, hidden_size=8, batch_size=8,
              steps=3, eval_batches=1)


def test_config_bptt_chunk_truncates_the_models_stack():
    layer = lt.build_layer(dataclasses.replace(TINY, bptt_chunk=5, num_layers=2))
    assert layer.config.chunk == 5 and len(layer.config.layer.sublayers) == 2
    assert lt.build_layer(TINY).sublayers  # 0: the plain stack


SMALL = ["--task-options", "length=12", "--hidden-size", "8", "--batch-size", "8",
         "--eval-batches", "1", "--no-progress"]


@pytest.mark.slow
def test_the_cli_trains_with_bptt_chunk(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "adding", "--steps", "2", "--bptt-chunk", "5", "--out", str(out),
                     *SMALL]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["bptt_chunk"] == 5
    assert "final evaluation:" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--bptt-chunk", "-2"], "`bptt_chunk` must be >= 0 (0: full BPTT), got -2"),
    (["--bptt-chunk", "2.5"], "Error parsing --bptt-chunk"),
    (["--bptt-chunk", "4", "--bidirectional"], "`bptt_chunk` needs a unidirectional model (no carry passes between chunks of a bidirectional layer)"),
])
def test_a_bad_bptt_chunk_is_one_line_and_leaves_nothing(flags, message, tmp_path, capsys):
    assert cli.main(["train", "adding", "--out", str(tmp_path / "run"), *flags, *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstm-jax: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="`bptt_chunk` must be int, got True"):
        Config(bptt_chunk=True)

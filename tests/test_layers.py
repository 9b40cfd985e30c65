"""Bidirectional layers and stacks: composition, merges, dropout, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax as lj
from lstm_jax.runner import reverse_in_time
from tests import reference
from tests.helpers import B, H, I, T, assert_close, assert_trees_close, carry_tuple, inputs

LENGTHS = jnp.array([7, 4, 1])


def test_bidirectional_matches_reference_on_padded_batch():
    layer = lj.bidirectional(lj.lstm(H), lj.gru(H))
    params = layer.init(jax.random.key(0), I)
    xs = inputs()
    carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
    f_carry, f_ys, _ = reference.run("lstm", params.forward, xs, lengths=LENGTHS)
    b_carry, b_ys, _ = reference.run("gru", params.backward, xs, lengths=LENGTHS, reverse=True)
    assert_close(ys, np.concatenate([f_ys, b_ys], axis=-1))
    for got, want in zip(carry_tuple(carry.forward) + carry_tuple(carry.backward), f_carry + b_carry):
        assert_close(got, want)


@pytest.mark.parametrize("merge, combine", [("sum", np.add), ("mean", lambda a, b: (a + b) / 2),
                                            ("mul", np.multiply)])
def test_merge_modes(merge, combine):
    layer = lj.bidirectional(lj.gru(H), merge=merge)
    params = layer.init(jax.random.key(0), I)
    xs = inputs()
    _, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
    _, f_ys = lj.rnn(lj.gru(H)).apply(params.forward, xs, seq_lengths=LENGTHS)
    _, b_ys = lj.rnn(lj.gru(H)).apply(params.backward, xs, seq_lengths=LENGTHS, reverse=True)
    assert layer.output_size == H
    assert_close(ys, combine(np.asarray(f_ys), np.asarray(b_ys)), atol=1e-6)


def test_bidirectional_with_reverse_swaps_the_directions():
    layer = lj.bidirectional(lj.lstm(H))
    params = layer.init(jax.random.key(0), I)
    xs = inputs()
    _, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
    swapped = lj.Directions(params.backward, params.forward)
    _, ys_rev = layer.apply(swapped, xs, seq_lengths=LENGTHS, reverse=True)
    assert_close(ys_rev, jnp.concatenate([ys[..., H:], ys[..., :H]], axis=-1), atol=1e-6)


def test_stack_is_layers_applied_in_turn():
    first, second = lj.bidirectional(lj.lstm(H, proj_size=4)), lj.rnn(lj.gru(5))
    model = lj.stack([first, second])
    params = model.init(jax.random.key(0), I)
    assert params[1].w_ih.shape == (8, 15)  # the second layer reads 2 * P features
    xs = inputs()
    carry, ys = model.apply(params, xs, seq_lengths=LENGTHS)
    c1, y1 = first.apply(params[0], xs, seq_lengths=LENGTHS)
    c2, y2 = second.apply(params[1], y1, seq_lengths=LENGTHS)
    assert_close(ys, y2, atol=1e-6)
    assert_trees_close(carry, (c1, c2), atol=1e-6)
    assert model.output_size == 5


def test_stack_threads_initial_carries_and_accepts_cells():
    model = lj.stack([lj.lstm(H), lj.lstm(H)])
    params = model.init(jax.random.key(0), I)
    carry0 = jax.tree.map(lambda a: a + 0.5, model.initial_carry(params, (B,)))
    carry, ys = model.apply(params, inputs(), carry=carry0)
    c1, y1 = lj.rnn(lj.lstm(H)).apply(params[0], inputs(), carry=carry0[0])
    _, y2 = lj.rnn(lj.lstm(H)).apply(params[1], y1, carry=carry0[1])
    assert_close(ys, y2, atol=1e-6)


def test_stack_dropout_between_layers_only_when_keyed():
    model = lj.stack([lj.gru(H), lj.gru(H)], dropout=0.5)
    plain = lj.stack([lj.gru(H), lj.gru(H)])
    params = model.init(jax.random.key(0), I)
    xs = inputs()
    _, ys_eval = model.apply(params, xs)
    assert_close(ys_eval, plain.apply(params, xs)[1], atol=0)
    _, ys_a = model.apply(params, xs, key=jax.random.key(1))
    _, ys_b = model.apply(params, xs, key=jax.random.key(1))
    _, ys_c = model.apply(params, xs, key=jax.random.key(2))
    assert_close(ys_a, ys_b, atol=0)
    assert not np.allclose(ys_a, ys_eval) and not np.allclose(ys_a, ys_c)
    # the last layer's outputs are never dropped
    single = lj.stack([lj.gru(H)], dropout=0.5)
    _, ys_single = single.apply(params[:1], xs, key=jax.random.key(1))
    assert_close(ys_single, lj.rnn(lj.gru(H)).apply(params[0], xs)[1], atol=0)


def test_stack_dropout_keeps_padding_zero():
    model = lj.stack([lj.lstm(H), lj.lstm(H)], dropout=0.3)
    params = model.init(jax.random.key(0), I)
    _, ys = model.apply(params, inputs(), seq_lengths=LENGTHS, key=jax.random.key(3))
    assert not jnp.any(ys[1, 4:]) and not jnp.any(ys[2, 1:])


def test_return_gates_through_stack_and_bidirectional():
    model = lj.stack([lj.bidirectional(lj.lstm(H)), lj.gru(5)])
    params = model.init(jax.random.key(0), I)
    carry, ys, gates = model.apply(params, inputs(), seq_lengths=LENGTHS, return_gates=True)
    assert isinstance(gates[0], lj.Directions)
    assert gates[0].forward.f.shape == (B, T, H)
    assert isinstance(gates[1], lj.GRUGates)
    assert_close(gates[1].h, ys, atol=0)


def test_layers_compose_with_jit_grad_vmap():
    model = lj.stack([lj.bidirectional(lj.lstm(H)), lj.rnn(lj.lstm(H))], dropout=0.1)
    params = model.init(jax.random.key(0), I)
    xs = inputs()

    def loss(params, key):
        return jnp.mean(model.apply(params, xs, seq_lengths=LENGTHS, key=key)[1] ** 2)

    grads = jax.jit(jax.grad(loss))(params, jax.random.key(1))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    per_example = jax.vmap(lambda x, n: model.apply(params, x, seq_lengths=n)[1])(xs, LENGTHS)
    assert_close(per_example, model.apply(params, xs, seq_lengths=LENGTHS)[1], atol=1e-6)


def test_reverse_in_time_matches_numpy_slicing():
    xs = np.asarray(inputs())
    flipped = np.asarray(jnp.moveaxis(reverse_in_time(jnp.moveaxis(xs, 1, 0), LENGTHS), 0, 1))
    for b, n in enumerate(np.asarray(LENGTHS)):
        np.testing.assert_array_equal(flipped[b, :n], xs[b, :n][::-1])
        np.testing.assert_array_equal(flipped[b, n:], xs[b, n:])


# ---- errors -------------------------------------------------------------------------

def test_layer_construction_errors():
    with pytest.raises(ValueError, match="`layers` must hold at least one layer"):
        lj.stack([])
    with pytest.raises(TypeError, match=r"expected a cell \(init, initial_carry, step\) or a Layer, got str"):
        lj.stack(["lstm"])
    with pytest.raises(ValueError, match="all layers must share one layout"):
        lj.stack([lj.rnn(lj.lstm(H)), lj.rnn(lj.lstm(H), time_major=True)])
    with pytest.raises(ValueError, match="merge='sum' needs equal output sizes, got 6 and 4"):
        lj.bidirectional(lj.lstm(H), lj.lstm(4), merge="sum")
    with pytest.raises(ValueError, match="`merge` must be one of"):
        lj.bidirectional(lj.lstm(H), merge="max")
    with pytest.raises(ValueError, match=r"`dropout` must be in \[0, 1\], got 1.5"):
        lj.stack([lj.lstm(H)], dropout=1.5)  # 1 itself zeroes them all, as torch allows


def test_layer_apply_errors():
    model = lj.stack([lj.bidirectional(lj.lstm(H)), lj.lstm(H)])
    params = model.init(jax.random.key(0), I)
    xs = inputs()
    with pytest.raises(TypeError, match="`params` of a 2-layer stack must be a tuple of 2 entries, got tuple of length 1"):
        model.apply(params[:1], xs)
    with pytest.raises(TypeError, match="`carry` of a 2-layer stack must be a tuple of 2 entries"):
        model.apply(params, xs, carry=jnp.zeros((B, H)))
    bi = lj.bidirectional(lj.lstm(H))
    with pytest.raises(TypeError, match="`carry` of a bidirectional layer must be Directions"):
        bi.apply(params[0], xs, carry=jnp.zeros((B, H)))
    with pytest.raises(ValueError, match=r"`xs` must have 5 features"):
        model.apply(params, jnp.ones((B, T, 3)))
    one_cells_carry = lj.LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H)))  # a tuple of two
    with pytest.raises(TypeError, match="`carry` of a bidirectional layer must be Directions"
                                        r"\(forward, backward\), got LSTMState"):
        bi.apply(params[0], xs, carry=one_cells_carry)
    with pytest.raises(TypeError, match="`carry` of a 2-layer stack must be a tuple of 2 "
                                        "entries, got LSTMState"):
        model.apply(params, xs, carry=one_cells_carry)
    with pytest.raises(TypeError, match="`reverse` must be True or False, got 'no'"):
        model.apply(params, xs, reverse="no")


def test_layers_describe_themselves():
    """``uses_key``, ``sublayers``, ``cell`` and ``cells`` come from the layer; ``levels``,
    ``split`` and ``join`` are the one walk over nested layers."""
    from lstm_jax import layers

    inner = lj.rnn(lj.gru(H), recurrent_dropout=0.1)
    model = lj.stack([lj.bidirectional(lj.lstm(H), inner), lj.rnn(lj.lstm(H))])
    assert model.uses_key and not lj.stack([lj.lstm(H)]).uses_key
    assert lj.stack([lj.lstm(H)], dropout=0.2).uses_key
    assert len(model.sublayers) == 2 and model.sublayers[0].sublayers[1] is inner
    assert inner.cell is not None and model.cell is None
    assert [c.config.kind for c in model.cells] == ["lstm", "gru", "lstm"]
    assert [len(row) for row in layers.levels(model)] == [2, 1]
    params = model.init(jax.random.key(0), I)
    parts = layers.split(model, params)
    assert parts[0][1] is params[0].backward and parts[1][0] is params[1]
    assert jax.tree.structure(layers.join(model, parts)) == jax.tree.structure(params)
    custom = lj.Layer(*model[:4], config=None)  # a layer built by hand
    assert custom.uses_key and custom.sublayers == () and custom.cell is None


def test_one_table_of_cell_kinds():
    for kind, entry in lj.KINDS.items():
        cell = entry.factory(H)
        assert cell.config.kind == kind
        assert isinstance(cell.init(jax.random.key(0), I), entry.params)


def test_input_size_and_has_bidirectional_see_inside_stacks_and_truncated_layers():
    from lstm_jax.layers import first_cell, has_bidirectional, input_size

    inner = lj.rnn(lj.gru(4), learn_initial_carry=True)
    model = lj.stack([lj.truncated_bptt(lj.stack([inner, lj.lstm(3)]), chunk=2), lj.lstm(2)])
    params = model.init(jax.random.key(0), input_size=5)
    assert input_size(model, params) == 5
    cell, cell_params = first_cell(model, params)
    assert cell is inner.cell and cell_params is params[0][0].cell  # RNNParams unwrapped
    assert not has_bidirectional(model)
    assert has_bidirectional(lj.stack([lj.lstm(3), lj.bidirectional(lj.gru(2))]))
    assert input_size(lj.bidirectional(lj.gru(2)), lj.bidirectional(lj.gru(2)).init(
        jax.random.key(0), 7)) == 7

"""``lj.rnn`` options ``learn_initial_carry`` (h_0/c_0 as parameters) and ``weight_drop``
(DropConnect on w_hh): values, gradients, composition with layers, modules, checkpoints,
interop, training configs, and their errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax import nn as ljnn
from lstm_jax.runner import RNNParams
from tests.helpers import B, H, I, P, assert_trees_close, inputs, random_carry

T = 4
XS = inputs((B, T, I))
LENGTHS = jnp.array([4, 2, 0])


def random_params(layer, seed=0):
    """Random params in the structure of ``layer.init``'s, every leaf nonzero; read from
    the shapes alone, since compiling the real initializers costs seconds per shape."""
    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), I))
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(treedef, [0.5 * jax.random.normal(k, s.shape, s.dtype)
                                        for k, s in zip(keys, leaves)])


def learned_layer(cell, **options):
    """The layer with a learned carry, random params (the carry too) and the same layer
    without the option."""
    layer = lj.rnn(cell, learn_initial_carry=True, **options)
    return layer, random_params(layer), lj.rnn(cell, **options)


def broadcast(carry, batch_shape=(B,)):
    return jax.tree.map(lambda a: jnp.broadcast_to(a, batch_shape + a.shape), carry)


# ---- the learned initial carry -------------------------------------------------------

def test_learned_carry_is_zero_at_init_and_broadcast_over_the_batch():
    cell = lj.lstm(H)
    layer = lj.rnn(cell, learn_initial_carry=True)
    params = layer.init(jax.random.key(0), I)
    assert isinstance(params, RNNParams)
    zeros = cell.initial_carry(params.cell, ())
    assert_trees_close(params.initial_carry, zeros, atol=0)
    assert jax.tree.map(jnp.shape, params.initial_carry) == jax.tree.map(jnp.shape, zeros)
    learned = random_carry(cell, params.cell, ())
    params = params._replace(initial_carry=learned)
    assert_trees_close(layer.initial_carry(params, (2, B)), broadcast(learned, (2, B)), atol=0)
    # the cell's part is what the layer without the option initialises, key for key
    plain = lj.rnn(cell)
    assert_trees_close(params.cell, plain.init(jax.random.key(0), I), atol=0)


def test_learned_carry_equals_carry_argument_and_is_overridden_by_it():
    cell = lj.lstm(H, proj_size=P)
    layer, params, plain = learned_layer(cell)
    start = broadcast(params.initial_carry)
    ours = layer.apply(params, XS, seq_lengths=LENGTHS)
    assert_trees_close(ours, plain.apply(params.cell, XS, seq_lengths=LENGTHS, carry=start))
    # an empty sequence (row 2) returns the carry it started from: the learned one, or
    # the explicit one, which overrides it
    assert_trees_close(jax.tree.map(lambda a: a[2], ours[0]), params.initial_carry, atol=0)
    explicit = random_carry(cell, params.cell, (B,), seed=11)
    carry, ys = layer.apply(params, XS, seq_lengths=LENGTHS, carry=explicit, reverse=True)
    assert_trees_close(jax.tree.map(lambda a: a[2], carry), jax.tree.map(lambda a: a[2], explicit),
                       atol=0)
    assert not np.allclose(ys[0], ours[1][0])


def test_learned_carry_gets_gradients():
    layer, params, _ = learned_layer(lj.lstm(H))

    @jax.jit
    def loss(params):
        return jnp.sum(jnp.sin(layer.apply(params, XS, seq_lengths=LENGTHS)[1]))

    grads = jax.grad(loss)(layer.init(jax.random.key(0), I))
    assert all(float(jnp.max(jnp.abs(g))) > 1e-3 for g in grads.initial_carry)  # from zero
    check_grads(jax.jit(lambda c: loss(params._replace(initial_carry=c))), (params.initial_carry,),
                order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_learned_carry_survives_stack_and_bidirectional():
    one = lj.rnn(lj.lstm(H), learn_initial_carry=True)
    model = lj.stack([lj.bidirectional(one), lj.rnn(lj.gru(P), learn_initial_carry=True)])
    plain = lj.stack([lj.bidirectional(lj.lstm(H)), lj.gru(P)])
    params = random_params(model)
    assert params[0].backward.initial_carry.c.shape == (H,)
    start = model.initial_carry(params, (B,))
    assert_trees_close(start[1], broadcast(params[1].initial_carry), atol=0)
    cell_params = (lj.Directions(params[0].forward.cell, params[0].backward.cell), params[1].cell)
    assert_trees_close(model.apply(params, XS, seq_lengths=LENGTHS),
                       plain.apply(cell_params, XS, seq_lengths=LENGTHS, carry=start))


def test_learned_carry_in_flax_modules_and_their_dicts():
    from flax import nnx
    import flax.linen as nn

    layer, params, _ = learned_layer(lj.lstm(H))
    tree = ljnn.to_dict(params)
    assert sorted(tree) == ["cell", "initial_carry"] and sorted(tree["initial_carry"]) == ["c", "h"]
    assert_trees_close(ljnn.from_dict(layer, tree), params, atol=0)
    expected = layer.apply(params, XS)
    module = ljnn.linen.LSTM(H, learn_initial_carry=True, weight_drop=0.3, return_carry=True)
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), XS, deterministic=True))
    assert jax.tree.map(jnp.shape, variables["params"]) == jax.tree.map(jnp.shape, tree)
    assert_trees_close(module.apply({"params": tree}, XS, deterministic=True), expected)
    # as a cell of flax's nn.RNN, whose initialize_carry is the learned carry
    flax_rnn = nn.RNN(ljnn.linen.LSTM(H, learn_initial_carry=True), return_carry=True)
    assert_trees_close(flax_rnn.apply({"params": {"cell": tree}}, XS), expected)
    module = ljnn.nnx.RNN(I, lj.lstm(H), learn_initial_carry=True, weight_drop=0.3,
                          rngs=nnx.Rngs(0))
    assert module.layer.uses_key and module.rngs is not None  # keeps a dropout stream
    module.set_params(params)
    module.eval()
    assert_trees_close(module.get_params(), params, atol=0)
    assert_trees_close(module(XS), expected[1])


def test_torch_export_names_what_torch_lacks():
    pytest.importorskip("torch")
    for option, match in [
        ({"learn_initial_carry": True}, "torch has no learnable initial carry; layer 0 has"),
        ({"weight_drop": 0.2}, "torch has no weight_drop; layer 0 has weight_drop=0.2"),
    ]:
        layer = lj.rnn(lj.lstm(H), **option)
        with pytest.raises(ValueError, match=match):
            lj.interop.to_torch(layer, random_params(layer))


def test_a_training_config_with_both_options_trains_and_checkpoints(tmp_path):
    from lstm_jax import train as lt
    from lstm_jax.train.checkpoint import Checkpoints
    from lstm_jax.train.config import Config

    config = Config(task="adding", task_options={"length": 6}, hidden_size=H, batch_size=8,
                    warmup_steps=0,
                    rnn_options={"learn_initial_carry": True, "weight_drop": 0.2})
    prepared = lt.prepare(config)
    task, model, keys = prepared.task, prepared.model, prepared.keys
    state = lt.init_state(model, prepared.optimizer, keys.init)
    state, metrics = lt.make_train_step(model, task, prepared.optimizer)(
        state, task.train_batch(keys.data, 0, 8))
    assert np.isfinite(float(metrics["loss"]))
    layer_params = state.params["rnn"][0]
    assert isinstance(layer_params, RNNParams)
    assert float(jnp.max(jnp.abs(layer_params.initial_carry.h))) > 0  # trained away from 0
    with Checkpoints(tmp_path) as checkpoints:
        checkpoints.save(1, state)
    with Checkpoints(tmp_path) as checkpoints:
        restored, step = checkpoints.restore_params(state.params)
    assert step == 1 and isinstance(restored["rnn"][0], RNNParams)
    assert_trees_close(restored, state.params, atol=0)


# ---- weight-drop ---------------------------------------------------------------------

def dropped_by_hand(key, params, p):
    """params with w_hh times the mask ``rnn`` documents: drawn from split(key)[0]."""
    keep = jax.random.bernoulli(jax.random.split(key)[0], 1 - p, params.w_hh.shape)
    return params._replace(w_hh=params.w_hh * keep / (1 - p))


def test_weight_drop_is_one_mask_on_w_hh_for_the_whole_sequence():
    p, key = 0.4, jax.random.key(3)
    layer, plain = lj.rnn(lj.lstm(H), weight_drop=p), lj.rnn(lj.lstm(H))
    params = random_params(layer)
    ours = layer.apply(params, XS, seq_lengths=LENGTHS, key=key)
    by_hand = dropped_by_hand(key, params, p)
    assert_trees_close(ours, plain.apply(by_hand, XS, seq_lengths=LENGTHS))  # at every step
    other = layer.apply(params, XS, seq_lengths=LENGTHS, key=jax.random.key(4))
    assert not np.allclose(ours[1], other[1])  # another key, another mask
    # the same without the documented key: the entries of w_hh whose gradient is 0 are
    # the dropped ones (at every step, or some step would give them a gradient)
    grad = jax.grad(lambda w: jnp.sum(layer.apply(params._replace(w_hh=w), XS, key=key)[1]))(
        params.w_hh)
    assert 0 < float(jnp.mean(grad == 0)) < 1
    assert_trees_close(params.w_hh * (grad != 0) / (1 - p), by_hand.w_hh, atol=0)
    # evaluation (no key) uses w_hh as it is
    assert_trees_close(layer.apply(params, XS), plain.apply(params, XS), atol=0)


def test_weight_drop_masks_indrnn_recurrent_vector():
    p, key, cell = 0.4, jax.random.key(3), lj.indrnn(H)
    params = random_params(lj.rnn(cell))
    assert_trees_close(lj.rnn(cell, weight_drop=p).apply(params, XS, key=key),
                       lj.rnn(cell).apply(dropped_by_hand(key, params, p), XS))


def test_weight_drop_zero_changes_nothing_not_even_dropout_masks():
    cell, key = lj.lstm(H), jax.random.key(5)
    with_zero = lj.rnn(cell, weight_drop=0.0, recurrent_dropout=0.3, input_dropout=0.2)
    without = lj.rnn(cell, recurrent_dropout=0.3, input_dropout=0.2)
    params = random_params(without)
    assert_trees_close(with_zero.apply(params, XS, key=key), without.apply(params, XS, key=key),
                       atol=0)
    assert not lj.rnn(cell, weight_drop=0.0).uses_key
    assert lj.stack([lj.rnn(cell, weight_drop=0.1)]).uses_key


def test_weight_drop_gradients_fused_equal_autodiff():
    """With a learned carry and recurrent dropout too: both cross the custom_vjp."""
    options = {"learn_initial_carry": True, "recurrent_dropout": 0.2}
    cell, key = lj.lstm(H, proj_size=P), jax.random.key(6)
    fused = lj.rnn(cell, weight_drop=0.3, **options)
    autodiff = lj.rnn(cell, weight_drop=0.3, fused_backward=False, **options)
    params = random_params(fused)

    def loss(layer, params):
        return jnp.sum(jnp.sin(layer.apply(params, XS, seq_lengths=LENGTHS, key=key)[1]))

    grads = jax.grad(lambda p: loss(fused, p))(params)
    assert_trees_close(grads, jax.grad(lambda p: loss(autodiff, p))(params), atol=1e-5)
    assert 0 < float(jnp.mean(grads.cell.w_hh == 0)) < 1  # dropped entries get no gradient


# ---- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["min_gru", "min_lstm"])
def test_weight_drop_needs_a_recurrent_weight(kind):
    with pytest.raises(ValueError, match=f"^`weight_drop` drops entries of the recurrent weight "
                                         f"w_hh, which the params of `{kind}` do not have$"):
        lj.rnn(getattr(lj, kind)(H), weight_drop=0.1)
    lj.rnn(getattr(lj, kind)(H), weight_drop=0.0, learn_initial_carry=True)  # fine


def test_bad_options_and_params_give_exact_errors():
    for p in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"^`weight_drop` must be in \[0, 1\), got {p}$"):
            lj.rnn(lj.lstm(H), weight_drop=p)
    with pytest.raises(TypeError, match=r"`weight_drop` must be a float in \[0, 1\), got '0.1'"):
        lj.rnn(lj.lstm(H), weight_drop="0.1")
    with pytest.raises(TypeError, match="^`learn_initial_carry` must be True or False, got 'false'$"):
        lj.rnn(lj.lstm(H), learn_initial_carry="false")
    layer, params, plain = learned_layer(lj.lstm(H))
    with pytest.raises(TypeError, match=r"^`params` of lj.rnn\(..., learn_initial_carry=True\) "
                       r"must be RNNParams\(cell, initial_carry\), got LSTMParams$"):
        layer.apply(params.cell, XS)
    with pytest.raises(TypeError, match=r"`params` are RNNParams, but this layer has no learned "
                       r"initial carry \(learn_initial_carry=False\): pass params.cell"):
        plain.apply(params, XS)
    batched = params._replace(initial_carry=broadcast(params.initial_carry))
    with pytest.raises(ValueError, match=r"`params.initial_carry` must have shapes and dtypes "
                                         r"LSTMState\(h='\(6,\) float32'"):
        layer.initial_carry(batched, (B,))

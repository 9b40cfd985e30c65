"""``lj.rnn`` options ``learn_initial_carry`` (h_0/c_0 as parameters) and ``weight_drop``
(DropConnect on w_hh): values, gradients, composition with layers, modules, checkpoints,
interop, training configs, and their errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax import nn as ljnn
from lstm_jax.rnn import RNNParams
from tests.helpers import B, H, I, P, assert_trees_close, inputs, perturbed, random_carry

T = 4
XS = inputs((B, T, I))
LENGTHS = jnp.array([4, 2, 0])


def learned_layer(cell, **options):
    """The layer with a learned carry, its params (the carry set to random values) and
    the same layer without the option."""
    layer = lj.rnn(cell, learn_initial_carry=True, **options)
    params = layer.init(jax.random.key(0), I)
    cell_params = perturbed(params.cell, jax.random.key(1))
    params = RNNParams(cell_params, random_carry(cell, cell_params, ()))
    return layer, params, lj.rnn(cell, **options)


def broadcast(carry, batch_shape=(B,)):
    return jax.tree.map(lambda a: jnp.broadcast_to(a, batch_shape + a.shape), carry)


# ---- the learned initial carry -------------------------------------------------------

@pytest.mark.parametrize("cell", [lj.lstm(H, proj_size=P), lj.gru(H)], ids=["lstm_proj", "gru"])
def test_learned_carry_is_zero_at_init_and_broadcast_over_the_batch(cell):
    layer = lj.rnn(cell, learn_initial_carry=True)
    params = layer.init(jax.random.key(0), I)
    assert isinstance(params, RNNParams)
    zeros = cell.initial_carry(params.cell, ())
    assert_trees_close(params.initial_carry, zeros, atol=0)
    assert jax.tree.map(jnp.shape, params.initial_carry) == jax.tree.map(jnp.shape, zeros)
    learned = random_carry(cell, params.cell, ())
    params = params._replace(initial_carry=learned)
    assert_trees_close(layer.initial_carry(params, (2, B)), broadcast(learned, (2, B)), atol=0)
    # the cell's params are the plain layer's: same init, same outputs from a zero carry
    plain = lj.rnn(cell)
    assert_trees_close(params.cell, plain.init(jax.random.key(0), I), atol=0)


def test_learned_carry_equals_carry_argument_and_is_overridden_by_it():
    cell = lj.lstm(H, proj_size=P)
    layer, params, plain = learned_layer(cell)
    start = broadcast(params.initial_carry)
    ours = layer.apply(params, XS, seq_lengths=LENGTHS)
    assert_trees_close(ours, plain.apply(params.cell, XS, seq_lengths=LENGTHS, carry=start))
    # an empty sequence returns the learned carry itself
    assert_trees_close(jax.tree.map(lambda a: a[2], ours[0]), params.initial_carry, atol=0)
    explicit = random_carry(cell, params.cell, (B,), seed=11)
    assert_trees_close(layer.apply(params, XS, carry=explicit, reverse=True),
                       plain.apply(params.cell, XS, carry=explicit, reverse=True))


def test_learned_carry_gets_gradients_fused_and_autodiff_alike():
    cell = lj.gru(H)
    layer, params, _ = learned_layer(cell)
    autodiff = lj.rnn(cell, learn_initial_carry=True, fused_backward=False)

    def loss(layer, params):
        return jnp.sum(jnp.sin(layer.apply(params, XS, seq_lengths=LENGTHS)[1]))

    zero_params = layer.init(jax.random.key(0), I)
    grads = jax.grad(lambda p: loss(layer, p))(zero_params)
    assert float(jnp.max(jnp.abs(grads.initial_carry))) > 1e-3  # after one loss, at zero
    assert_trees_close(jax.grad(lambda p: loss(layer, p))(params),
                       jax.grad(lambda p: loss(autodiff, p))(params))
    check_grads(lambda c: loss(layer, params._replace(initial_carry=c)),
                (params.initial_carry,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_learned_carry_survives_stack_and_bidirectional():
    one = lj.rnn(lj.lstm(H), learn_initial_carry=True)
    model = lj.stack([lj.bidirectional(one), lj.rnn(lj.gru(P), learn_initial_carry=True)])
    plain = lj.stack([lj.bidirectional(lj.lstm(H)), lj.gru(P)])
    params = perturbed(model.init(jax.random.key(0), I), jax.random.key(1))
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
    module = ljnn.linen.LSTM(H, learn_initial_carry=True, return_carry=True)
    assert module.init(jax.random.key(0), XS)["params"]["initial_carry"]["c"].shape == (H,)
    assert_trees_close(module.apply({"params": tree}, XS), expected)
    # as a cell of flax's nn.RNN, whose initialize_carry is the learned carry
    flax_rnn = nn.RNN(ljnn.linen.LSTM(H, learn_initial_carry=True), return_carry=True)
    flax_rnn.init(jax.random.key(0), XS)
    assert_trees_close(flax_rnn.apply({"params": {"cell": tree}}, XS), expected)
    module = ljnn.nnx.RNN(I, lj.lstm(H), learn_initial_carry=True, weight_drop=0.3,
                          rngs=nnx.Rngs(0))
    assert module.layer.uses_key
    module.set_params(params)
    module.eval()
    assert_trees_close(module.get_params(), params, atol=0)
    assert_trees_close(module(XS), expected[1])
    module.train()
    assert not np.allclose(module(XS), expected[1])  # weight-drop on


def test_torch_export_names_what_torch_lacks():
    pytest.importorskip("torch")
    for option, match in [({"learn_initial_carry": True}, "torch has no learnable initial carry"),
                          ({"weight_drop": 0.2}, "torch has no weight_drop; layer 0 has weight_drop=0.2")]:
        layer = lj.rnn(lj.lstm(H), **option)
        with pytest.raises(ValueError, match=match):
            lj.interop.to_torch(layer, layer.init(jax.random.key(0), I))


def test_a_training_config_with_both_options_trains_and_checkpoints(tmp_path):
    from lstm_jax import train as lt
    from lstm_jax.train.config import Config

    config = Config(task="adding", task_options={"length": 6}, hidden_size=8, batch_size=8,
                    steps=4, learning_rate=1e-2, warmup_steps=0, log_every=2, eval_every=4,
                    eval_batches=1, checkpoint_every=4,
                    rnn_options={"learn_initial_carry": True, "weight_drop": 0.2})
    lt.train(config, tmp_path, progress=False)
    layer_params = lt.load(tmp_path).params["rnn"][0]  # restored from the checkpoint
    assert isinstance(layer_params, RNNParams)
    assert float(jnp.max(jnp.abs(layer_params.initial_carry.h))) > 0  # trained away from 0


# ---- weight-drop ---------------------------------------------------------------------

def dropped_by_hand(key, params, p):
    """params with w_hh times the mask ``rnn`` documents: drawn from split(key)[0]."""
    keep = jax.random.bernoulli(jax.random.split(key)[0], 1 - p, params.w_hh.shape)
    return params._replace(w_hh=params.w_hh * keep / (1 - p))


@pytest.mark.parametrize("cell", [lj.lstm(H), lj.indrnn(H)], ids=["lstm", "indrnn"])
def test_weight_drop_is_one_mask_on_w_hh_for_the_whole_sequence(cell):
    p, key = 0.4, jax.random.key(3)
    layer, plain = lj.rnn(cell, weight_drop=p), lj.rnn(cell)
    params = perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))
    ours = layer.apply(params, XS, seq_lengths=LENGTHS, key=key)
    assert_trees_close(ours, plain.apply(dropped_by_hand(key, params, p), XS, seq_lengths=LENGTHS))
    # the same without the documented key: the entries of w_hh whose gradient is 0 are
    # the dropped ones, at every step; the rest, scaled, give the same outputs
    grad = jax.grad(lambda w: jnp.sum(layer.apply(params._replace(w_hh=w), XS, key=key)[1]))(
        params.w_hh)
    mask = (grad != 0) / (1 - p)
    assert 0 < float(jnp.mean(grad == 0)) < 1
    assert_trees_close(ours, plain.apply(params._replace(w_hh=params.w_hh * mask), XS,
                                         seq_lengths=LENGTHS))
    other = layer.apply(params, XS, seq_lengths=LENGTHS, key=jax.random.key(4))[1]
    assert not np.allclose(ours[1], other)  # another key, another mask
    # evaluation (no key) uses w_hh as it is
    assert_trees_close(layer.apply(params, XS), plain.apply(params, XS), atol=0)


def test_weight_drop_zero_changes_nothing_not_even_dropout_masks():
    cell, key = lj.lstm(H), jax.random.key(5)
    with_zero = lj.rnn(cell, weight_drop=0.0, recurrent_dropout=0.3, input_dropout=0.2)
    without = lj.rnn(cell, recurrent_dropout=0.3, input_dropout=0.2)
    params = without.init(jax.random.key(0), I)
    assert_trees_close(with_zero.apply(params, XS, key=key), without.apply(params, XS, key=key),
                       atol=0)
    assert not lj.rnn(cell, weight_drop=0.0).uses_key
    assert lj.stack([lj.rnn(cell, weight_drop=0.1)]).uses_key


@pytest.mark.parametrize("options", [{}, {"learn_initial_carry": True, "recurrent_dropout": 0.2}],
                         ids=["plain", "learned_carry_and_dropout"])
def test_weight_drop_gradients_fused_equal_autodiff(options):
    cell, key = lj.lstm(H, proj_size=P), jax.random.key(6)
    fused = lj.rnn(cell, weight_drop=0.3, **options)
    autodiff = lj.rnn(cell, weight_drop=0.3, fused_backward=False, **options)
    params = perturbed(fused.init(jax.random.key(0), I), jax.random.key(1))

    def loss(layer, params):
        return jnp.sum(jnp.sin(layer.apply(params, XS, seq_lengths=LENGTHS, key=key)[1]))

    grads = jax.grad(lambda p: loss(fused, p))(params)
    assert_trees_close(grads, jax.grad(lambda p: loss(autodiff, p))(params), atol=1e-5)
    w_hh = grads.cell.w_hh if options else grads.w_hh
    assert 0 < float(jnp.mean(w_hh == 0)) < 1  # dropped entries get no gradient


# ---- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["min_gru", "min_lstm"])
def test_weight_drop_needs_a_recurrent_weight(kind):
    with pytest.raises(ValueError, match=f"^`weight_drop` drops entries of the recurrent weight "
                                         f"w_hh, which a {kind} cell does not have$"):
        lj.rnn(getattr(lj, kind)(H), weight_drop=0.1)
    lj.rnn(getattr(lj, kind)(H), weight_drop=0.0, learn_initial_carry=True)  # fine


def test_bad_options_and_params_give_exact_errors():
    for p in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"^`weight_drop` must be in \[0, 1\), got {p}$"):
            lj.rnn(lj.lstm(H), weight_drop=p)
    with pytest.raises(TypeError, match=r"`weight_drop` must be a float in \[0, 1\), got '0.1'"):
        lj.rnn(lj.lstm(H), weight_drop="0.1")
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

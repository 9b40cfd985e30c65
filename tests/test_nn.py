"""Flax modules (linen and nnx): parity with the functional layers they wrap, params
interchange, dropout plumbing, the zero carry, transforms and errors."""

import inspect
import re

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lstm_jax as lj
from lstm_jax.nn import from_dict, to_dict
from lstm_jax.nn import linen as ljl
from lstm_jax.nn import nnx as ljx

# Distinct sizes so that a swapped axis fails loudly.
B, T, I, H, P = 3, 5, 4, 6, 2
LENGTHS = jnp.array([5, 3, 0])
XS = jax.random.normal(jax.random.key(1), (B, T, I))


def assert_trees_equal(a, b, atol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.shape(x) == np.shape(y)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-6)


def loss(ys, carry):
    return jnp.sum(ys**2) + sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(carry))


# name: (linen module, nnx module from rngs, the functional layer built independently)
CASES = {
    "lstm": (
        lambda: ljl.LSTM(H, proj_size=P, peephole=True, layer_norm=True, forget_bias=0.5,
                         zoneout=0.1),
        lambda rngs: ljx.LSTM(I, H, proj_size=P, peephole=True, layer_norm=True,
                              forget_bias=0.5, zoneout=0.1, rngs=rngs),
        lambda: lj.rnn(lj.lstm(H, proj_size=P, peephole=True, layer_norm=True, forget_bias=0.5),
                       zoneout=0.1),
    ),
    "gru": (
        lambda: ljl.GRU(H, init="pytorch", remat=True),
        lambda rngs: ljx.GRU(I, H, init="pytorch", remat=True, rngs=rngs),
        lambda: lj.rnn(lj.gru(H, init="pytorch"), remat=True),
    ),
    "rnn": (
        lambda: ljl.RNN(lj.lstm(H, coupled=True), hoist=True),
        lambda rngs: ljx.RNN(I, lj.lstm(H, coupled=True), hoist=True, rngs=rngs),
        lambda: lj.rnn(lj.lstm(H, coupled=True), hoist=True),
    ),
    "bidirectional": (
        lambda: ljl.Bidirectional(lj.lstm(H), lj.gru(H), merge="sum"),
        lambda rngs: ljx.Bidirectional(I, lj.lstm(H), lj.gru(H), merge="sum", rngs=rngs),
        lambda: lj.bidirectional(lj.lstm(H), lj.gru(H), merge="sum"),
    ),
    "stack": (
        lambda: ljl.Stack((lj.bidirectional(lj.lstm(H)), lj.gru(H)), dropout=0.3),
        lambda rngs: ljx.Stack(I, [lj.bidirectional(lj.lstm(H)), lj.gru(H)], dropout=0.3,
                               rngs=rngs),
        lambda: lj.stack([lj.bidirectional(lj.lstm(H)), lj.gru(H)], dropout=0.3),
    ),
}


# --- parity: module == functional layer, outputs, carry and gradients -----------------


@pytest.mark.parametrize("name, reverse", [("lstm", True), ("gru", False), ("rnn", True),
                                           ("bidirectional", False), ("stack", True)])
def test_modules_match_functional_layer(name, reverse):
    """The same params through linen, nnx and ``layer.apply``: equal results and grads."""
    make_linen, make_nnx, make_layer = CASES[name]
    layer = make_layer()
    linen_model, nnx_model = make_linen(), make_nnx(nnx.Rngs(0))
    params = layer.init(jax.random.key(7), I)  # functional params go into both modules
    is_param = lambda x: isinstance(x, nnx.Param)  # noqa: E731
    param_objects = jax.tree.leaves(nnx_model.params, is_leaf=is_param)
    nnx_model.set_params(params)
    assert_trees_equal(nnx_model.get_params(), params, atol=0)
    # set in place: the same Param objects, so an nnx.Optimizer keeps tracking them
    assert all(a is b for a, b in zip(param_objects,
                                      jax.tree.leaves(nnx_model.params, is_leaf=is_param)))
    nnx_model.eval()
    kw = dict(seq_lengths=LENGTHS, reverse=reverse)

    def layer_loss(p):
        carry, ys = layer.apply(p, XS, **kw)
        return loss(ys, carry), (carry, ys)

    def linen_loss(p):
        carry, ys = linen_model.apply({"params": to_dict(p)}, XS, return_carry=True,
                                      deterministic=True, **kw)
        return loss(ys, carry), (carry, ys)

    def nnx_loss(model):
        carry, ys = model(XS, return_carry=True, **kw)
        return loss(ys, carry), (carry, ys)

    want_grads, want = jax.jit(jax.grad(layer_loss, has_aux=True))(params)
    linen_grads, linen_out = jax.jit(jax.grad(linen_loss, has_aux=True))(params)
    grads_state, nnx_out = nnx.jit(nnx.grad(nnx_loss, has_aux=True))(nnx_model)
    graphdef, _, rest = nnx.split(nnx_model, nnx.Param, ...)
    nnx_grads = nnx.merge(graphdef, grads_state, rest).get_params()  # as LSTMParams etc.
    assert bool(jnp.all(want[1][2] == 0))  # sequence 2 has length 0: all padding
    for got, got_grads in [(linen_out, linen_grads), (nnx_out, nnx_grads)]:
        assert_trees_equal(got, want)
        assert_trees_equal(got_grads, want_grads)


def test_generic_wrapper_matches_named_modules():
    layer = lj.rnn(lj.gru(H, init="pytorch"), remat=True)
    linen_model = ljl.RecurrentLayer(layer, return_carry=True)
    variables = linen_model.init(jax.random.key(0), XS)
    assert_trees_equal(linen_model.apply(variables, XS),
                       layer.apply(from_dict(layer, variables["params"]), XS))
    nnx_model = ljx.RecurrentLayer(I, layer, return_carry=True, rngs=nnx.Rngs(0))
    assert_trees_equal(nnx_model(XS), layer.apply(nnx_model.get_params(), XS))
    # a named module builds the same functional layer as its options say
    assert ljl.GRU(H, init="pytorch", remat=True).layer.config.cell.config == \
        layer.config.cell.config
    assert ljx.GRU(I, H, init="pytorch", rngs=nnx.Rngs(0)).layer.config.cell.config == \
        layer.config.cell.config


def test_time_major_and_unbatched():
    xs_TxBxI = jnp.swapaxes(XS, 0, 1)
    layer = lj.rnn(lj.simple(H, activation="relu"), time_major=True)
    model = ljl.RNN(lj.simple(H, activation="relu"), time_major=True)
    variables = model.init(jax.random.key(0), xs_TxBxI)
    assert_trees_equal(model.apply(variables, xs_TxBxI),
                       layer.apply(from_dict(layer, variables["params"]), xs_TxBxI)[1])
    nnx_model = ljx.LSTM(I, H, rngs=nnx.Rngs(0))
    ys, gates = nnx_model(XS[0], return_gates=True)  # (T, I) -> (T, H)
    assert ys.shape == (T, H) and gates.f.shape == (T, H)


# --- where the params live, and interchange both ways -------------------------------


def test_params_are_plain_dicts_of_the_functional_params():
    """``variables["params"]`` (linen) and ``module.params`` (nnx) hold the functional
    params as nested dicts keyed by field name, only the parts present; ``from_dict`` and
    ``get_params`` give the functional pytree back."""
    layer = CASES["stack"][2]()
    want = jax.eval_shape(lambda: layer.init(jax.random.key(0), I))
    variables = CASES["stack"][0]().init(jax.random.key(0), XS, deterministic=True)
    assert list(variables) == ["params"]
    flat = flax.traverse_util.flatten_dict(variables["params"])
    assert sorted(flat) == sorted(
        [("layers_0", side, name) for side in ("forward", "backward")
         for name in ("w_ih", "w_hh", "b")] + [("layers_1", name)
                                               for name in ("w_ih", "w_hh", "b", "b_hn")])
    assert all(isinstance(leaf, jax.Array) for leaf in flat.values())
    got = from_dict(layer, variables["params"])
    assert isinstance(got, tuple) and isinstance(got[0], lj.Directions)
    assert isinstance(got[0].forward, lj.LSTMParams) and isinstance(got[1], lj.GRUParams)
    assert got[0].forward.w_hr is None and got[0].forward.peephole is None
    assert jax.tree.map(jnp.shape, got) == jax.tree.map(jnp.shape, want)
    assert_trees_equal(to_dict(got), variables["params"], atol=0)

    model = CASES["stack"][1](nnx.Rngs(0))
    assert isinstance(model.params["layers_0"]["forward"]["w_ih"], nnx.Param)
    assert jax.tree.map(jnp.shape, model.get_params()) == jax.tree.map(jnp.shape, want)
    paths = [path for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))]
    assert sorted(paths) == sorted(("params",) + path for path in flat)


def _plain(table: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", table)  # rich's colours off


def test_flatten_dict_and_tabulate_see_arrays_only():
    """Every option on (projection, peepholes, layer norm): each part is an entry of its
    own, nested by name, and nothing is None."""
    model = CASES["lstm"][0]()
    variables = model.init(jax.random.key(0), XS, deterministic=True)
    shapes = {path: leaf.shape
              for path, leaf in flax.traverse_util.flatten_dict(variables["params"]).items()}
    G = 4 * H
    assert shapes == {
        ("w_ih",): (I, G), ("w_hh",): (P, G), ("b",): (G,), ("w_hr",): (H, P),
        ("peephole", "i"): (H,), ("peephole", "f"): (H,), ("peephole", "o"): (H,),
        ("layer_norm", "inputs", "scale"): (G,), ("layer_norm", "recurrent", "scale"): (G,),
        ("layer_norm", "cell", "scale"): (H,), ("layer_norm", "cell", "bias"): (H,)}
    table = _plain(model.tabulate(jax.random.key(0), XS, deterministic=True,
                                  console_kwargs={"width": 200}))
    assert "None" not in table
    count = sum(int(np.prod(shape)) for shape in shapes.values())
    assert f"w_hr: float32[{H},{P}]" in table and f"Total Parameters: {count:,}" in table
    # nnx: tabulating a stack works (its tuple of params broke it)
    nnx_model = ljx.Stack(I, [lj.bidirectional(lj.lstm(H)), lj.gru(H)], rngs=nnx.Rngs(0))
    count = sum(leaf.size for leaf in jax.tree.leaves(nnx_model.get_params()))
    table = _plain(nnx.tabulate(nnx_model, XS, console_kwargs={"width": 200}))
    assert "None" not in table and f"Total Parameters: {count:,}" in table


def test_nnx_set_params_checks_structure_and_shapes():
    model = ljx.LSTM(I, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`params` must have the shapes"):
        model.set_params(lj.lstm(H + 1).init(jax.random.key(0), I))
    with pytest.raises(TypeError, match="`params` must have the structure"):
        model.set_params(lj.lstm(H, bias=False).init(jax.random.key(0), I))


@pytest.mark.parametrize("module, factory", [(ljl.LSTM, lj.lstm), (ljl.GRU, lj.gru),
                                             (ljx.LSTM, lj.lstm), (ljx.GRU, lj.gru)])
def test_modules_expose_every_option_with_the_cores_defaults(module, factory):
    """Every option of the cell and of ``lj.rnn`` under its functional name (``init``
    included, in linen too), with the same default."""
    fields = {n: p.default for n, p in inspect.signature(module).parameters.items()}
    for options in (factory, lj.rnn):
        for name, p in inspect.signature(options).parameters.items():
            if p.kind is p.KEYWORD_ONLY:
                assert fields[name] == p.default, name
    assert "init_preset" not in fields


# --- dropout and zoneout ------------------------------------------------------------


def test_linen_dropout_only_when_not_deterministic():
    model = ljl.Stack((lj.rnn(lj.lstm(H), zoneout=0.2, recurrent_dropout=0.3), lj.gru(H)),
                      dropout=0.5)
    params = model.layer.init(jax.random.key(0), I)
    variables = {"params": to_dict(params)}
    apply = jax.jit(model.apply, static_argnames="deterministic")
    evaluation = apply(variables, XS, deterministic=True)
    assert_trees_equal(evaluation, jax.jit(model.layer.apply)(params, XS)[1])

    def train(key):
        return apply(variables, XS, deterministic=False, rngs={"dropout": key})

    a, again, b = train(jax.random.key(1)), train(jax.random.key(1)), train(jax.random.key(2))
    assert not np.allclose(a, evaluation) and not np.allclose(a, b)
    np.testing.assert_array_equal(a, again)
    # the attribute works too, and the call argument wins over it
    trainer = model.clone(deterministic=False)
    np.testing.assert_array_equal(
        jax.jit(trainer.apply)(variables, XS, rngs={"dropout": jax.random.key(1)}), a)
    with pytest.raises(ValueError, match="`deterministic` must be given"):
        model.apply(variables, XS)


def test_linen_layer_without_dropout_needs_no_rng():
    model = ljl.LSTM(H)
    variables = model.init(jax.random.key(0), XS)  # no `deterministic` needed
    np.testing.assert_array_equal(model.apply(variables, XS, deterministic=False),
                                  model.apply(variables, XS))


def test_nnx_train_eval_and_keys():
    def make():
        return ljx.LSTM(I, H, zoneout=0.2, input_dropout=0.4, rngs=nnx.Rngs(params=0, dropout=5))

    run = nnx.jit(lambda model: model(XS))
    model = make()
    layer, params = model.layer, model.get_params()
    assert model.deterministic is False  # as nnx.Dropout: training mode until eval()
    first, second = run(model), run(model)
    assert not np.allclose(first, second)  # the stream advances between calls
    np.testing.assert_array_equal(run(make()), first)  # reproducible from the Rngs
    model.eval()
    evaluation = run(model)
    assert_trees_equal(evaluation, layer.apply(params, XS)[1])
    key = jax.random.key(3)  # a key given to the call goes to layer.apply as is
    np.testing.assert_array_equal(model(XS, deterministic=False, rngs=key),
                                  layer.apply(params, XS, key=key)[1])
    model.train()
    assert not np.allclose(run(model), evaluation)
    np.testing.assert_array_equal(run(nnx.view(model, deterministic=True)), evaluation)


def test_nnx_layer_without_dropout_keeps_no_stream():
    model = ljx.GRU(I, H, rngs=nnx.Rngs(0))
    assert model.rngs is None
    assert not any(isinstance(v, nnx.RngState) for _, v in nnx.to_flat_state(nnx.state(model)))
    np.testing.assert_array_equal(model(XS), model(XS))


# --- the zero carry draws no randomness ---------------------------------------------


@pytest.mark.parametrize("name", ["lstm", "stack"])
def test_linen_initialize_carry_draws_no_rng(name):
    make_linen, _, _ = CASES[name]
    model = make_linen().clone(input_dropout=0.5) if name == "lstm" else make_linen()
    variables = model.init(jax.random.key(0), XS, deterministic=True)
    want = model.layer.initial_carry(from_dict(model.layer, variables["params"]), (B,))
    # bound, with no rngs at all: make_rng would fail here
    assert_trees_equal(model.apply(variables, (B,), method="initialize_carry"), want, atol=0)
    # unbound: no params and no key
    assert_trees_equal(model.initialize_carry((B,)), want, atol=0)
    with pytest.raises(flax.errors.InvalidRngError):  # the context has no rng to draw
        model.apply(variables, XS, deterministic=False)


def test_nnx_initialize_carry_draws_no_rng():
    model = ljx.Bidirectional(I, lj.rnn(lj.lstm(H, proj_size=P), zoneout=0.1), rngs=nnx.Rngs(0))
    count = model.rngs.count[...]
    carry = model.initialize_carry((B,))
    assert model.rngs.count[...] == count
    assert_trees_equal(carry, model.layer.initial_carry(model.get_params(), (B,)), atol=0)
    assert carry.forward.h.shape == (B, P) and carry.forward.c.shape == (B, H)


# --- transforms ----------------------------------------------------------------------


def test_linen_module_inside_a_model_under_jit():
    model = nn.Sequential([ljl.LSTM(H, return_carry=False), nn.Dense(2)])
    variables = model.init(jax.random.key(0), XS)
    assert sorted(variables["params"]["layers_0"]) == ["b", "w_hh", "w_ih"]
    ys = jax.jit(model.apply)(variables, XS)
    assert ys.shape == (B, T, 2)


def test_nnx_optimizer_and_split_merge_round_trip():
    model = ljx.Stack(I, [lj.lstm(H), lj.gru(H)], dropout=0.2, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        value, grads = nnx.value_and_grad(lambda m: jnp.mean((m(XS) - 1.0) ** 2))(model)
        optimizer.update(model, grads)
        return value

    losses = [float(step(model, optimizer)) for _ in range(3)]
    assert losses[-1] < losses[0]
    model.eval()
    graphdef, state = nnx.split(model)
    copy = nnx.merge(graphdef, state)
    np.testing.assert_array_equal(copy(XS), model(XS))
    pure = jax.jit(lambda state, xs: nnx.merge(graphdef, state)(xs))
    np.testing.assert_allclose(pure(state, XS), model(XS), atol=1e-6)


# --- errors surface with the core's messages -----------------------------------------


def test_errors_from_bad_input():
    linen_model = ljl.LSTM(H)
    variables = linen_model.init(jax.random.key(0), XS)
    nnx_model = ljx.LSTM(I, H, rngs=nnx.Rngs(0))
    wrong_features = jnp.ones((B, T, I + 1))
    for call in (lambda xs, **kw: linen_model.apply(variables, xs, **kw), nnx_model):
        with pytest.raises(ValueError, match=r"`xs` must have 4 features .* got shape \(3, 5, 5\)"):
            call(wrong_features)
        with pytest.raises(TypeError, match="`xs` must have a floating-point dtype"):
            call(jnp.ones((B, T, I), jnp.int32))
        with pytest.raises(ValueError, match=r"`seq_lengths` has shape \(2,\)"):
            call(XS, seq_lengths=jnp.array([1, 2]))
        with pytest.raises(ValueError, match="`carry` must have shapes"):
            call(XS, initial_carry=lj.LSTMState(jnp.zeros((B, H + 1)), jnp.zeros((B, H))))
    with pytest.raises(ValueError, match=r"`xs` must have shape"):
        linen_model.init(jax.random.key(0), jnp.ones((I,)))
    # linen params are checked by key path; a shape that depends on I is left to `xs`
    with pytest.raises(ValueError, match=r"^params\.b is \(28,\) where this model has \(24,\)"):
        linen_model.apply({"params": to_dict(lj.lstm(H + 1).init(jax.random.key(0), I))}, XS)
    with pytest.raises(TypeError, match=r"^'params' holds another structure than this "
                                        r"model's \(unexpected b_hn\)"):
        linen_model.apply({"params": to_dict(lj.gru(H).init(jax.random.key(0), I))}, XS)
    with pytest.raises(TypeError, match=r"\(missing b, w_hh, w_ih\)"):
        linen_model.apply({}, XS)
    with pytest.raises(TypeError, match=r"\(missing w_hr\)"):
        from_dict(lj.rnn(lj.lstm(H, proj_size=P)), variables["params"])
    with pytest.raises(TypeError, match=r"^`params` must be a layer's params \(NamedTuples, "
                                        r"tuples or dicts of arrays\), got int$"):
        to_dict(3)
    with pytest.raises(TypeError, match="^LSTM\\(\\) got an unexpected keyword argument 'peepole'$"):
        ljl.LSTM(H, peepole=True)  # misspelt: the module is named, as lj.lstm names itself
    with pytest.raises(TypeError, match="^GRU\\(\\) got an unexpected keyword argument 'bais'$"):
        ljx.GRU(I, H, bais=False, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="`layer` must be a Layer"):
        ljl.RecurrentLayer(lj.lstm(H)).init(jax.random.key(0), XS)
    with pytest.raises(TypeError, match="`layer` must be a Layer"):
        ljx.RecurrentLayer(I, lj.lstm(H), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`input_size` must be a positive int"):
        ljx.LSTM(0, H, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`hidden_size` must be a positive int"):
        ljl.GRU(0).init(jax.random.key(0), XS)


# --- composition, as flax's own modules compose -------------------------------------


def test_linen_modules_compose_with_cells_layers_and_modules():
    """Bidirectional and Stack take modules as well as cells and layers, and build the
    same functional layer as the functional API."""
    model = ljl.Stack([ljl.Bidirectional(ljl.LSTM(H, init="pytorch"), ljl.GRU(H)),
                       lj.rnn(lj.gru(P), zoneout=0.1), ljl.RecurrentLayer(lj.rnn(lj.lstm(H)))],
                      return_carry=True)
    layer = lj.stack([lj.bidirectional(lj.lstm(H, init="pytorch"), lj.gru(H)),
                      lj.rnn(lj.gru(P), zoneout=0.1), lj.rnn(lj.lstm(H))])
    variables = model.init(jax.random.key(0), XS, deterministic=True)
    params = from_dict(model.layer, variables["params"])
    assert jax.tree.structure(params) == jax.tree.structure(layer.init(jax.random.key(0), I))
    assert_trees_equal(model.apply(variables, XS, seq_lengths=LENGTHS, deterministic=True),
                       layer.apply(params, XS, seq_lengths=LENGTHS))
    assert model.layer.uses_key and not ljl.Bidirectional(ljl.LSTM(H), ljl.LSTM(H)).layer.uses_key


def test_flax_rnn_runs_a_one_cell_module():
    """``flax.linen.RNN(LSTM(H))``: a module that runs one cell is a cell for flax."""
    for module, layer in [(ljl.LSTM(H, proj_size=P), lj.rnn(lj.lstm(H, proj_size=P))),
                          (ljl.RNN(lj.gru(H)), lj.rnn(lj.gru(H)))]:
        flax_rnn = nn.RNN(module, return_carry=True)
        variables = flax_rnn.init(jax.random.key(0), XS)
        params = from_dict(layer, variables["params"]["cell"])
        assert_trees_equal(flax_rnn.apply(variables, XS), layer.apply(params, XS))
    both = nn.Bidirectional(nn.RNN(ljl.LSTM(H)), nn.RNN(ljl.LSTM(H)))
    assert both.apply(both.init(jax.random.key(0), XS), XS).shape == (B, T, 2 * H)
    with pytest.raises(TypeError, match="only a module running one cell"):
        nn.RNN(ljl.Stack([lj.lstm(H)])).init(jax.random.key(0), XS)


def test_nnx_modules_compose_and_keep_their_params():
    forward = ljx.LSTM(I, H, rngs=nnx.Rngs(1))
    first = ljx.Bidirectional(I, forward, lj.gru(H), rngs=nnx.Rngs(2))
    model = ljx.Stack(I, [first, ljx.GRU(2 * H, P, rngs=nnx.Rngs(3))], return_carry=True,
                      rngs=nnx.Rngs(4))
    assert_trees_equal(model.get_params()[0], first.get_params(), atol=0)
    assert_trees_equal(model.get_params()[0].forward, forward.get_params(), atol=0)
    layer = lj.stack([lj.bidirectional(lj.lstm(H), lj.gru(H)), lj.gru(P)])
    assert_trees_equal(model(XS), layer.apply(model.get_params(), XS))
    wrapped = ljx.RecurrentLayer(I, forward, rngs=nnx.Rngs(5))
    assert_trees_equal(wrapped.get_params(), forward.get_params(), atol=0)
    with pytest.raises(ValueError, match="`params` must have the shapes"):
        ljx.Stack(I, [ljx.LSTM(I + 1, H, rngs=nnx.Rngs(0))], rngs=nnx.Rngs(0))


def test_module_options_are_the_functional_arguments():
    """The modules declare no option of their own: their attributes and signatures are
    read from ``lj.rnn``, ``lj.bidirectional`` and ``lj.stack``."""
    for fn, linen_module, nnx_module in [(lj.rnn, ljl.RNN, ljx.RNN),
                                         (lj.bidirectional, ljl.Bidirectional, ljx.Bidirectional),
                                         (lj.stack, ljl.Stack, ljx.Stack)]:
        linen_params = inspect.signature(linen_module).parameters
        nnx_params = inspect.signature(nnx_module).parameters
        for name, p in inspect.signature(fn).parameters.items():
            assert linen_params[name].default == p.default == nnx_params[name].default, name
    # and so are their docstrings
    assert "fused_backward: differentiate" in ljl.RNN.__doc__ and "zoneout:" in ljx.RNN.__doc__
    assert "proj_size: P" in ljl.LSTM.__doc__ and "gate_activation" in ljx.GRU.__doc__


def test_optax_masks_by_name_leave_the_biases_undecayed():
    """A mask built from the names in the params (decay the ``w_*`` matrices only), with
    ``path_aware_map`` or ``tree_map_with_path``, lines up with linen's and nnx's params,
    and one training step decays exactly those."""
    lr, decay = 0.1, 0.5

    def decays(path, _):
        return [k.key for k in path if isinstance(k, jax.tree_util.DictKey)][-1].startswith("w_")

    tx = optax.chain(optax.masked(optax.add_decayed_weights(decay),
                                  lambda p: jax.tree_util.tree_map_with_path(decays, p)),
                     optax.sgd(lr))

    def expected(params, grads):  # by hand: sgd on grads, plus decay on the w_* only
        flat_grads = flax.traverse_util.flatten_dict(grads)
        return flax.traverse_util.unflatten_dict({
            path: w - lr * (flat_grads[path] + (decay * w if path[-1].startswith("w_") else 0))
            for path, w in flax.traverse_util.flatten_dict(params).items()})

    def loss_of(ys):
        return jnp.mean((ys - 1.0) ** 2)

    model = ljl.Stack([ljl.LSTM(H, proj_size=P, peephole=True, layer_norm=True), ljl.GRU(H)])
    params = model.init(jax.random.key(0), XS)["params"]
    mask = flax.traverse_util.path_aware_map(lambda path, _: path[-1].startswith("w_"), params)
    assert mask == jax.tree_util.tree_map_with_path(decays, params)
    assert sorted(k for k, m in flax.traverse_util.flatten_dict(mask).items() if m) == [
        ("layers_0", "w_hh"), ("layers_0", "w_hr"), ("layers_0", "w_ih"),
        ("layers_1", "w_hh"), ("layers_1", "w_ih")]

    @jax.jit
    def step(params, opt_state):
        grads = jax.grad(lambda p: loss_of(model.apply({"params": p}, XS)))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), grads

    new, grads = step(params, tx.init(params))
    assert_trees_equal(new, expected(params, grads))

    nnx_model = ljx.Stack(I, [ljx.LSTM(I, H, proj_size=P, peephole=True, layer_norm=True,
                                       rngs=nnx.Rngs(0)), lj.gru(H)], rngs=nnx.Rngs(1))
    optimizer = nnx.Optimizer(nnx_model, tx, wrt=nnx.Param)
    before = to_dict(nnx_model.get_params())

    @nnx.jit
    def nnx_step(model, optimizer):
        grads = nnx.grad(lambda m: loss_of(m(XS)))(model)
        optimizer.update(model, grads)
        return grads

    grads = nnx_step(nnx_model, optimizer)
    assert_trees_equal(to_dict(nnx_model.get_params()),
                       expected(before, nnx.to_pure_dict(grads)["params"]))

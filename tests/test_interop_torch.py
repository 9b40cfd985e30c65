"""PyTorch interop: parity with nn.LSTM/GRU/RNN, gradients, round trips, errors."""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import lstm_jax as lj  # noqa: E402
from lstm_jax.interop import carry_from_torch, carry_to_torch, from_torch, to_torch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

# Distinct sizes so that a swapped axis fails loudly.
B, T, I, H, P = 3, 7, 5, 6, 4
LENGTHS = np.array([7, 3, 5])  # unsorted, one full-length sequence
ATOL = 1e-5
TORCH_CLASSES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}


# --- helpers ---------------------------------------------------------------------------


def make_module(kind, num_layers=1, bidirectional=False, batch_first=True, proj_size=0,
                bias=True, dropout=0.0, seed=0):
    """A torch module in eval mode whose every parameter (biases included) is random."""
    torch.manual_seed(seed)
    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
                   bias=bias, dropout=dropout)
    if kind == "lstm":
        options["proj_size"] = proj_size
    if kind.startswith("rnn"):
        options["nonlinearity"] = kind.removeprefix("rnn_")
    return TORCH_CLASSES[kind](I, H, **options).eval()


def batch_major_inputs(seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, I)).astype(np.float32)


def layout(xs_BxTxI, batch_first):
    return xs_BxTxI if batch_first else np.ascontiguousarray(xs_BxTxI.transpose(1, 0, 2))


def torch_state(module, seed=2):
    """Random (h0, c0) in torch's layout; c0 is None for GRU/RNN."""
    rows = module.num_layers * (2 if module.bidirectional else 1)
    g = torch.Generator().manual_seed(seed)
    h0 = torch.randn(rows, B, module.proj_size or module.hidden_size, generator=g)
    c0 = torch.randn(rows, B, module.hidden_size, generator=g) if isinstance(module, torch.nn.LSTM) else None
    return h0, c0


def run_torch(module, xs, lengths=None, h0=None, c0=None):
    """(ys, h_n, c_n) as NumPy; packed sequences when ``lengths`` is given."""
    hx = None if h0 is None else (h0 if c0 is None else (h0, c0))
    inputs = torch.from_numpy(xs)
    if lengths is not None:
        inputs = torch.nn.utils.rnn.pack_padded_sequence(
            inputs, torch.as_tensor(lengths), batch_first=module.batch_first, enforce_sorted=False)
    with torch.no_grad():
        ys, state = module(inputs, hx)
    if lengths is not None:
        ys, _ = torch.nn.utils.rnn.pad_packed_sequence(ys, batch_first=module.batch_first, total_length=T)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    return ys.numpy(), h_n.numpy(), None if c_n is None else c_n.numpy()


def as_torch_state(carry):
    """carry_to_torch's result as (h_n, c_n-or-None)."""
    state = carry_to_torch(carry)
    return state if isinstance(state, tuple) else (state, None)


def assert_close(actual, expected, atol=ATOL):
    if expected is None:
        assert actual is None
        return
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=0)


def check_parity(module):
    """Compare ``module`` with its import: full and padded batches, zero and given state.

    One jitted function serves all four cases: lengths and carry are its arguments, and
    full-length ``seq_lengths`` stand for torch's unpacked input.
    """
    layer, params = from_torch(module)
    run = jax.jit(lambda p, xs, n, carry: layer.apply(p, xs, seq_lengths=n, carry=carry))
    xs = layout(batch_major_inputs(), module.batch_first)
    h0, c0 = torch_state(module)
    for padded, given_state in itertools.product([False, True], repeat=2):
        lengths = LENGTHS if padded else np.full(B, T)
        expected = run_torch(module, xs, LENGTHS if padded else None,
                             *((h0, c0) if given_state else (None, None)))
        carry = carry_from_torch(layer, h0, c0) if given_state else layer.initial_carry(params, (B,))
        carry, ys = run(params, jnp.asarray(xs), jnp.asarray(lengths), carry)
        for got, want in zip((ys, *as_torch_state(carry)), expected):
            assert_close(got, want)


# --- forward parity ----------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parity_grid(kind, num_layers, bidirectional, batch_first):
    check_parity(make_module(kind, num_layers, bidirectional, batch_first))


@pytest.mark.parametrize(
    "kind, num_layers, bidirectional, batch_first, proj_size, bias",
    [
        ("lstm", 2, True, True, P, True),
        ("lstm", 3, False, False, P, True),
        ("lstm", 1, True, False, P, False),
        ("gru", 2, True, False, 0, False),
        ("rnn_tanh", 1, False, False, 0, True),
        ("rnn_relu", 2, True, True, 0, False),
    ],
)
def test_parity_options(kind, num_layers, bidirectional, batch_first, proj_size, bias):
    module = make_module(kind, num_layers, bidirectional, batch_first, proj_size=proj_size, bias=bias)
    check_parity(module)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_parity_without_lengths_or_carry(kind):
    """The plain path: ``apply(params, xs)`` with no seq_lengths and no carry."""
    module = make_module(kind, num_layers=2, bidirectional=True, proj_size=P if kind == "lstm" else 0)
    layer, params = from_torch(module)
    xs = batch_major_inputs()
    carry, ys = jax.jit(layer.apply)(params, jnp.asarray(xs))
    for got, want in zip((ys, *as_torch_state(carry)), run_torch(module, xs)):
        assert_close(got, want)


def test_parity_unbatched():
    """torch's unbatched input (T, I) with h0 (L*D, P)."""
    module = make_module("lstm", num_layers=2, bidirectional=True, batch_first=False, proj_size=P)
    layer, params = from_torch(module)
    xs = batch_major_inputs()[0]  # (T, I)
    h0, c0 = (s[:, 0] for s in torch_state(module))
    carry, ys = jax.jit(layer.apply)(params, jnp.asarray(xs), carry=carry_from_torch(layer, h0, c0))
    with torch.no_grad():
        ys_t, (h_t, c_t) = module(torch.from_numpy(xs), (h0, c0))
    h_n, c_n = carry_to_torch(carry)
    assert h_n.shape == (4, P) and c_n.shape == (4, H)
    for got, want in zip((ys, h_n, c_n), (ys_t, h_t, c_t)):
        assert_close(got, want.numpy())


def test_imported_layer_structure():
    module = make_module("lstm", num_layers=2, bidirectional=True, batch_first=False, proj_size=P)
    layer, params = from_torch(module)
    assert layer.config.kind == "stack" and len(layer.config.layers) == 2
    assert layer.time_major and layer.output_size == 2 * P
    bi = layer.config.layers[1].config
    assert bi.kind == "bidirectional" and bi.merge == "concat"
    cell_config = bi.forward.config.cell.config
    assert (cell_config.kind, cell_config.hidden_size, cell_config.proj_size) == ("lstm", H, P)
    assert cell_config.init == "pytorch" and cell_config.forget_bias == 0.0
    p = params[1].backward
    assert isinstance(p, lj.LSTMParams) and p.peephole is None and p.layer_norm is None
    assert p.w_ih.shape == (2 * P, 4 * H) and p.w_hh.shape == (P, 4 * H) and p.w_hr.shape == (H, P)
    assert p.w_ih.dtype == jnp.float32
    w = module.weight_ih_l1_reverse.detach().numpy().copy()
    np.testing.assert_array_equal(p.w_ih, w.T)
    # params are copies: changing the module afterwards leaves them alone
    with torch.no_grad():
        module.weight_ih_l1_reverse.add_(1.0)
    np.testing.assert_array_equal(p.w_ih, w.T)


# --- gradients ---------------------------------------------------------------------------


def direction_params(tree, n, d, bidirectional):
    layer_tree = tree[n]
    return (layer_tree.forward, layer_tree.backward)[d] if bidirectional else layer_tree


def assert_grads_match(kind, jax_grads, module):
    """Every torch parameter gradient against ours, through the documented layout."""
    t = lambda name: getattr(module, name).grad.numpy()  # noqa: E731
    D = 2 if module.bidirectional else 1
    for n in range(module.num_layers):
        for d in range(D):
            g = direction_params(jax_grads, n, d, module.bidirectional)
            sfx = f"_l{n}" + ("_reverse" if d else "")
            assert_close(g.w_ih, t("weight_ih" + sfx).T, 1e-4)
            assert_close(g.w_hh, t("weight_hh" + sfx).T, 1e-4)
            if kind == "lstm" and module.proj_size:
                assert_close(g.w_hr, t("weight_hr" + sfx).T, 1e-4)
            if not module.bias:
                assert g.b is None
                continue
            assert_close(g.b, t("bias_ih" + sfx), 1e-4)
            if kind == "gru":
                assert_close(g.b[: 2 * H], t("bias_hh" + sfx)[: 2 * H], 1e-4)
                assert_close(g.b_hn, t("bias_hh" + sfx)[2 * H :], 1e-4)
            else:
                assert_close(g.b, t("bias_hh" + sfx), 1e-4)


@pytest.mark.parametrize(
    "kind, num_layers, bidirectional, batch_first, proj_size",
    [("lstm", 2, True, True, P), ("gru", 2, True, False, 0), ("rnn_tanh", 2, False, True, 0)],
)
def test_gradients(kind, num_layers, bidirectional, batch_first, proj_size):
    module = make_module(kind, num_layers, bidirectional, batch_first, proj_size=proj_size).train()
    layer, params = from_torch(module)
    rng = np.random.default_rng(3)
    xs = layout(batch_major_inputs(), batch_first)
    h0, c0 = torch_state(module)
    ys_shape = (B, T, layer.output_size) if batch_first else (T, B, layer.output_size)
    w_ys = rng.standard_normal(ys_shape).astype(np.float32)
    w_h = rng.standard_normal(tuple(h0.shape)).astype(np.float32)
    w_c = None if c0 is None else rng.standard_normal(tuple(c0.shape)).astype(np.float32)

    # torch
    xs_t = torch.from_numpy(xs).requires_grad_(True)
    h0_t = h0.clone().requires_grad_(True)
    c0_t = None if c0 is None else c0.clone().requires_grad_(True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        xs_t, torch.as_tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
    out, state = module(packed, h0_t if c0 is None else (h0_t, c0_t))
    ys_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    h_t, c_t = state if c0 is not None else (state, None)
    loss = (ys_t * torch.from_numpy(w_ys)).sum() + (h_t * torch.from_numpy(w_h)).sum()
    if c0 is not None:
        loss = loss + (c_t * torch.from_numpy(w_c)).sum()
    loss.backward()

    # jax
    def loss_fn(params, xs, carry):
        carry, ys = layer.apply(params, xs, seq_lengths=jnp.asarray(LENGTHS), carry=carry)
        h_n, c_n = as_torch_state(carry)
        total = jnp.sum(ys * w_ys) + jnp.sum(h_n * w_h)
        return total if c_n is None else total + jnp.sum(c_n * w_c)

    carry0 = carry_from_torch(layer, h0, c0)
    value, (g_params, g_xs, g_carry) = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1, 2)))(
        params, jnp.asarray(xs), carry0)

    assert_close(value, loss.item(), 1e-4 * max(1.0, abs(loss.item())))
    assert_close(g_xs, xs_t.grad.numpy(), 1e-4)
    g_h0, g_c0 = as_torch_state(g_carry)
    assert_close(g_h0, h0_t.grad.numpy(), 1e-4)
    assert_close(g_c0, None if c0 is None else c0_t.grad.numpy(), 1e-4)
    assert_grads_match(kind.split("_")[0], g_params, module)


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, options",
    [
        ("lstm", dict(num_layers=2, bidirectional=True, proj_size=P, dropout=0.3)),
        ("lstm", dict(num_layers=1, batch_first=False, bias=False)),
        ("gru", dict(num_layers=3, bidirectional=True, batch_first=False)),
        ("rnn_relu", dict(num_layers=2, bias=False)),
        ("rnn_tanh", dict(num_layers=1, bidirectional=True)),
    ],
)
def test_torch_round_trip(kind, options):
    """to_torch(*from_torch(m)) is m again: the same options and the same outputs."""
    module = make_module(kind, **options)
    back = to_torch(*from_torch(module))
    assert type(back) is type(module) and repr(back) == repr(module)
    assert not back.training
    assert all(p.dtype == torch.float32 and p.requires_grad for p in back.parameters())
    xs = layout(batch_major_inputs(), module.batch_first)
    h0, c0 = torch_state(module)
    for lengths in (None, LENGTHS):
        for got, want in zip(run_torch(back, xs, lengths, h0, c0), run_torch(module, xs, lengths, h0, c0)):
            assert_close(got, want, 1e-6)


def random_params(layer, seed=0):
    """Params of ``layer`` with every leaf random, biases included (no eager init ops)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda key: layer.init(key, I), jax.random.key(0))
    return jax.tree.map(lambda s: jnp.asarray(rng.standard_normal(s.shape), s.dtype), shapes)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: lj.stack([lj.bidirectional(lj.lstm(H, proj_size=P))] * 2),
        lambda: lj.stack([lj.rnn(lj.gru(H), time_major=True)] * 3, dropout=0.2),
        lambda: lj.bidirectional(lj.simple(H, activation="relu", bias=False)),
        lambda: lj.rnn(lj.lstm(H, bias=False)),
    ],
    ids=["lstm_bi_proj", "gru_time_major", "simple_relu_bi", "lstm_single_layer"],
)
def test_jax_round_trip(make_layer):
    """from_torch(to_torch(layer, params)) gives back the params exactly."""
    layer = make_layer()
    params = random_params(layer)
    module = to_torch(layer, params)
    assert module.batch_first == (not layer.time_major)
    if layer.config.kind == "stack":
        assert module.dropout == layer.config.dropout
    layer2, params2 = from_torch(module)
    if layer.config.kind != "stack":
        params2 = params2[0]  # a single layer comes back as a one-layer stack
    assert_trees_equal(params2, params)
    assert layer2.output_size == layer.output_size and layer2.time_major == layer.time_major


def test_exported_module_computes_the_layer():
    layer = lj.stack([lj.bidirectional(lj.gru(H), merge="concat"), lj.bidirectional(lj.gru(H))])
    params = random_params(layer, seed=1)
    module = to_torch(layer, params)
    assert list(module.bias_hh_l1_reverse.detach().numpy()[: 2 * H]) == [0.0] * (2 * H)
    xs = batch_major_inputs()
    carry, ys = jax.jit(layer.apply)(params, jnp.asarray(xs), seq_lengths=jnp.asarray(LENGTHS))
    ys_t, h_t, _ = run_torch(module, xs, LENGTHS)
    assert_close(ys, ys_t)
    assert_close(carry_to_torch(carry), h_t)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dtypes_round_trip(dtype):
    module = make_module("gru", num_layers=2, bidirectional=True).to(dtype)
    layer, params = from_torch(module)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(str(dtype).removeprefix("torch."))}
    back = to_torch(layer, params)
    for (name, p), q in zip(module.named_parameters(), back.parameters()):
        assert q.dtype == dtype
        if name.startswith("weight"):
            assert torch.equal(p, q)


# --- cells -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: torch.nn.LSTMCell(I, H),
        lambda: torch.nn.LSTMCell(I, H, bias=False),
        lambda: torch.nn.GRUCell(I, H),
        lambda: torch.nn.GRUCell(I, H, bias=False),
        lambda: torch.nn.RNNCell(I, H),
        lambda: torch.nn.RNNCell(I, H, nonlinearity="relu"),
    ],
    ids=["lstm", "lstm_no_bias", "gru", "gru_no_bias", "rnn_tanh", "rnn_relu"],
)
def test_cell_parity_and_round_trip(make_cell):
    torch.manual_seed(0)
    module = make_cell()
    cell, params = from_torch(module)
    assert isinstance(cell, lj.Cell) and cell.config.init == "pytorch"
    x = batch_major_inputs()[:, 0]  # (B, I)
    g = torch.Generator().manual_seed(4)
    h = torch.randn(B, H, generator=g)
    is_lstm = isinstance(module, torch.nn.LSTMCell)
    state = (h, torch.randn(B, H, generator=g)) if is_lstm else h
    with torch.no_grad():
        expected = module(torch.from_numpy(x), state)
    carry = lj.LSTMState(*(jnp.asarray(s.numpy()) for s in state)) if is_lstm else jnp.asarray(h.numpy())
    carry, y = cell.step(params, carry, jnp.asarray(x))
    if is_lstm:
        assert_close(carry.h, expected[0].numpy())
        assert_close(carry.c, expected[1].numpy())
    else:
        assert_close(carry, expected.numpy())
    assert_close(y, (expected[0] if is_lstm else expected).numpy())

    back = to_torch(cell, params)
    assert type(back) is type(module) and repr(back) == repr(module) and not back.training
    with torch.no_grad():
        again = back(torch.from_numpy(x), state)
    for got, want in zip(jax.tree.leaves(again), jax.tree.leaves(expected)):
        assert_close(got.numpy(), want.numpy(), 1e-6)


# --- dropout -----------------------------------------------------------------------------


def test_dropout_is_imported_and_off_without_a_key():
    module = make_module("lstm", num_layers=2, dropout=0.3)
    layer, params = from_torch(module)
    assert layer.config.dropout == 0.3
    xs = batch_major_inputs()
    _, ys = jax.jit(layer.apply)(params, jnp.asarray(xs))
    assert_close(ys, run_torch(module.eval(), xs)[0])
    assert to_torch(layer, params).dropout == 0.3


# --- carries -----------------------------------------------------------------------------


def test_carry_structure():
    module = make_module("gru", num_layers=2, bidirectional=True)
    layer, params = from_torch(module)
    h0 = np.arange(4 * B * H, dtype=np.float32).reshape(4, B, H)
    carry = carry_from_torch(layer, h0)
    assert isinstance(carry, tuple) and len(carry) == 2
    assert isinstance(carry[1], lj.Directions)
    np.testing.assert_array_equal(carry[1].forward, h0[2])
    np.testing.assert_array_equal(carry[1].backward, h0[3])
    np.testing.assert_array_equal(carry_to_torch(carry), h0)
    # a single (unstacked) layer takes the carry it expects too
    single = lj.rnn(lj.lstm(H, proj_size=P))
    c = carry_from_torch(single, np.zeros((1, P), np.float32), np.ones((1, H), np.float32))
    assert isinstance(c, lj.LSTMState) and c.h.shape == (P,) and c.c.shape == (H,)


# --- errors ------------------------------------------------------------------------------


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match=r"supports torch\.nn\.LSTM.*got Linear"):
        from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="got str"):
        from_torch("LSTM")


def _mixed_layout_stack():
    """A stack whose layers disagree on time_major; lj.stack itself refuses to build one."""
    with pytest.raises(ValueError, match="one layout"):
        lj.stack([lj.rnn(lj.lstm(H)), lj.rnn(lj.lstm(H), time_major=True)])
    model = lj.stack([lj.rnn(lj.lstm(H))] * 2)
    config = dataclasses.replace(model.config, layers=(lj.rnn(lj.lstm(H)), lj.rnn(lj.lstm(H), time_major=True)))
    return model._replace(config=config)


@pytest.mark.parametrize(
    "make_layer, match",
    [
        (lambda: lj.rnn(lj.lstm(H, peephole=True)), "peephole"),
        (lambda: lj.rnn(lj.lstm(H, layer_norm=True)), "layer_norm"),
        (lambda: lj.rnn(lj.lstm(H, coupled=True)), "coupled"),
        (lambda: lj.rnn(lj.lstm(H, activation="relu")), "activation=tanh"),
        (lambda: lj.rnn(lj.gru(H, gate_activation="tanh")), "gate_activation=sigmoid"),
        (lambda: lj.rnn(lj.simple(H, activation="sigmoid")), "'tanh' or 'relu'"),
        (lambda: lj.stack([lj.lstm(H), lj.gru(H)]), r"layer 1 differs from layer 0 \(kind="),
        (lambda: lj.stack([lj.lstm(H), lj.lstm(H + 2)]), r"layer 1 .*hidden_size=8 vs hidden_size=6"),
        (lambda: lj.stack([lj.lstm(H, proj_size=P), lj.lstm(H)]), "proj_size"),
        (lambda: lj.stack([lj.gru(H), lj.gru(H, bias=False)]), "bias=False vs bias=True"),
        (lambda: lj.stack([lj.simple(H), lj.simple(H, activation="relu")]), "nonlinearity"),
        (lambda: lj.stack([lj.bidirectional(lj.lstm(H)), lj.lstm(H)]), "bidirectional"),
        (lambda: lj.bidirectional(lj.lstm(H), merge="sum"), "merge='sum'.*concat"),
        (lambda: lj.bidirectional(lj.lstm(H), lj.lstm(H, proj_size=P)), "forward and backward.*proj_size"),
        (lambda: lj.bidirectional(lj.gru(H), lj.lstm(H)), "forward and backward.*kind"),
        (_mixed_layout_stack, "time_major"),
        (lambda: lj.rnn(lj.lstm(H), input_dropout=0.1), "input_dropout"),
        (lambda: lj.rnn(lj.gru(H), recurrent_dropout=0.1), "recurrent_dropout"),
        (lambda: lj.bidirectional(lj.rnn(lj.lstm(H), zoneout=lj.LSTMState(0.0, 0.1))), "zoneout"),
        (lambda: lj.stack([lj.stack([lj.lstm(H)])]), "'stack' layer"),
        (lambda: lj.rnn(lj.lstm(H, proj_size=H)),
         f"torch's LSTM needs proj_size < hidden_size, got proj_size={H} and hidden_size={H}"),
    ],
)
def test_to_torch_rejects_what_torch_cannot_express(make_layer, match):
    layer = make_layer()
    params = random_params(layer)
    with pytest.raises(ValueError, match=match):
        to_torch(layer, params)


def test_to_torch_rejects_bad_arguments():
    with pytest.raises(TypeError, match="Layer or Cell, got dict"):
        to_torch({}, None)
    cell = lj.lstm(H, proj_size=P)
    with pytest.raises(ValueError, match="LSTMCell has no proj_size"):
        to_torch(cell, random_params(lj.rnn(cell)))
    gru_layer = lj.rnn(lj.gru(H))
    with pytest.raises(ValueError, match="both `b` and `b_hn` or neither"):
        to_torch(gru_layer, random_params(gru_layer)._replace(b_hn=None))
    layer = lj.stack([lj.lstm(H), lj.lstm(H)])
    params = random_params(layer)
    gru_params = random_params(lj.rnn(lj.gru(H)))
    with pytest.raises(TypeError, match="layer 1 must be LSTMParams, got GRUParams"):
        to_torch(layer, (params[0], gru_params))
    with pytest.raises(ValueError, match="must hold 2 layers, got 1"):
        to_torch(layer, params[:1])
    bad = params[1]._replace(w_hh=jnp.zeros((H + 1, 4 * H)))
    with pytest.raises(ValueError, match=r"layer 1: `weight_hh` must have shape \(24, 6\)"):
        to_torch(layer, (params[0], bad))
    with pytest.raises(ValueError, match="expects .*bias_hh"):
        to_torch(layer, (params[0], params[1]._replace(b=None)))
    with pytest.raises(ValueError, match="one dtype"):
        to_torch(layer, (params[0], jax.tree.map(lambda a: a.astype(jnp.bfloat16), params[1])))


def test_carry_from_torch_rejects_bad_shapes():
    lstm_layer, _ = from_torch(make_module("lstm", num_layers=2, bidirectional=True, proj_size=P))
    gru_layer, _ = from_torch(make_module("gru", num_layers=2))
    h0, c0 = np.zeros((4, B, P), np.float32), np.zeros((4, B, H), np.float32)
    with pytest.raises(ValueError, match=r"`h0` must have shape \(L\*D=4, B, P=4\) .*got \(2, 3, 4\)"):
        carry_from_torch(lstm_layer, h0[:2], c0)
    with pytest.raises(ValueError, match=r"`h0` must have shape .*got \(4, 3, 6\)"):
        carry_from_torch(lstm_layer, np.zeros((4, B, H), np.float32), c0)
    with pytest.raises(ValueError, match=r"`h0` must have shape .*got \(4, 1, 3, 4\)"):
        carry_from_torch(lstm_layer, h0[:, None], c0)
    with pytest.raises(ValueError, match=r"`c0` must have shape \(L\*D=4, B, H=6\)"):
        carry_from_torch(lstm_layer, h0, c0[..., :P])
    with pytest.raises(ValueError, match=r"`c0` has batch shape \(2,\) but `h0` has \(3,\)"):
        carry_from_torch(lstm_layer, h0, c0[:, :2])
    with pytest.raises(ValueError, match="`c0` is required"):
        carry_from_torch(lstm_layer, h0)
    with pytest.raises(ValueError, match="`c0` is only for LSTM"):
        carry_from_torch(gru_layer, np.zeros((2, B, H), np.float32), np.zeros((2, B, H), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        carry_from_torch(gru_layer, np.zeros((2, B, H), np.int32))
    with pytest.raises(TypeError, match="Layer, got Cell"):
        carry_from_torch(lj.gru(H), np.zeros((1, B, H), np.float32))


def test_carry_to_torch_rejects_bad_carries():
    with pytest.raises(ValueError, match="no states"):
        carry_to_torch(())
    with pytest.raises(ValueError, match="mixes LSTMState"):
        carry_to_torch((lj.LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H))), jnp.zeros((B, H))))
    with pytest.raises(ValueError, match=r"share one shape, got \[\(3, 4\), \(3, 6\)\]"):
        carry_to_torch((jnp.zeros((B, P)), jnp.zeros((B, H))))


def test_dropout_one_is_accepted_as_torch_does():
    module = make_module("lstm", num_layers=2, dropout=1.0)  # torch: layer 2 reads zeros in training
    layer, params = from_torch(module)
    assert layer.config.dropout == 1.0
    xs = batch_major_inputs()
    _, ys = layer.apply(params, jnp.asarray(xs))
    assert_close(ys, run_torch(module.eval(), xs)[0])  # off without a key
    _, ys = layer.apply(params, jnp.asarray(xs), key=jax.random.key(0))
    assert_close(ys, run_torch(module.train(), xs)[0])  # p=1: torch's training output is exact
    assert to_torch(layer, params).dropout == 1.0

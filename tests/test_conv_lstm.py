"""ConvLSTM: a NumPy float64 reference with the convolution written out, the runner
against stepping by hand, gradients, padding, bf16, gate activations, flax parity, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from tests import reference
from tests.helpers import assert_close

# Distinct sizes so that a swapped axis fails: batch, time, channels in, channels out.
B, T, I, H = 2, 3, 3, 4
LENGTHS = jnp.array([3, 1])
# (kernel size, spatial shape S): 1-, 2- and 3-D, with even kernel sizes among them
SHAPES = {"1d": ((3,), (5,)), "2d": ((3, 2), (4, 3)), "3d": ((2, 1, 3), (3, 2, 4))}


# ---- NumPy float64 reference, written from Shi et al. (2015) -------------------------

def conv_same(x, w):
    """'SAME' cross-correlation, stride 1: x (B, *S, C), w (*K, C, O) -> (B, *S, O).

    An even kernel size k pads (k - 1) // 2 before and k // 2 after.
    """
    K, S = w.shape[:-2], x.shape[1:-1]
    x = np.pad(x, [(0, 0), *(((k - 1) // 2, k // 2) for k in K), (0, 0)])
    y = np.zeros((x.shape[0], *S, w.shape[-1]))
    for offset in np.ndindex(*K):
        window = x[(slice(None), *(slice(o, o + s) for o, s in zip(offset, S)))]
        y += window @ w[offset]
    return y


def step_reference(p, h, c, x, act=np.tanh):
    """One step on x (B, *S, I), h and c (B, *S, H); gates (i, f, g, o) in w's columns."""
    z = conv_same(x, p.w_ih) + conv_same(h, p.w_hh) + (0.0 if p.b is None else p.b)
    zi, zf, zg, zo = np.split(z, 4, axis=-1)
    i, f, g, o = reference.sigmoid(zi), reference.sigmoid(zf), act(zg), reference.sigmoid(zo)
    c = f * c + i * g
    h = o * act(c)
    return h, c, dict(f=f, i=i, g=g, o=o, c=c, h=h)


def run_reference(p, xs, h0, c0, lengths, reverse=False, act=np.tanh):
    """Each sequence of xs (B, T, *S, I) cut to its length: (h, c, ys, gates)."""
    p, xs = reference.to64(p), np.asarray(xs, np.float64)
    h_out, c_out = np.array(h0, np.float64), np.array(c0, np.float64)
    ys, gates = np.zeros((*xs.shape[:-1], H)), {}
    for b, n in enumerate(np.asarray(lengths)):
        h, c = h_out[b : b + 1], c_out[b : b + 1]
        for t in (range(n - 1, -1, -1) if reverse else range(n)):
            h, c, g = step_reference(p, h, c, xs[b : b + 1, t], act)
            ys[b, t] = h[0]
            for name, value in g.items():
                gates.setdefault(name, np.zeros_like(ys))[b, t] = value[0]
        h_out[b], c_out[b] = h[0], c[0]
    return h_out, c_out, ys, gates


# ---- helpers ---------------------------------------------------------------------------

EACH_RANK = pytest.mark.parametrize("rank", ["1d", "2d", "3d"])


def normal(shape, seed, scale=1.0):
    """Drawn by NumPy: eager jax.random would compile for every new shape."""
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def make(rank, seed=0, channels=I, **options):
    """A cell and params with every entry non-zero (cell.init is tested on its own)."""
    cell = lj.conv_lstm(H, SHAPES[rank][0], **options)
    K = cell.config.kernel_size
    params = lj.ConvLSTMParams(w_ih=normal((*K, channels, 4 * H), seed, 0.3),
                               w_hh=normal((*K, H, 4 * H), seed + 1, 0.3),
                               b=normal((4 * H,), seed + 2, 0.3) if cell.config.bias else None)
    return cell, params


def inputs(rank, batch=(B, T), seed=1, channels=I):
    return normal((*batch, *SHAPES[rank][1], channels), seed)


def random_state(rank, batch=(B,), seed=7):
    shape = (*batch, *SHAPES[rank][1], H)
    return lj.LSTMState(h=normal(shape, seed), c=normal(shape, seed + 1))


# ---- parity with the reference ---------------------------------------------------------

@EACH_RANK
def test_step_matches_numpy_reference(rank):
    cell, params = make(rank)
    state, x = random_state(rank), inputs(rank, batch=(B,), seed=3)
    new, y = jax.jit(cell.step)(params, state, x)
    h, c, _ = step_reference(reference.to64(params), *(np.asarray(a, np.float64)
                                                        for a in (state.h, state.c, x)))
    assert new.h.shape == y.shape == (B, *SHAPES[rank][1], H)
    assert_close(new.h, h)
    assert_close(new.c, c)
    assert_close(y, h)


@pytest.mark.parametrize("rank, reverse", [("1d", True), ("2d", False), ("3d", True)])
def test_layer_matches_numpy_reference(rank, reverse):
    cell, params = make(rank)
    xs, state = inputs(rank), random_state(rank)
    carry, ys, gates = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, carry=state,
                                          reverse=reverse, return_gates=True)
    h, c, want_ys, want_gates = run_reference(params, xs, state.h, state.c, LENGTHS, reverse)
    assert_close(ys, want_ys)
    assert_close(carry.h, h)
    assert_close(carry.c, c)
    assert isinstance(gates, lj.LSTMGates)
    for name in gates._fields:  # (B, T, *S, H) each, zero at padding
        assert getattr(gates, name).shape == ys.shape == (B, T, *SHAPES[rank][1], H)
        assert_close(getattr(gates, name), want_gates[name])


def test_no_bias_and_other_activations_match_reference():
    cell, params = make("1d", bias=False, activation="identity")
    assert params.b is None
    xs, state = inputs("1d"), random_state("1d")
    _, ys = lj.rnn(cell).apply(params, xs, carry=state)
    want = run_reference(params, xs, state.h, state.c, [T, T], act=lambda a: a)[2]
    assert_close(ys, want)


def test_layer_equals_stepping_the_cell_by_hand():
    """Every layout of lj.rnn is the cell's step in a loop: batch- and time-major,
    hoisted or not, unbatched, several batch axes."""
    cell, params = make("2d")
    xs = inputs("2d")
    carry, ys = jax.jit(lj.rnn(cell, hoist=True).apply)(params, xs, seq_lengths=LENGTHS)
    step = jax.jit(cell.step)
    for b, n in enumerate(LENGTHS.tolist()):
        state = cell.initial_carry(params, SHAPES["2d"][1])  # unbatched: (*S)
        for t in range(n):
            state, y = step(params, state, xs[b, t])
            assert_close(ys[b, t], y, atol=1e-6)
        assert not jnp.any(ys[b, n:])
        assert_close(carry.h[b], state.h, atol=1e-6)
        assert_close(carry.c[b], state.c, atol=1e-6)
    _, ys_tm = lj.rnn(cell, time_major=True).apply(params, jnp.moveaxis(xs, 1, 0),
                                                   seq_lengths=LENGTHS)
    assert_close(jnp.moveaxis(ys_tm, 0, 1), ys, atol=1e-6)
    _, ys_one = lj.rnn(cell).apply(params, xs[1, :1])  # (T, *S, I), no batch axis
    assert_close(ys_one, ys[1, :1], atol=1e-6)
    _, ys_2b = lj.rnn(cell).apply(params, xs[None], seq_lengths=LENGTHS[None])  # batch (1, B)
    assert_close(ys_2b[0], ys, atol=1e-6)


def test_padding_never_changes_valid_outputs():
    cell, params = make("1d")
    xs = inputs("1d")
    noise = jnp.where((jnp.arange(T)[None, :] >= LENGTHS[:, None])[:, :, None, None],
                      100.0 * inputs("1d", seed=5), 0.0)
    layer = lj.rnn(lj.conv_lstm(H, 3, spatial_dims=1))  # the same cell, built from an int
    apply = jax.jit(layer.apply, static_argnames="reverse")
    for reverse in (False, True):
        clean = apply(params, xs, seq_lengths=LENGTHS, reverse=reverse)
        noisy = apply(params, xs + noise, seq_lengths=LENGTHS, reverse=reverse)
        for a, b in zip(jax.tree.leaves(clean), jax.tree.leaves(noisy)):
            assert_close(a, b, atol=1e-6)


def test_bidirectional_stack_and_dropout_compose():
    """A bidirectional layer's channels are (forward, backward), and the next layer reads
    2H channels; dropout between layers and on h_{t-1} runs with a key."""
    cell, forward = make("1d")
    backward, top = make("1d", seed=3)[1], make("1d", seed=6, channels=2 * H)[1]
    params = (lj.Directions(forward, backward), top)
    model = lj.stack([lj.bidirectional(lj.rnn(cell)), lj.rnn(cell, recurrent_dropout=0.3)],
                     dropout=0.2)
    shapes = jax.eval_shape(lambda k: model.init(k, I), jax.random.key(0))
    assert shapes == jax.eval_shape(lambda: params)
    xs = inputs("1d")
    apply = jax.jit(model.apply)
    carry, ys = apply(params, xs, seq_lengths=LENGTHS, key=jax.random.key(1))
    assert ys.shape == (B, T, 5, H) and carry[1].c.shape == (B, 5, H)
    assert bool(jnp.all(jnp.isfinite(ys))) and not jnp.any(ys[1, 1:])


def test_learned_initial_carry_is_per_channel():
    """learn_initial_carry: h_0, c_0 (H,) broadcast over batch and space, as carry=;
    weight_drop (on the recurrent kernel) does nothing without a key."""
    cell, params = make("2d")
    learned = lj.LSTMState(h=normal((H,), 11), c=normal((H,), 12))
    xs = inputs("2d")
    layer = lj.rnn(cell, learn_initial_carry=True, weight_drop=0.5)
    shapes = jax.eval_shape(lambda k: layer.init(k, I), jax.random.key(0)).initial_carry
    assert jax.tree.map(jnp.shape, shapes) == lj.LSTMState((H,), (H,))
    carry, ys = layer.apply(lj.RNNParams(params, learned), xs, seq_lengths=LENGTHS)
    start = jax.tree.map(lambda a: jnp.broadcast_to(a, (B, *SHAPES["2d"][1], H)), learned)
    want = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, carry=start)
    for a, b in zip(jax.tree.leaves((carry, ys)), jax.tree.leaves(want)):
        assert_close(a, b, atol=1e-6)


def test_resets_and_all_states_over_space():
    """A reset at t restarts the whole sequence (every position of S) from the initial
    carry; the states are the carries, (B, T, *S, H) per field."""
    cell, params = make("1d")
    xs = inputs("1d")
    resets = jnp.array([[False, True, False], [False, False, False]])
    layer = lj.rnn(cell)
    _, ys, states = layer.apply(params, xs, resets=resets, return_all_states=True)
    assert states.c.shape == ys.shape == (B, T, 5, H)
    assert_close(states.h, ys, atol=1e-6)
    _, after = layer.apply(params, xs[:1, 1:])
    assert_close(ys[:1, 1:], after, atol=1e-6)


# ---- gradients and precision -----------------------------------------------------------

def test_check_grads(rank="1d"):
    """Forward and reverse mode through plain autodiff, and reverse mode through the
    fused backward pass, whose weight gradients are the convolutions' own vjps."""
    cell = lj.conv_lstm(H, SHAPES[rank][0], param_dtype=jnp.float64)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: a.astype(jnp.float64),
                              make(rank)[1])
        xs = inputs(rank, batch=(2, 2)).astype(jnp.float64)
        state = jax.tree.map(lambda a: a.astype(jnp.float64), random_state(rank))
        for fused, modes in ((False, ["fwd", "rev"]), (True, ["rev"])):
            layer = lj.rnn(cell, fused_backward=fused)

            def f(params, xs, carry):
                return layer.apply(params, xs, carry=carry, seq_lengths=jnp.array([2, 1]),
                                   reverse=True)

            check_grads(jax.jit(f), (params, xs, state), order=1, modes=modes)


def test_bfloat16_params_and_mixed_policy_run_close_to_float32():
    low_cell = lj.conv_lstm(H, (3, 2), param_dtype=jnp.bfloat16)
    assert {a.dtype for a in jax.tree.leaves(jax.eval_shape(
        lambda k: low_cell.init(k, I), jax.random.key(0)))} == {jnp.dtype(jnp.bfloat16)}
    f32_params = make("2d")[1]
    low_params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), f32_params)
    xs = inputs("2d")

    def run(cell, params, xs):
        def loss(p):
            ys = lj.rnn(cell).apply(p, xs, seq_lengths=LENGTHS)[1]
            return jnp.mean(jnp.square(ys.astype(jnp.float32)))
        return jax.jit(jax.value_and_grad(loss))(params)

    ref_loss, ref_grads = run(lj.conv_lstm(H, (3, 2)), f32_params, xs)
    mixed = lj.conv_lstm(H, (3, 2), dtype=jnp.bfloat16)
    for cell, params, x in ((low_cell, low_params, xs.astype(jnp.bfloat16)),
                            (mixed, f32_params, xs)):
        loss, grads = run(cell, params, x)
        assert abs(float(loss) - float(ref_loss)) < 0.05 * float(ref_loss)
        for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
            assert g.dtype == params.w_ih.dtype
            g = np.asarray(g, np.float32)
            assert float(np.max(np.abs(g - g_ref))) < 0.25 * float(np.max(np.abs(g_ref)))
    carry, ys = jax.eval_shape(lj.rnn(mixed).apply, f32_params, xs)
    assert ys.dtype == jnp.bfloat16 and carry.c.dtype == jnp.float32  # compute, param dtypes


def test_init_layout_and_forget_bias():
    """Kernels (*K, in, 4H) in both presets; the forget block of b starts at forget_bias."""
    flax = jax.eval_shape(lambda k: lj.conv_lstm(H, (3, 2)).init(k, I), jax.random.key(0))
    cell = lj.conv_lstm(H, (3, 2), forget_bias=2.5, init="pytorch",
                        bias_init=lj.initializers.zeros())
    params = jax.jit(cell.init, static_argnums=1)(jax.random.key(0), I)
    for p in (flax, params):
        assert isinstance(p, lj.ConvLSTMParams)
        assert p.w_ih.shape == (3, 2, I, 4 * H) and p.w_hh.shape == (3, 2, H, 4 * H)
    assert float(jnp.max(jnp.abs(params.w_hh))) <= H**-0.5  # PyTorch's uniform ±1/sqrt(H)
    np.testing.assert_array_equal(params.b, np.repeat([0.0, 2.5, 0.0, 0.0], H))  # (i, f, g, o)
    assert cell.config.kind == "conv_lstm" and lj.KINDS["conv_lstm"].factory is lj.conv_lstm
    assert lj.conv_lstm(H).config.kernel_size == (3, 3)  # an int alone: two spatial axes
    assert lj.conv_lstm(H, 5, spatial_dims=3).config.kernel_size == (5, 5, 5)


# ---- flax ------------------------------------------------------------------------------

@pytest.mark.parametrize("rank, use_bias", [("1d", True), ("2d", True), ("2d", False)])
def test_from_flax_matches_flax_over_a_sequence(rank, use_bias):
    nn = pytest.importorskip("flax.linen")
    flax_cell = nn.ConvLSTMCell(features=H, kernel_size=SHAPES[rank][0], use_bias=use_bias)
    xs = inputs(rank)
    flax_state = tuple(random_state(rank))[::-1]  # flax's (c, h)
    K, G = SHAPES[rank][0], 4 * H
    entries = {"ih": (I, 3), "hh": (H, 5)}  # biases (and so the f block) non-zero
    variables = {"params": {name: {"kernel": normal((*K, n, G), seed, 0.3),
                                   **({"bias": normal((G,), seed + 1, 0.3)} if use_bias else {})}
                            for name, (n, seed) in entries.items()}}
    cell, params = lj.interop.from_flax(flax_cell, variables)
    assert cell.config.kernel_size == SHAPES[rank][0] and params.b is not None

    flax_carry, flax_ys = nn.RNN(flax_cell, return_carry=True).apply(
        {"params": {"cell": variables["params"]}}, xs)
    carry, ys = lj.rnn(cell).apply(params, xs)
    assert_close(ys, flax_ys)
    assert_close(carry.c, flax_carry[0])
    assert_close(carry.h, flax_carry[1])
    state = lj.interop.flax_linen.carry_from_flax(cell, flax_state)
    assert lj.interop.flax_linen.carry_to_flax(cell, state)[0] is flax_state[0]

    if use_bias:  # and back: flax's cell computes the same with the exported variables
        back_cell, back = lj.interop.to_flax(cell, params)
        assert_close(back_cell.apply(back, flax_state, xs[:, 0])[1],
                     flax_cell.apply(variables, flax_state, xs[:, 0])[1])


def test_flax_conversion_errors():
    nn = pytest.importorskip("flax.linen")
    cell, params = make("2d")
    variables = {"params": {name: {"kernel": jnp.zeros((3, 2, n, 4 * H)), "bias": jnp.zeros(4 * H)}
                            for name, n in (("ih", I), ("hh", H))}}
    with pytest.raises(ValueError, match=r"padding='VALID'\) pads otherwise"):
        lj.interop.from_flax(nn.ConvLSTMCell(H, (3, 2), padding="VALID"), variables)
    with pytest.raises(ValueError, match=r"strides=\(2, 1\)\) strides otherwise"):
        lj.interop.from_flax(nn.ConvLSTMCell(H, (3, 2), strides=(2, 1)), variables)
    with pytest.raises(ValueError, match=r"'hh/kernel' has shape \(3, 2, 4, 16\), expected "
                                         r"\(3, 3, 4, 16\)"):
        lj.interop.from_flax(nn.ConvLSTMCell(H, (3, 3)), {"params": {
            "ih": {"kernel": jnp.zeros((3, 3, I, 4 * H)), "bias": jnp.zeros(4 * H)},
            "hh": variables["params"]["hh"]}})
    with pytest.raises(ValueError, match="cannot express a ConvLSTM with bias=False"):
        lj.interop.to_flax(lj.conv_lstm(H, (3, 2), bias=False), params._replace(b=None))
    with pytest.raises(ValueError, match="activations other than sigmoid gates and tanh"):
        lj.interop.to_flax(lj.conv_lstm(H, (3, 2), activation="relu"), params)


# ---- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("options, error, message", [
    (dict(kernel_size=(3, 3, 3, 3)), ValueError,
     r"must have 1, 2 or 3 entries .* got \(3, 3, 3, 3\)"),
    (dict(kernel_size=()), ValueError, r"must have 1, 2 or 3 entries"),
    (dict(kernel_size=(3, 0)), TypeError, r"`kernel_size` must be a positive int .* got \(3, 0\)"),
    (dict(kernel_size=True), TypeError, r"`kernel_size` must be a positive int"),
    (dict(kernel_size=(3, 3), spatial_dims=1), ValueError,
     r"`kernel_size` \(3, 3\) has 2 entries but `spatial_dims=1`"),
    (dict(kernel_size=3, spatial_dims=4), ValueError, r"`spatial_dims` must be 1, 2 or 3, got 4"),
    (dict(kernel_size=3, spatial_dims=2.0), ValueError,
     r"`spatial_dims` must be 1, 2 or 3, got 2.0"),
    (dict(kernel_size=3, stride=2), TypeError, r"conv_lstm\(\) got an unexpected keyword"),
])
def test_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        lj.conv_lstm(H, **options)


def test_bad_inputs_name_the_spatial_axes():
    cell, params = make("2d")
    layer = lj.rnn(cell)
    with pytest.raises(ValueError, match=r"`xs` must have shape \(B, T, \*S, I\), "
                                         r"\(\*batch, T, \*S, I\) or "
                                         r"\(T, \*S, I\) with 2 spatial axes S, got shape "
                                         r"\(3, 4, 3\)"):
        layer.apply(params, jnp.zeros((3, 4, I)))  # no time axis left: (B, T, I) of a dense cell
    with pytest.raises(ValueError, match=r"\(T, B, \*S, I\)"):
        lj.rnn(cell, time_major=True).apply(params, jnp.zeros((3, 4, I)))
    with pytest.raises(ValueError, match=r"`xs` must have 3 features on its last axis"):
        layer.apply(params, inputs("2d", channels=2))
    with pytest.raises(ValueError, match=r"`seq_lengths` has shape \(3,\) but `xs` has batch "
                                         r"shape \(2,\)"):
        layer.apply(params, inputs("2d"), seq_lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"`x_t` must have shape \(\*batch, \*S, I\) with 2 "
                                         r"spatial axes S, got shape \(4, 3\)"):
        cell.step(params, random_state("2d", batch=()), jnp.zeros((4, I)))
    with pytest.raises(ValueError, match=r"`carry` must have shapes and dtypes"):
        layer.apply(params, inputs("2d"), carry=random_state("2d", batch=(1,)))
    with pytest.raises(TypeError, match=r"`params` must be ConvLSTMParams for a conv_lstm cell"):
        cell.step(lj.LSTMParams(*[None] * 6), random_state("2d"), inputs("2d", (B,)))

"""The LSTM variants of Greff et al. (2017) as ``lj.lstm`` options: each against a NumPy
float64 step written here from the paper's equations, gradients, the fused backward
pass, parameter shapes, invalid combinations, wrappers and interop."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax.cells.lstm import cudnn_unsupported
from lstm_jax.nn import linen as ljl
from lstm_jax.nn import nnx as ljx
from lstm_jax.nn import to_dict
from tests.helpers import assert_close, assert_trees_close

B, T, I, H = 3, 4, 2, 3
LENGTHS = jnp.array([4, 2, 0])
XS = jax.random.normal(jax.random.key(1), (B, T, I))

# name: (lj.lstm options, the gates with weights in w_ih's column order, candidate
# activation, cell-output activation); Greff's vanilla LSTM has peepholes
VARIANTS = {
    "vanilla": (dict(peephole=True), "ifgo", np.tanh, np.tanh),
    "NIG": (dict(peephole=True, input_gate=False), "fgo", np.tanh, np.tanh),
    "NFG": (dict(peephole=True, forget_gate=False), "igo", np.tanh, np.tanh),
    "NOG": (dict(peephole=True, output_gate=False), "ifg", np.tanh, np.tanh),
    "NIAF": (dict(peephole=True, candidate_activation="identity"), "ifgo", None, np.tanh),
    "NOAF": (dict(peephole=True, cell_activation="linear"), "ifgo", np.tanh, None),
    "NP": (dict(), "ifgo", np.tanh, np.tanh),
    "CIFG": (dict(peephole=True, coupled=True), "fgo", np.tanh, np.tanh),
    "FGR": (dict(peephole=True, gate_recurrence=True), "ifgo", np.tanh, np.tanh),
}
NAMES = list(VARIANTS)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def greff_step(p, h, c, prev, x, blocks, act_g, act_c, coupled):
    """Greff et al.'s equations (Section 2) for one step of (I,) x: returns h, c and the
    gates {i, f, o} (a gate without weights is the constant 1). CIFG is written with the
    forget gate kept: i = 1 - f, as σ(-z) = 1 - σ(z) makes it Greff's f = 1 - i."""
    z = x @ p.w_ih + h @ p.w_hh + p.b
    z = {name: z[k * H : (k + 1) * H] for k, name in enumerate(blocks)}
    gated = [name for name in "ifo" if name in blocks]
    if p.w_gg is not None:  # FGR: R_{a<-b} b_{t-1} for every pair of gates
        for k_to, to in enumerate(gated):
            for k_from, frm in enumerate(gated):
                r = p.w_gg[k_from * H : (k_from + 1) * H, k_to * H : (k_to + 1) * H]
                z[to] = z[to] + prev[frm] @ r

    def peep(name, cell):
        return 0.0 if p.peephole is None else getattr(p.peephole, name) * cell

    f = sigmoid(z["f"] + peep("f", c)) if "f" in z else np.ones(H)
    i = sigmoid(z["i"] + peep("i", c)) if "i" in z else np.ones(H)
    if coupled:
        i = 1.0 - f
    g = z["g"] if act_g is None else act_g(z["g"])
    c = f * c + i * g
    o = sigmoid(z["o"] + peep("o", c)) if "o" in z else np.ones(H)
    h = o * (c if act_c is None else act_c(c))
    return h, c, dict(i=i, f=f, o=o)


def greff_run(name, p, xs, lengths, carry, reverse=False):
    """The reference over (B, T, I) xs, one sequence at a time, each cut to its length
    (and reversed within it): (h, c, gates or None) finals and ys (B, T, H)."""
    options, blocks, act_g, act_c = VARIANTS[name]
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
    xs = np.asarray(xs, np.float64)
    gated = [n for n in "ifo" if n in blocks]
    ys, finals = np.zeros(xs.shape[:2] + (H,)), []
    for b in range(xs.shape[0]):
        h, c = (np.asarray(a[b], np.float64) for a in carry[:2])
        prev = {}
        if len(carry) == 3:
            prev = {n: np.asarray(carry[2][b, k * H : (k + 1) * H], np.float64)
                    for k, n in enumerate(gated)}
        steps = range(int(lengths[b]))
        for t in (reversed(steps) if reverse else steps):
            h, c, gates = greff_step(p, h, c, prev, xs[b, t], blocks, act_g, act_c,
                                     options.get("coupled", False))
            prev = {n: gates[n] for n in gated}
            ys[b, t] = h
        fgr = len(carry) == 3
        finals.append((h, c, np.concatenate([prev[n] for n in gated]) if fgr else None))
    return [np.stack(parts) if parts[0] is not None else None for parts in zip(*finals)], ys


def setup(name, **extra):
    """A layer of the variant, params drawn uniformly (pytorch preset: peepholes and
    biases nonzero) and a random initial carry (gates in (0, 1))."""
    cell = lj.lstm(H, init="pytorch", **VARIANTS[name][0], **extra)
    layer = lj.rnn(cell)
    params = layer.init(jax.random.key(0), I)
    zeros = layer.initial_carry(params, (B,))
    keys = jax.random.split(jax.random.key(2), len(zeros))
    carry = type(zeros)(*(jax.random.uniform(k, z.shape, z.dtype, 0.1, 0.9)
                          for k, z in zip(keys, zeros)))
    return cell, layer, params, carry


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_variant_matches_greff_equations(name, reverse):
    _, layer, params, carry = setup(name)
    final, ys = layer.apply(params, XS, seq_lengths=LENGTHS, carry=carry, reverse=reverse)
    want_final, want_ys = greff_run(name, params, XS, LENGTHS, carry, reverse)
    assert_close(ys, want_ys)
    assert isinstance(final, lj.LSTMGateState if name == "FGR" else lj.LSTMState)
    for got, want in zip(final, want_final):
        assert_close(got, want)
    assert_close(final.h[2], carry.h[2])  # a length-0 sequence keeps its carry


@pytest.mark.parametrize("name", NAMES)
def test_param_shapes(name):
    options, blocks, _, _ = VARIANTS[name]
    params = lj.lstm(H, **options).init(jax.random.key(0), input_size=I)
    G = len(blocks) * H
    assert (params.w_ih.shape, params.w_hh.shape, params.b.shape) == ((I, G), (H, G), (G,))
    gated = [n for n in "ifo" if n in blocks]
    if options.get("peephole"):
        for n in "ifo":
            assert (getattr(params.peephole, n) is None) == (n not in gated), n
    else:
        assert params.peephole is None
    K = len(gated) * H
    assert (None if params.w_gg is None else params.w_gg.shape) == (
        (K, K) if name == "FGR" else None)
    f = blocks.index("f") if "f" in blocks else None  # forget_bias=1 lands on f alone
    for k in range(len(blocks)):
        assert np.all(np.asarray(params.b[k * H : (k + 1) * H]) == (1.0 if k == f else 0.0))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_finite_differences(name):
    with jax.enable_x64(True):
        _, layer, params, carry = setup(name, param_dtype=jnp.float64)
        xs = XS.astype(jnp.float64)

        def loss(params, xs, carry):
            final, ys = layer.apply(params, xs, seq_lengths=LENGTHS, carry=carry)
            return jnp.sum(ys**2) + sum(jnp.sum(jnp.sin(a)) for a in final)

        check_grads(jax.jit(loss), (params, xs, carry), order=1, modes=["rev"], eps=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_fused_backward_equals_autodiff(name):
    cell, _, params, carry = setup(name)

    def grads(fused):
        layer = lj.rnn(cell, fused_backward=fused)

        def loss(params, xs, carry):
            final, ys = layer.apply(params, xs, seq_lengths=LENGTHS, carry=carry, reverse=True)
            return jnp.sum(ys**2) + sum(jnp.sum(jnp.sin(a)) for a in final)

        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, XS, carry)

    assert_trees_close(grads(True), grads(False))


@pytest.mark.parametrize("options, message", [
    (dict(coupled=True, input_gate=False),
     "`coupled=True` cannot be combined with `input_gate=False`: the coupled input gate is "
     "i_t = 1 - f_t, which needs both gates"),
    (dict(coupled=True, forget_gate=False),
     "`coupled=True` cannot be combined with `forget_gate=False`: the coupled input gate is "
     "i_t = 1 - f_t, which needs both gates"),
    (dict(peephole=True, input_gate=False, forget_gate=False, output_gate=False),
     "`peephole=True` cannot be combined with `input_gate=False`, `forget_gate=False` and "
     "`output_gate=False`: it feeds gates and none is left"),
    (dict(gate_recurrence=True, input_gate=False, forget_gate=False, output_gate=False),
     "`gate_recurrence=True` cannot be combined with `input_gate=False`, "
     "`forget_gate=False` and `output_gate=False`: it feeds gates and none is left"),
    (dict(cell_activation="softsign"),
     "`cell_activation` must be one of ['identity', 'linear', 'relu', 'sigmoid', 'tanh'], "
     "got 'softsign'"),
])
def test_invalid_combinations_name_both_options(options, message):
    with pytest.raises(ValueError) as error:
        lj.lstm(H, **options)
    assert str(error.value) == message


def test_gate_recurrence_through_bidirectional_gates_and_bfloat16():
    """FGR's carry travels through a bidirectional layer; return_gates reports a gate
    without weights as ones (zeros at padding); bfloat16 compute stays close."""
    cell = lj.lstm(H, init="pytorch", gate_recurrence=True, output_gate=False)
    bi = lj.bidirectional(cell)
    params = bi.init(jax.random.key(0), I)
    carry, ys = bi.apply(params, XS, seq_lengths=LENGTHS)
    assert isinstance(carry.backward, lj.LSTMGateState) and carry.backward.gates.shape == (B, 2 * H)
    layer = lj.rnn(cell)
    _, forward = layer.apply(params.forward, XS, seq_lengths=LENGTHS)
    _, backward = layer.apply(params.backward, XS, seq_lengths=LENGTHS, reverse=True)
    assert_close(ys, jnp.concatenate([forward, backward], axis=-1))
    _, _, gates = layer.apply(params.forward, XS, seq_lengths=LENGTHS, return_gates=True)
    valid = np.arange(T)[None, :] < np.asarray(LENGTHS)[:, None]
    np.testing.assert_array_equal(np.asarray(gates.o), np.where(valid[..., None], 1.0, 0.0)
                                  * np.ones((B, T, H)))
    low = lj.rnn(lj.lstm(H, init="pytorch", gate_recurrence=True, output_gate=False,
                         dtype=jnp.bfloat16))
    _, ys_low = low.apply(params.forward, XS, seq_lengths=LENGTHS)
    assert ys_low.dtype == jnp.bfloat16
    assert_close(ys_low, forward, atol=3e-2, rtol=3e-2)


def test_flax_modules_take_the_new_options():
    """The linen and nnx modules read their options from lj.lstm's signature: the new
    ones pass through and run the same math as the functional layer."""
    options = dict(input_gate=False, candidate_activation="identity", gate_recurrence=True)
    layer = lj.rnn(lj.lstm(H, **options))
    params = layer.init(jax.random.key(7), I)
    carry, ys = layer.apply(params, XS, seq_lengths=LENGTHS)
    got = ljl.LSTM(H, **options).apply({"params": to_dict(params)}, XS, seq_lengths=LENGTHS,
                                       return_carry=True)
    assert_trees_close(got, (carry, ys), atol=0, rtol=0)
    module = ljx.LSTM(I, H, **options, rngs=nnx.Rngs(0))
    module.set_params(params)
    assert_trees_close(module(XS, seq_lengths=LENGTHS, return_carry=True), (carry, ys),
                       atol=0, rtol=0)


@pytest.mark.parametrize("options, change", [
    (dict(input_gate=False), "input_gate=False"),
    (dict(forget_gate=False), "forget_gate=False"),
    (dict(output_gate=False), "output_gate=False"),
    (dict(gate_recurrence=True), "gate_recurrence=True"),
])
def test_interop_and_cudnn_reject_what_they_cannot_express(options, change):
    layer = lj.rnn(lj.lstm(H, **options))
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match=f"torch has no LSTM with {change}"):
        lj.interop.to_torch(layer, params)
    with pytest.raises(ValueError, match=change):
        lj.interop.to_flax(layer.cell, params)
    assert cudnn_unsupported(layer.cell.config) == f"cuDNN's LSTM has no `{change}`"
    assert layer.cell.cudnn_weights is None


@pytest.mark.parametrize("options", [dict(candidate_activation="identity"),
                                     dict(cell_activation="identity")])
def test_interop_rejects_other_candidate_or_cell_activations(options):
    layer = lj.rnn(lj.lstm(H, **options))
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="torch's LSTM uses tanh for the candidate"):
        lj.interop.to_torch(layer, params)
    with pytest.raises(ValueError, match="candidate_activation or cell_activation other"):
        lj.interop.to_flax(layer.cell, params)
    assert cudnn_unsupported(layer.cell.config) == (
        "cuDNN's LSTM uses sigmoid gates and tanh, no other activations")


# ---- chrono initialisation (Tallec & Ollivier, 2018) --------------------------------------

def test_chrono_init_draws_the_forget_bias_log_uniform_and_the_input_bias_its_negative():
    T, H = 120, 256
    b = np.asarray(lj.lstm(H, chrono_init=T).init(jax.random.key(0), 3).b)
    i, f, g, o = np.split(b, 4)
    assert np.all((f >= 0) & (f <= np.log(T - 1))) and np.array_equal(i, -f)
    assert abs(np.exp(f).mean() - T / 2) < 8  # exp(b_f) ~ U(1, T - 1): mean T/2, sd 34/sqrt(H)
    assert not np.any(g) and not np.any(o)  # the preset's zeros elsewhere
    coupled = np.asarray(lj.lstm(H, chrono_init=T, coupled=True).init(jax.random.key(0), 3).b)
    np.testing.assert_array_equal(coupled[:H], f)  # (f, g, o): i = 1 - f is near 0 at first


@pytest.mark.parametrize("options, message", [
    ({"chrono_init": 2}, "`chrono_init` is T_max, the longest dependency, and must be at least 3, got 2"),
    ({"chrono_init": 50, "bias": False}, "`chrono_init` cannot be combined with `bias=False`"),
    ({"chrono_init": 50, "forget_gate": False}, "`chrono_init` cannot be combined with `forget_gate=False`"),
])
def test_chrono_init_errors_name_the_options(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        lj.lstm(8, **options)

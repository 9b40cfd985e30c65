"""A user's own cell: an object with init, initial_carry and step only, under every runner
feature, each compared with a Python loop over its ``step``; and the capability errors.

The cell's carry is a dict of two leaves and its output y_t (P = 2) is neither of them,
so a runner that mistakes the carry for the output, or drops a leaf, fails here.
"""

import json
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstm_jax as lj
from lstm_jax import _dropout, runner
from lstm_jax.cells import protocol
from tests.helpers import assert_close

B, T, I, H, P = 3, 5, 2, 3, 2


class Leaky:
    """h_t = (1 - a) h_{t-1} + a tanh(x_t W + h_{t-1} U); m_t = max(m_{t-1}, h_t) (the
    running peak); y_t = h_t V + sum(m_t): a carry of two leaves, an output of size P."""

    def __init__(self, hidden_size=H, output_size=P, a=0.5):
        self.hidden_size, self.out, self.a = hidden_size, output_size, a

    def init(self, key, input_size):
        kw, ku, kv = jax.random.split(key, 3)
        return {"w_ih": jax.random.normal(kw, (input_size, self.hidden_size)),
                "w_hh": jax.random.normal(ku, (self.hidden_size, self.hidden_size)) * 0.5,
                "v": jax.random.normal(kv, (self.hidden_size, self.out))}

    def initial_carry(self, params, batch_shape):
        return {"h": jnp.zeros((*batch_shape, self.hidden_size)),
                "m": jnp.full((*batch_shape, self.hidden_size), -1.0)}

    def step(self, params, carry, x_t):
        h = (1 - self.a) * carry["h"] + self.a * jnp.tanh(x_t @ params["w_ih"] + carry["h"] @ params["w_hh"])
        m = jnp.maximum(carry["m"], h)
        return {"h": h, "m": m}, h @ params["v"] + jnp.sum(m, axis=-1, keepdims=True)


def leaky_namespace():
    """The same cell as a types.SimpleNamespace of three functions."""
    cell = Leaky()
    return types.SimpleNamespace(init=cell.init, initial_carry=cell.initial_carry, step=cell.step)


def hand_loop(cell, params, xs, lengths=None, reverse=False, carry0=None, resets=None,
              keep_states=False):
    """Each sequence alone, unbatched, as a Python loop over ``step`` on its first
    lengths[b] steps (backwards with ``reverse``); a reset at t restarts at t (forward) or
    before t - 1 (backward); outputs at padding 0, states there the final carry.
    Returns (carry, ys (B, T, P)[, states with a T axis])."""
    xs = np.asarray(xs)
    carries, ys, all_states = [], [], []
    for b in range(xs.shape[0]):
        start = (cell.initial_carry(params, ()) if carry0 is None
                 else jax.tree.map(lambda a: a[b], carry0))
        carry, L = start, T if lengths is None else int(lengths[b])
        y_b, s_b = [None] * T, [None] * T
        order = list(range(L))[::-1] if reverse else list(range(L))
        for n, t in enumerate(order):
            restart = (resets is not None and n > 0
                       and (resets[b, t + 1] if reverse else resets[b, t]))
            if restart:
                carry = start
            carry, y_b[t] = cell.step(params, carry, jnp.asarray(xs[b, t]))
            s_b[t] = carry
        size = jax.eval_shape(cell.step, params, start, jnp.asarray(xs[b, 0]))[1].shape
        ys.append(np.stack([np.zeros(size) if y is None else np.asarray(y) for y in y_b]))
        all_states.append([carry if s is None else s for s in s_b])
        carries.append(carry)
    stack = lambda *a: jnp.stack(a)
    out = (jax.tree.map(stack, *carries), jnp.asarray(np.stack(ys)))
    if keep_states:
        out += (jax.tree.map(stack, *[jax.tree.map(stack, *s) for s in all_states]),)
    return out


@pytest.fixture(scope="module")
def setup():
    cell = Leaky()
    params = cell.init(jax.random.key(0), I)
    xs = jax.random.normal(jax.random.key(1), (B, T, I))
    return cell, params, xs


LENGTHS = np.array([5, 2, 0])


def assert_tree_close(got, want, atol=1e-5):
    jax.tree.map(lambda g, w: assert_close(g, w, atol=atol), got, want)


# ---- the runner -----------------------------------------------------------------------


def test_the_cell_has_the_protocol_and_no_capability(setup):
    cell = setup[0]
    assert isinstance(cell, lj.RecurrentCell) and protocol.capabilities(cell) == ()
    assert protocol.capabilities(lj.min_gru(4)) == ("projections", "parallel")
    assert protocol.capabilities(lj.gru(4)) == ("projections",)
    layer = lj.rnn(cell)
    assert layer.output_size is None and lj.layers.output_size(layer, I) == P
    assert lj.layers.output_size(lj.rnn(lj.lstm(4, proj_size=3)), I) == 3


@pytest.mark.parametrize("options", [
    dict(),
    dict(seq_lengths=LENGTHS),
    dict(seq_lengths=LENGTHS, reverse=True),
    dict(reverse=True),
], ids=["plain", "padded", "padded_reverse", "reverse"])
def test_rnn_equals_the_hand_loop(setup, options):
    cell, params, xs = setup
    carry, ys = jax.jit(lambda p, x: lj.rnn(cell).apply(p, x, **options))(params, xs)
    want_carry, want_ys = hand_loop(cell, params, xs, options.get("seq_lengths"),
                                    options.get("reverse", False))
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)
    if "seq_lengths" in options:
        assert np.all(np.asarray(ys)[1, 2:] == 0) and np.all(np.asarray(ys)[2] == 0)


@pytest.mark.parametrize("layer_options", [dict(unroll=3), dict(remat=True), dict(remat=2)],
                         ids=["unroll", "remat", "remat2"])
def test_unroll_and_remat_change_nothing(setup, layer_options):
    cell, params, xs = setup
    carry, ys = lj.rnn(cell, **layer_options).apply(params, xs, seq_lengths=LENGTHS)
    want_carry, want_ys = hand_loop(cell, params, xs, LENGTHS)
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)


def test_a_namespace_cell_and_time_major_layout(setup):
    _, params, xs = setup
    cell = leaky_namespace()
    carry, ys = lj.rnn(cell, time_major=True).apply(params, jnp.swapaxes(xs, 0, 1))
    want_carry, want_ys = hand_loop(cell, params, xs)
    assert_close(jnp.swapaxes(ys, 0, 1), want_ys)
    assert_tree_close(carry, want_carry)


@pytest.mark.parametrize("reverse", [False, True])
def test_resets_carry_and_all_states(setup, reverse):
    cell, params, xs = setup
    resets = np.zeros((B, T), bool)
    resets[:, 2] = resets[0, 4] = True
    carry0 = jax.tree.map(lambda a: a + 0.3, cell.initial_carry(params, (B,)))
    carry, ys, states = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, reverse=reverse,
                                           carry=carry0, resets=jnp.asarray(resets),
                                           return_all_states=True)
    want_carry, want_ys, want_states = hand_loop(cell, params, xs, LENGTHS, reverse, carry0,
                                                 resets, keep_states=True)
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)
    assert_tree_close(states, want_states)


def test_learned_initial_carry(setup):
    cell, _, xs = setup
    layer = lj.rnn(cell, learn_initial_carry=True)
    params = layer.init(jax.random.key(0), I)
    assert isinstance(params, lj.RNNParams)
    assert_tree_close(params.initial_carry, cell.initial_carry(params.cell, ()))
    learned = params._replace(initial_carry=jax.tree.map(lambda a: a + 0.5, params.initial_carry))
    carry, ys = layer.apply(learned, xs, seq_lengths=LENGTHS)
    broadcast = jax.tree.map(lambda a: jnp.broadcast_to(a, (B, H)), learned.initial_carry)
    assert_tree_close(layer.initial_carry(learned, (B,)), broadcast)
    want_carry, want_ys = hand_loop(cell, learned.cell, xs, LENGTHS, carry0=broadcast)
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)
    grads = jax.grad(lambda p: layer.apply(p, xs)[1].sum())(learned)
    assert float(jnp.abs(grads.initial_carry["h"]).sum()) > 0


def test_zoneout_on_every_carry_leaf_and_ys_as_step_returned(setup):
    cell, params, xs = setup
    rate = 0.25
    layer = lj.rnn(cell, zoneout=rate)
    carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS)  # no key: the expectation

    class Expected(Leaky):
        def step(self, params, carry, x_t):
            new, y = super().step(params, carry, x_t)
            return jax.tree.map(lambda o, n: rate * o + (1 - rate) * n, carry, new), y

    want_carry, want_ys = hand_loop(Expected(), params, xs, LENGTHS)
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)
    _, _, states = layer.apply(params, xs, key=jax.random.key(3), return_all_states="with_initial")
    old = jax.tree.map(lambda a: a[:, :-1], states)  # what step t read, (B, T, H) per leaf
    new = jax.vmap(jax.vmap(cell.step, (None, 0, 0)), (None, 0, 0))(params, old, xs)[0]
    for name in ("h", "m"):  # with a key each unit of each leaf is either kept or replaced
        got = np.asarray(states[name][:, 1:])
        is_old, is_new = got == np.asarray(old[name]), np.isclose(got, new[name], atol=1e-6)
        assert np.all(is_old | is_new), name
    assert 0 < np.mean(is_old & ~is_new) < 1 and 0 < np.mean(is_new & ~is_old) < 1


def test_input_dropout_is_one_mask_per_sequence(setup):
    cell, params, xs = setup
    rate, key = 0.5, jax.random.key(4)
    _, ys = lj.rnn(cell, input_dropout=rate).apply(params, xs, key=key)
    mask = _dropout.mask(jax.random.split(key, 3)[0], rate, (B, I), xs.dtype)
    _, want = hand_loop(cell, params, xs * mask[:, None])
    assert_close(ys, want)
    assert_close(lj.rnn(cell, input_dropout=rate).apply(params, xs)[1], hand_loop(cell, params, xs)[1])


def test_vmap_over_params_and_batch(setup):
    cell, _, xs = setup
    layer = lj.rnn(cell)
    stacked = jax.vmap(lambda k: layer.init(k, I))(jax.random.split(jax.random.key(5), 2))
    ys = jax.vmap(lambda p: layer.apply(p, xs, seq_lengths=LENGTHS)[1])(stacked)
    for n in range(2):
        one = jax.tree.map(lambda a: a[n], stacked)
        assert_close(ys[n], hand_loop(cell, one, xs, LENGTHS)[1])
    per_sequence = jax.vmap(lambda x: layer.apply(one, x)[1])(xs)  # x (T, I): unbatched
    assert_close(per_sequence, hand_loop(cell, one, xs)[1])


def test_gradients_match_finite_differences(setup):
    cell, params, xs = setup
    with jax.enable_x64(True):
        params64, xs64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (params, xs))
        def loss(p, x):
            _, ys = lj.rnn(cell).apply(p, x, seq_lengths=LENGTHS, reverse=True)
            return jnp.sum(jnp.sin(ys))
        check_grads(jax.jit(loss), (params64, xs64), order=1, modes=["rev"])


# ---- layers built on the runner ----------------------------------------------------------


def test_bidirectional_and_a_mixed_stack(setup):
    cell, params, xs = setup
    bi = lj.bidirectional(cell)
    assert bi.output_size is None
    bi_params = bi.init(jax.random.key(6), I)
    carry, ys = bi.apply(bi_params, xs, seq_lengths=LENGTHS)
    fwd = hand_loop(cell, bi_params.forward, xs, LENGTHS)
    bwd = hand_loop(cell, bi_params.backward, xs, LENGTHS, reverse=True)
    assert_close(ys, jnp.concatenate([fwd[1], bwd[1]], axis=-1))
    assert_tree_close(carry, lj.Directions(fwd[0], bwd[0]))

    model = lj.stack([lj.rnn(cell), lj.gru(4), Leaky(hidden_size=2, output_size=3)])
    stack_params = model.init(jax.random.key(7), I)
    assert jax.tree.map(jnp.shape, stack_params[1]).w_ih == (P, 12)
    _, ys = model.apply(stack_params, xs, seq_lengths=LENGTHS)
    _, h1 = hand_loop(cell, stack_params[0], xs, LENGTHS)
    _, h2 = lj.rnn(lj.gru(4)).apply(stack_params[1], h1, seq_lengths=LENGTHS)
    _, want = hand_loop(Leaky(hidden_size=2, output_size=3), stack_params[2], h2, LENGTHS)
    assert ys.shape == (B, T, 3)
    assert_close(ys, want)


def test_a_merge_of_unequal_sizes_is_refused_when_they_are_known(setup):
    cell, _, xs = setup
    layer = lj.bidirectional(cell, lj.gru(4), merge="sum")
    params = layer.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="merge='sum' needs equal output sizes, got 2 and 4"):
        layer.apply(params, xs)


@pytest.mark.slow  # a fast sibling covers its path
def test_truncated_bptt(setup):
    cell, params, xs = setup
    full = lj.rnn(cell)
    layer = lj.truncated_bptt(full, chunk=2)
    carry, ys = layer.apply(params, xs, seq_lengths=LENGTHS)
    want_carry, want_ys = hand_loop(cell, params, xs, LENGTHS)
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)
    # a loss on the last chunk (step 4) reaches the inputs of that chunk only
    grad = jax.grad(lambda x: layer.apply(params, x)[1][:, 4].sum())(xs)
    assert float(jnp.abs(grad[:, :4]).max()) == 0 and float(jnp.abs(grad[:, 4]).max()) > 0


# ---- options that need a capability the cell lacks -------------------------------------


@pytest.mark.parametrize("options, message", [
    (dict(hoist=True), "`hoist=True` needs a cell with `project_inputs` (projections capability); `Leaky` has none"),
    (dict(fused_backward=True), "`fused_backward=True` needs a cell with `project_inputs` (projections capability); `Leaky` has none"),
    (dict(recurrent_dropout=0.1), "`recurrent_dropout` needs a cell with `project_inputs` (projections capability); `Leaky` has none"),
    (dict(weight_drop=0.1), "`weight_drop` needs a cell with `project_inputs` (projections capability); `Leaky` has none"),
    (dict(parallel=True), "`parallel=True` needs a cell with `project_inputs` (parallel capability); `Leaky` has none"),
    (dict(backend="cudnn"), "`backend='cudnn'` needs a cell with `cudnn_weights` (cudnn capability); `Leaky` has none"),
])
def test_an_option_needing_a_missing_capability_is_one_exact_error(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        lj.rnn(Leaky(), **options)


class Shrinking(Leaky):
    """A step that breaks the protocol: the carry it returns lost a unit of h."""

    def step(self, params, carry, x_t):
        carry, y_t = super().step(params, carry, x_t)
        return {**carry, "h": carry["h"][..., 1:]}, y_t


def test_a_step_returning_another_carry_is_named_before_the_loop(setup):
    _, params, xs = setup
    with pytest.raises(ValueError, match=re.escape(
            "the step of Shrinking must return a carry like the one it is given: `carry` must "
            "have shapes and dtypes {'h': '(3, 3) float32', 'm': '(3, 3) float32'}, got "
            "{'h': '(3, 2) float32', 'm': '(3, 3) float32'}")):
        lj.rnn(Shrinking()).apply(params, xs)  # not lax.scan's message from inside the loop


def test_return_gates_needs_combine(setup):
    cell, params, xs = setup
    with pytest.raises(ValueError, match=re.escape(
            "`return_gates` needs a cell with `project_inputs` (projections capability)")):
        lj.rnn(cell).apply(params, xs, return_gates=True)


@pytest.mark.parametrize("make, error, message", [
    (lambda: lj.rnn(lj.lstm(4), parallel=True), ValueError,
     "`parallel=True` needs a cell with `log_coefficients` (parallel capability); `lstm` has none"),
    (lambda: lj.rnn(lj.min_gru(4), parallel=True, zoneout=0.1), ValueError,
     "`parallel=True` runs all steps at once and cannot zone out the carry between them"),
    (lambda: lj.rnn(lj.lstm(4), fused_backward=True, remat=True), ValueError,
     "`fused_backward=True` saves every step's carry, which `remat` would recompute"),
    (lambda: lj.rnn(lj.indrnn(4), weight_drop=0.1, recurrent_dropout=0.1), None, None),
    (lambda: lj.rnn(lj.min_gru(4), weight_drop=0.1), ValueError,
     "`weight_drop` drops entries of the recurrent weight w_hh, which the params of `min_gru` do not have"),
    (lambda: lj.lstm(4, peephole="False"), TypeError, "`peephole` must be True or False, got 'False'"),
    (lambda: lj.gru(4, bias="yes"), TypeError, "`bias` must be True or False, got 'yes'"),
    (lambda: lj.rnn(lj.gru(4), time_major=1), TypeError, "`time_major` must be True or False, got 1"),
    (lambda: lj.rnn(lj.gru(4), fused_backward="auto"), TypeError,
     "`fused_backward` must be True, False or None, got 'auto'"),
    (lambda: lj.rnn(object()), TypeError,
     "`cell` must be a cell: an object with init(key, input_size), initial_carry(params, "
     "batch_shape) and step(params, carry, x_t), as lj.lstm(...) is; got object, which has no `init`"),
])
def test_built_in_cells_and_flags_fail_loudly_too(make, error, message):
    if error is None:
        make()  # indrnn has a recurrent weight and projections: both options run
        return
    with pytest.raises(error, match=re.escape(message)):
        make()


@pytest.mark.parametrize("cell", [lj.lstm(4), lj.min_gru(4), Leaky()], ids=["lstm", "min_gru", "own"])
@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_defaults_choose_what_the_cell_supports(cell, platform):
    way = runner.choose_loop(lj.rnn(cell).config, platform)
    expected = {("lstm", "cpu"): "fused", ("lstm", "gpu"): "cudnn", ("min_gru", "cpu"): "fused",
                ("min_gru", "gpu"): "parallel", ("Leaky", "cpu"): "scan",
                ("Leaky", "gpu"): "scan"}
    assert way == expected[protocol.name(cell), platform]
    assert runner.choose_loop(lj.rnn(cell, remat=True).config, "cpu") == "scan"


# ---- the capability path of a user's cell: the fused backward pass on dict params ------


class SplitLeaky(Leaky):
    """``Leaky`` with the projections capability: the same step, split at its matmuls."""

    def project_inputs(self, params, xs):
        return xs @ params["w_ih"]

    def project_hidden(self, params, carry, h_mask=None):
        h = carry["h"] if h_mask is None else carry["h"] * h_mask
        return h @ params["w_hh"]

    def combine(self, params, carry, gx_t, gh_t):
        h = (1 - self.a) * carry["h"] + self.a * jnp.tanh(gx_t + gh_t)
        m = jnp.maximum(carry["m"], h)
        y = h @ params["v"] + jnp.sum(m, axis=-1, keepdims=True)
        return {"h": h, "m": m}, y, {"h": h}


@pytest.mark.slow
def test_a_users_projections_run_the_fused_pass_and_every_option(setup):
    _, params, xs = setup
    cell = SplitLeaky()
    assert protocol.capabilities(cell) == ("projections",)
    want_carry, want_ys = hand_loop(cell, params, xs, LENGTHS, reverse=True)
    for options in (dict(fused_backward=True), dict(fused_backward=True, hoist=True),
                    dict(fused_backward=False)):
        carry, ys = lj.rnn(cell, **options).apply(params, xs, seq_lengths=LENGTHS, reverse=True)
        assert_close(ys, want_ys)
        assert_tree_close(carry, want_carry)

    def loss(p, fused, **options):
        layer = lj.rnn(cell, fused_backward=fused, **options)
        _, ys = layer.apply(p, xs, seq_lengths=LENGTHS, key=jax.random.key(8))
        return jnp.sum(jnp.sin(ys))

    for options in (dict(), dict(recurrent_dropout=0.3, zoneout=0.2, weight_drop=0.2)):
        fused = jax.grad(loss)(params, True, **options)
        plain = jax.grad(loss)(params, False, **options)
        assert_tree_close(fused, plain, atol=1e-4)
    gates = lj.rnn(cell).apply(params, xs, seq_lengths=LENGTHS, return_gates=True)[2]
    assert gates["h"].shape == (B, T, H) and np.all(np.asarray(gates["h"])[1, 2:] == 0)


@pytest.mark.parametrize("make", [lambda: lj.indrnn(3), lambda: lj.slstm(4, num_heads=2),
                                  lambda: lj.conv_lstm(3, kernel_size=3, spatial_dims=1)],
                         ids=["indrnn", "slstm", "conv_lstm"])
def test_the_fused_pass_now_serves_cells_with_their_own_recurrence(make):
    cell = make()
    spatial = (4,) if protocol.feature_axes(cell) > 1 else ()
    xs = jax.random.normal(jax.random.key(9), (B, T, *spatial, I))
    params = cell.init(jax.random.key(10), I)

    def loss(p, fused):
        layer = lj.rnn(cell, fused_backward=fused, zoneout=0.1)
        return jnp.sum(jnp.sin(layer.apply(p, xs, seq_lengths=LENGTHS, key=jax.random.key(1))[1]))

    assert_tree_close(jax.grad(loss)(params, True), jax.grad(loss)(params, False), atol=1e-4)


# ---- training: the Python API and an experiment file on the command line --------------

TRAIN = dict(task="adding", task_options={"length": 8}, hidden_size=8, batch_size=16, steps=30,
             learning_rate=1e-2, warmup_steps=5, log_every=10, eval_every=30, eval_batches=2,
             checkpoint_every=30)


@pytest.mark.slow  # a fast sibling covers its path
def test_training_a_model_around_ones_own_cell(tmp_path):
    from lstm_jax import train as lt
    from lstm_jax.tasks import get_task

    config = lt.Config(**TRAIN)
    task = get_task("adding", length=8)
    model = lt.build_model(config, task, lj.rnn(Leaky(hidden_size=8, output_size=4)))
    params = model.init(jax.random.key(0))
    assert params["readout"]["w"].shape == (4, 1)
    result = lt.train(config, tmp_path, task=task, model=model, progress=False)
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(result["metrics"]["mse"]) and result["metrics"]["mse"] < first["loss"]
    assert lt.evaluate(tmp_path, task=task, model=model)["step"] == 30


OWN_CELL_EXPERIMENT = '''
"""The adding problem through a cell of my own."""
import jax
import jax.numpy as jnp
import lstm_jax as lj
from lstm_jax.train import Config, build_model

DESCRIPTION = "adding with my own leaky cell"


class Leaky:
    def __init__(self, size):
        self.size = size

    def init(self, key, input_size):
        kw, ku = jax.random.split(key)
        return {"w_ih": jax.random.normal(kw, (input_size, self.size)) / input_size**0.5,
                "w_hh": jax.random.normal(ku, (self.size, self.size)) / self.size**0.5}

    def initial_carry(self, params, batch_shape):
        return jnp.zeros((*batch_shape, self.size))

    def step(self, params, h, x_t):
        h = 0.5 * h + 0.5 * jnp.tanh(x_t @ params["w_ih"] + h @ params["w_hh"])
        return h, h


def get_config():
    return Config(''' + ", ".join(f"{k}={v!r}" for k, v in TRAIN.items()) + ''')


def get_model(config, task):
    return build_model(config, task, lj.rnn(Leaky(config.hidden_size)))
'''


def test_an_experiment_file_with_its_own_cell_trains_from_the_command_line(tmp_path, capsys):
    from lstm_jax import cli

    (tmp_path / "leaky_exp.py").write_text(OWN_CELL_EXPERIMENT)
    out = tmp_path / "run"
    assert cli.main(["train", str(tmp_path / "leaky_exp.py"), "--out", str(out), "--steps", "20",
                     "--no-progress"]) == 0
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["step"] == 20 and np.isfinite(final["mse"])
    assert cli.main(["eval", str(out)]) == 0
    assert "leaky_exp at step 20:" in capsys.readouterr().out


def test_linen_and_nnx_modules_run_ones_own_cell(setup):
    from flax import nnx

    from lstm_jax.nn import linen as ljl
    from lstm_jax.nn import nnx as ljx

    cell, _, xs = setup
    module = ljl.RNN(cell, zoneout=0.1, deterministic=True)
    variables = module.init(jax.random.key(0), xs)
    assert set(variables["params"]) == {"w_ih", "w_hh", "v"}
    ys = module.apply(variables, xs, seq_lengths=LENGTHS)
    params = dict(variables["params"])
    assert_close(ys, lj.rnn(cell, zoneout=0.1).apply(params, xs, seq_lengths=LENGTHS)[1])
    assert not np.allclose(ys, hand_loop(cell, params, xs, LENGTHS)[1])  # zoneout is on
    model = ljx.RNN(I, cell, rngs=nnx.Rngs(0))
    carry, ys = model(xs, seq_lengths=LENGTHS, return_carry=True)
    want_carry, want_ys = hand_loop(cell, model.get_params(), xs, LENGTHS)
    assert_close(ys, want_ys)
    assert_tree_close(carry, want_carry)

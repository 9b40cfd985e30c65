"""lj.export, lj.export_step, lj.export_onnx (lstm_jax/exporting.py): the exported program,
read back by jax alone (in this process, and in a fresh one that imports no lstm_jax) or
run by onnxruntime, equals ``apply``."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstm_jax as lj
from lstm_jax import exporting, runner
from tests.helpers import assert_close, perturbed

I = 5
SHAPES = [(3, 7), (2, 4)]  # two (B, T), each padded


def stacked():
    """A 2-layer stack, a bidirectional LSTM under a GRU, with every param non-trivial."""
    layer = lj.stack([lj.bidirectional(lj.lstm(6)), lj.gru(4)])
    return layer, perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))


def batch(B, T, seed=2):
    xs = jax.random.normal(jax.random.key(seed), (B, T, I))
    lengths = jnp.asarray(np.linspace(T, 1, B).round(), jnp.int32)  # T first, then shorter
    return xs, lengths


def plain_apply(layer, params, xs, lengths):
    carry, ys = layer.apply(params, xs, seq_lengths=lengths)
    return exporting.plain(carry), ys


def assert_trees_equal_within(actual, expected, atol):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert_close(a, e, atol=atol, rtol=0)


def test_serialized_and_read_back_it_equals_apply_at_two_batch_and_time_sizes():
    layer, params = stacked()
    exported = jax.export.deserialize(lj.export(layer, params).serialize())
    assert [str(a.shape) for a in exported.in_avals] == ["(B, T, 5)", "(B,)"]
    for B, T in SHAPES:
        xs, lengths = batch(B, T)
        assert_trees_equal_within(exported.call(xs, lengths),
                                  plain_apply(layer, params, xs, lengths), atol=1e-6)


@pytest.mark.slow  # a process of its own: jax's start and compiles again (the fast stand-in
# is the test above, which reads the bytes back in this process)
def test_a_fresh_process_with_jax_and_numpy_alone_reads_the_file(tmp_path):
    layer, params = stacked()
    (tmp_path / "model.bin").write_bytes(lj.export(layer, params).serialize())
    expected = []
    for n, (B, T) in enumerate(SHAPES):
        xs, lengths = batch(B, T)
        np.savez(tmp_path / f"in{n}.npz", xs=xs, lengths=lengths)
        expected.append(plain_apply(layer, params, xs, lengths))
    code = textwrap.dedent(f"""
        import sys, pickle, numpy as np, jax
        exported = jax.export.deserialize(open("model.bin", "rb").read())
        outs = []
        for n in range({len(SHAPES)}):
            given = np.load(f"in{{n}}.npz")
            outs.append(jax.tree.map(np.asarray, exported.call(given["xs"], given["lengths"])))
        pickle.dump(outs, open("out.pkl", "wb"))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("lstm_jax", "flax", "optax")))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["[]"]
    import pickle

    for got, want in zip(pickle.loads((tmp_path / "out.pkl").read_bytes()), expected):
        assert_trees_equal_within(got, want, atol=1e-6)


def test_the_carry_is_plain_dicts_and_tuples_where_namedtuples_would_not_serialize():
    layer, params = stacked()
    carry, _ = lj.export(layer, params).out_avals, None
    tree = jax.tree.unflatten(lj.export(layer, params).out_tree, carry)[0]
    assert isinstance(tree, tuple) and set(tree[0]) == {"forward", "backward"}
    assert set(tree[0]["forward"]) == {"h", "c"} and not isinstance(tree[0]["forward"], tuple)
    # what the plain carry avoids: apply's own carry, LSTMState in Directions
    raw = jax.export.export(jax.jit(lambda xs: layer.apply(params, xs)))(
        jax.ShapeDtypeStruct((2, 3, I), jnp.float32))
    with pytest.raises(ValueError, match="Cannot serialize PyTreeDef containing an "
                                         "unregistered type"):
        raw.serialize()


def test_stepping_the_exported_step_over_a_sequence_equals_apply():
    layer = lj.stack([lj.lstm(6, proj_size=3), lj.gru(4)])
    params = perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))
    step = jax.export.deserialize(lj.export_step(layer, params).serialize())
    xs, _ = batch(3, 6)
    carry = exporting.plain(layer.initial_carry(params, (3,)))
    ys = []
    for t in range(xs.shape[1]):
        carry, y_t = step.call(carry, xs[:, t])
        ys.append(y_t)
    final, expected = layer.apply(params, xs)
    assert_close(jnp.stack(ys, axis=1), expected, atol=1e-6)
    assert_trees_equal_within(carry, exporting.plain(final), atol=1e-6)


def test_fixed_batch_and_time_and_a_time_major_layer():
    layer = lj.rnn(lj.gru(4), time_major=True)
    params = layer.init(jax.random.key(0), I)
    exported = lj.export(layer, params, batch=2, time=3)
    assert [a.shape for a in exported.in_avals] == [(3, 2, I), (2,)]
    xs = jax.random.normal(jax.random.key(1), (3, 2, I))
    lengths = jnp.array([3, 1], jnp.int32)
    assert_close(exported.call(xs, lengths)[1], layer.apply(params, xs, seq_lengths=lengths)[1],
                 atol=1e-6)


def test_one_platform_may_be_named_by_a_string():
    layer, params = stacked()
    exported = lj.export(layer, params, platforms="cpu")  # not ("c", "p", "u")
    assert exported.platforms == ("cpu",)
    xs, lengths = batch(*SHAPES[1])
    assert_trees_equal_within(exported.call(xs, lengths), plain_apply(layer, params, xs, lengths),
                              atol=1e-6)


@pytest.mark.parametrize("platforms, error, message", [
    ("gpu", ValueError, "`platforms`: unknown platform 'gpu'; known: cpu, cuda, rocm, tpu"),
    (("cpu", "gpu"), ValueError,
     "`platforms`: unknown platform 'gpu'; known: cpu, cuda, rocm, tpu"),
    (("cpu", "cuda", "cpu"), ValueError,
     "`platforms`: repeated platform 'cpu'; name each platform once"),
    (["cuda", "cuda"], ValueError, "`platforms`: repeated platform 'cuda'; name each platform once"),
    ((), ValueError, "`platforms` must name at least one platform, or be None (the default "
                     "backend's), got ()"),
    (3, TypeError, "`platforms` must be a platform's name, a tuple of them such as "
                   "(\"cpu\", \"cuda\"), or None (the default backend's), got 3"),
    (("cpu", 3), TypeError, "`platforms` must be a platform's name, a tuple of them such as "
                            "(\"cpu\", \"cuda\"), or None (the default backend's), got ('cpu', 3)"),
])
def test_platforms_jax_does_not_lower_for_are_refused_with_those_it_does(platforms, error,
                                                                          message):
    layer = lj.rnn(lj.lstm(4))
    params = layer.init(jax.random.key(0), 3)
    for export in (lj.export, lj.export_step):
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            export(layer, params, platforms=platforms)


def test_it_lowers_for_cpu_and_cuda_together_without_a_gpu():
    layer, params = stacked()
    exported = lj.export(layer, params, platforms=("cpu", "cuda"))
    assert exported.platforms == ("cpu", "cuda")
    again = jax.export.deserialize(exported.serialize())
    xs, lengths = batch(*SHAPES[1])
    assert_trees_equal_within(again.call(xs, lengths), plain_apply(layer, params, xs, lengths),
                              atol=1e-6)


def test_exporting_runs_the_plain_loop_whatever_the_layer_would_choose():
    config = lj.rnn(lj.lstm(4), backend="cudnn", fused_backward=True).config
    chosen = runner.exported_config(config)
    assert runner.choose_loop(chosen, "gpu") == "scan"
    assert runner.choose_loop(runner.exported_config(lj.rnn(lj.min_gru(4)).config), "gpu") == "scan"
    assert runner.choose_loop(config, "gpu") == "cudnn"  # what apply takes on a GPU
    text = lj.export(lj.rnn(lj.lstm(4), backend="cudnn"), lj.lstm(4).init(
        jax.random.key(0), I), platforms=("cuda",)).mlir_module()
    assert set(re.findall(r"custom_call @(\w+)", text)) == {"shape_assertion"}  # B, T >= 1
    assert "cudnn" not in text.lower()


def test_a_learned_initial_carry_and_truncated_layers_export():
    layer = lj.truncated_bptt(lj.rnn(lj.lstm(4), learn_initial_carry=True), chunk=2)
    params = perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))
    xs, lengths = batch(2, 5)
    assert_trees_equal_within(lj.export(layer, params).call(xs, lengths),
                              plain_apply(layer, params, xs, lengths), atol=1e-6)


@pytest.mark.parametrize("make, kwargs, message", [
    (lambda: lj.bidirectional(lj.lstm(4)), {"step": True},
     "a bidirectional layer cannot be exported as a step: its backward direction reads each "
     "sequence from its end; export whole sequences (step=False)"),
    (lambda: lj.rnn(lj.conv_lstm(4, kernel_size=3)), {},
     "export runs layers over (B, T, I) inputs; `conv_lstm` reads spatial inputs "
     "(B, T, *S, I), whose S it cannot know"),
])
def test_what_cannot_be_exported_says_why(make, kwargs, message):
    layer = make()
    params = layer.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        lj.export(layer, params, **kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"batch": 0}, ValueError, "`batch` must be a positive int or None, got 0"),
    ({"time": -1}, ValueError, "`time` must be a positive int or None, got -1"),
    ({"time": 2.5}, TypeError, "`time` must be a positive int or None, got 2.5"),
    ({"batch": True}, TypeError, "`batch` must be a positive int or None, got True"),
    ({"batch": "2"}, TypeError, "`batch` must be a positive int or None, got '2'"),
])
def test_batch_and_time_are_positive_ints_or_none(kwargs, error, message):
    layer = lj.rnn(lj.lstm(4))
    params = layer.init(jax.random.key(0), 3)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        lj.export(layer, params, **kwargs)
    if "time" not in kwargs:
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            lj.export_step(layer, params, **kwargs)


def test_numpy_ints_fix_batch_and_time():
    layer = lj.rnn(lj.lstm(4))
    params = layer.init(jax.random.key(0), 3)
    exported = lj.export(layer, params, batch=np.int64(2), time=np.int32(5))
    assert [a.shape for a in exported.in_avals] == [(2, 5, 3), (2,)]


# ---- ONNX: onnxruntime and jax2onnx are in the test extras (the Makefile installs jax2onnx)


def onnx_run(model, feeds):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its notes on initializers it drops
    session = onnxruntime.InferenceSession(model.SerializeToString(), options)
    return session, session.run(None, {k: np.asarray(v) for k, v in feeds.items()})


def test_onnx_of_a_padded_bidirectional_layer_equals_apply_under_onnxruntime():
    """The fast stand-in of the two below: one bidirectional layer, one padded batch."""
    layer = lj.bidirectional(lj.gru(3))
    params = perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))
    xs, lengths = batch(3, 4)
    _, outs = onnx_run(lj.export_onnx(layer, params), {"xs": xs, "seq_lengths": lengths})
    for got, want in zip(outs, jax.tree.leaves(plain_apply(layer, params, xs, lengths))):
        assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_onnx_of_the_padded_bidirectional_stack_equals_apply_under_onnxruntime():
    layer, params = stacked()
    model = lj.export_onnx(layer, params)
    for B, T in SHAPES:
        xs, lengths = batch(B, T)
        session, outs = onnx_run(model, {"xs": xs, "seq_lengths": lengths})
        carry, ys = plain_apply(layer, params, xs, lengths)
        assert [o.name for o in session.get_outputs()] == exporting.names((carry, ys),
                                                                          exporting.OUTPUTS)
        for got, want in zip(outs, jax.tree.leaves((carry, ys))):
            assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_onnx_step_stepped_over_a_sequence_equals_apply():
    layer = lj.stack([lj.lstm(6), lj.gru(4)])
    params = perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))
    model = lj.export_onnx(layer, params, step=True)
    xs, _ = batch(2, 4)
    carry = jax.tree.leaves(exporting.plain(layer.initial_carry(params, (2,))))
    session = None
    ys = []
    for t in range(xs.shape[1]):
        names = ["carry.0.c", "carry.0.h", "carry.1", "x_t"]
        session, outs = onnx_run(model, dict(zip(names, [*carry, xs[:, t]])))
        carry, y_t = outs[:-1], outs[-1]
        ys.append(y_t)
    assert [i.name for i in session.get_inputs()] == names
    assert_close(np.stack(ys, axis=1), layer.apply(params, xs)[1], atol=1e-5, rtol=0)

"""Models at once: ``lj.rnn`` under ``jax.vmap`` over a leading model axis (params,
inputs and keys stacked, as ``lstm-jax train --seeds`` runs them) gives every model the
outputs and gradients it has alone, within float rounding, through the fused backward
pass (``_fused``) that vmap batches."""

import os

import jax
import jax.numpy as jnp
import pytest

import lstm_jax as lj
from lstm_jax import _fused
from tests.helpers import B, H, I, T, assert_trees_close, inputs, perturbed

N = 3  # models
LENGTHS = jnp.array([T, 2, 0])  # (B,): a full sequence, a short one, an empty one
RESETS = jnp.zeros((B, T), bool).at[0, 3].set(True)

CASES = {  # name: (layer, apply's options, one model's xs); zoneout and recurrent dropout
    # draw from a key. The fused pass flattens (T, *batch) into one axis for the weight
    # gradients: the last two cases have two batch axes, and spatial axes after them.
    "lstm layer-norm, hoisted, resets": (lj.rnn(lj.lstm(H, layer_norm=True), hoist=True),
                                         {"resets": RESETS}, (B, T, I)),
    "gru zoneout, recurrent dropout, padded, reversed": (
        lj.rnn(lj.gru(H), zoneout=0.3, recurrent_dropout=0.2),
        {"seq_lengths": LENGTHS, "reverse": True}, (B, T, I)),
    "lstm over two batch axes, recurrent dropout": (
        lj.rnn(lj.lstm(H), recurrent_dropout=0.2), {}, (2, B, T, I)),
    "conv lstm 1-d, padded": (lj.rnn(lj.conv_lstm(H, 3, spatial_dims=1)),
                              {"seq_lengths": LENGTHS}, (B, T, 4, I)),
}


def loss(layer, options, params, xs, key):
    """A scalar reading every output and the final carry, unevenly."""
    carry, ys = layer.apply(params, xs, key=key, **options)
    weights = jnp.linspace(0.5, 1.5, ys.size).reshape(ys.shape)
    return jnp.sum(weights * ys) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))


@pytest.mark.parametrize("name", list(CASES))
def test_vmap_over_models_gives_each_models_outputs_and_gradients(name):
    layer, options, shape = CASES[name]
    assert lj.runner.choose_loop(layer.config, "cpu", resets="resets" in options) == "fused"
    params = [perturbed(layer.init(jax.random.key(k), I), jax.random.key(10 + k)) for k in range(N)]
    xs = [inputs(shape, seed=20 + k) for k in range(N)]
    keys = [jax.random.key(30 + k) for k in range(N)]
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, x, k: loss(layer, options, p, x, k),
                                                argnums=(0, 1)))
    alone = [value_and_grad(p, x, k) for p, x, k in zip(params, xs, keys)]
    at_once = jax.jit(jax.vmap(value_and_grad))(stack(params), stack(xs), stack(keys))
    assert_trees_close(at_once, stack(alone), atol=1e-5, rtol=1e-5)
    apply = jax.jit(lambda p, x, k: layer.apply(p, x, key=k, **options))
    assert_trees_close(jax.jit(jax.vmap(apply))(stack(params), stack(xs), stack(keys)),
                       stack([apply(p, x, k) for p, x, k in zip(params, xs, keys)]),
                       atol=1e-6, rtol=1e-6)


def test_vmap_over_inputs_alone_and_vmap_of_vmap():
    """One model's params shared by the batched calls (the vmap rule's unbatched
    arguments), and a model axis inside another (a sweep of seeds)."""
    layer, options = lj.rnn(lj.lstm(H)), {}
    params = perturbed(layer.init(jax.random.key(0), I), jax.random.key(1))
    xs = jnp.stack([inputs(seed=20 + k) for k in range(N)])
    grad = jax.jit(jax.grad(lambda p, x: loss(layer, options, p, x, None), argnums=(0, 1)))
    shared = jax.jit(jax.vmap(grad, in_axes=(None, 0)))(params, xs)
    alone = [grad(params, x) for x in xs]
    assert_trees_close(shared, jax.tree.map(lambda *a: jnp.stack(a), *alone))
    nested = jax.jit(jax.vmap(jax.vmap(grad, in_axes=(None, 0)), in_axes=(None, 0)))(
        params, jnp.stack([xs, xs[::-1]]))
    assert_trees_close(jax.tree.map(lambda a: a[1, ::-1], nested), shared)


def test_on_a_cpu_vmap_over_models_runs_the_fused_pass_model_after_model(monkeypatch):
    """Batched over models (params stacked), the fused pass's forward loop and backward
    pass run model after model (XLA:CPU splits a batched loop's ops over its threads at
    a cost: benchmarks/NOTES.md, "Many models at once", findings 10 and 11): written out,
    one loop per model, up to ``MODELS_WRITTEN_OUT`` models, and a scan over the models
    beyond, with the same results; with the params shared, vmap batches them as usual."""
    layer, models = lj.rnn(lj.lstm(H)), 4
    params = jax.tree.map(lambda *a: jnp.stack(a), *[
        perturbed(layer.init(jax.random.key(k), I), jax.random.key(10 + k)) for k in range(models)])
    xs = jnp.stack([inputs(seed=k) for k in range(models)])
    grad = jax.grad(lambda p, x: loss(layer, {}, p, x, None), argnums=(0, 1))
    loops = lambda jaxpr: jaxpr.count(f"length={T}")  # the time loops, forward and backward
    written_out = str(jax.make_jaxpr(jax.vmap(grad))(params, xs))
    assert f"length={models}" not in written_out and loops(written_out) == 2 * models
    shared = str(jax.make_jaxpr(jax.vmap(grad, in_axes=(None, 0)))(
        jax.tree.map(lambda a: a[0], params), xs))
    assert f"length={models}" not in shared and loops(shared) == 2
    monkeypatch.setattr(_fused, "MODELS_WRITTEN_OUT", models - 1)
    scanned = str(jax.make_jaxpr(jax.vmap(grad))(params, xs))
    assert scanned.count(f"length={models}") == 2 and loops(scanned) == 2
    assert_trees_close(jax.jit(jax.vmap(grad))(params, xs),
                       jax.tree.map(lambda *a: jnp.stack(a), *[
                           grad(jax.tree.map(lambda a: a[k], params), xs[k]) for k in range(models)]),
                       atol=1e-5, rtol=1e-5)


def test_over_models_runs_a_step_of_your_own_as_the_steps_alone():
    """``lt.over_models``: one's own training step over a leading model axis, as
    ``lstm-jax train --seeds`` runs it (on a CPU the models mapped one after another in
    one program), each model's results those of its step alone."""
    from lstm_jax import train as lt

    layer, models = lj.rnn(lj.gru(H)), 3

    def step(params, xs):
        value, grads = jax.value_and_grad(lambda p: loss(layer, {}, p, xs, None))(params)
        return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), value

    params = [perturbed(layer.init(jax.random.key(k), I), jax.random.key(10 + k)) for k in range(models)]
    xs = [inputs(seed=20 + k) for k in range(models)]
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
    at_once = jax.jit(lt.over_models(step))
    assert_trees_close(at_once(stack(params), stack(xs)),
                       stack([jax.jit(step)(p, x) for p, x in zip(params, xs)]), atol=1e-6, rtol=1e-6)
    assert f"length={models}" in str(jax.make_jaxpr(lt.over_models(step))(stack(params), stack(xs)))
    with pytest.raises(ValueError, match=r"^over_models: every argument needs the same leading "
                                         r"axis of models; got leading sizes 2, 3$"):
        lt.over_models(step)(stack(params), stack(xs[:2]))
    with pytest.raises(ValueError, match=r"got leading sizes 3, none \(a scalar\)$"):
        lt.over_models(lambda p, s: p)(stack(params), jnp.float32(1.0))


def test_over_models_names_the_sizes_of_the_whole_arguments_in_order():
    """The sizes in the error are read on the arguments as given (with ``mesh=``, before
    any split: ``test_over_models_splits_the_models_over_any_mesh``), in increasing
    order, and a call with no array says so."""
    from lstm_jax import train as lt

    with pytest.raises(ValueError, match=r"got leading sizes 9, 10$"):
        lt.over_models(lambda a, b: a)(jnp.zeros(10), {"b": [jnp.zeros((9, 2))]})
    with pytest.raises(ValueError, match=r"got leading sizes of no array$"):
        lt.over_models(lambda: 0.0)()


SPLIT_OVER_TWO_DEVICES = """
import os

import jax
jax.config.update("jax_num_cpu_devices", 2)
import jax.numpy as jnp, numpy as np
from jax.sharding import AxisType, Mesh
from lstm_jax import train as lt

def step(w, batch):  # reads the whole of each model's arrays: a split inside one is wrong
    return {"y": w / jnp.sum(w) * jnp.sum(batch["x"]), "n": jnp.sum(batch["k"] != 0)}

w, x = jnp.arange(1.0, 17.0).reshape(4, 2, 2), jnp.arange(8.0).reshape(4, 2)
args = (w, {"x": x, "k": jnp.arange(4)})
alone = jax.tree.map(lambda *a: np.stack(a), *[step(w[k], {"x": x[k], "k": k}) for k in range(4)])
devices = np.array(jax.devices())
meshes = {"make_mesh": jax.make_mesh((2,), ("models",)),  # explicit axes
          "ModelParallel": lt.ModelParallel(4).mesh,  # auto axes
          "2-d": Mesh(devices.reshape(1, 2), ("a", "b"), axis_types=(AxisType.Auto,) * 2)}
for name, mesh in meshes.items():
    runs = [jax.jit(lt.over_models(step, mesh))] + [lt.over_models(step, mesh)] * (name == "make_mesh")
    for run in runs:
        out = run(*args)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), out, alone)
        assert len(out["y"].sharding.device_set) == 2, (name, out["y"].sharding)
for bad in [(w, {"x": x[:2], "k": jnp.arange(4)}), (w[:3], {"x": x[:3], "k": jnp.arange(3)}),
            (w, {"x": x, "k": jnp.int32(0)})]:
    try:
        lt.over_models(step, meshes["ModelParallel"])(*bad)
    except ValueError as error:
        print(error)
keys = lt.ModelParallel(4).place_state({"key": jax.random.split(jax.random.key(0), 4)})["key"]
assert len(keys.sharding.device_set) == 2
assert (jax.random.key_data(keys) == jax.random.key_data(jax.random.split(jax.random.key(0), 4))).all()
"""


@pytest.mark.slow  # a process of its own; test_over_models_names_the_sizes_... is its smoke test
def test_over_models_splits_the_models_over_any_mesh():
    """With ``mesh=`` over two CPU devices (a process of its own): the mesh of
    ``jax.make_mesh`` (explicit axes: shard_map took only arguments split already), of
    ``ModelParallel`` and a 2-d one (its spec split the models' second axis over the
    mesh's second axis) all give the steps alone; a mismatched model axis is the
    error without a mesh, with the whole arguments' sizes (was each device's share: "1,
    2" for 4 and 2 models, shard_map's error for a scalar); and ``ModelParallel`` places
    typed PRNG keys (was a TypeError from NumPy)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", SPLIT_OVER_TWO_DEVICES], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 0, result.stderr[-3000:]
    prefix = "over_models: every argument needs the same leading axis of models; got leading sizes "
    assert result.stdout.splitlines() == [
        prefix + "2, 4",
        "over_models: 3 models cannot be split evenly over the mesh's 2 devices; use a multiple of 2",
        prefix + "4, none (a scalar)"]

"""The training loop: steps, metrics, checkpoints, resume, your own task/model/optimizer, devices."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstm_jax import train as lt
from lstm_jax.tasks import from_arrays
from lstm_jax.train import loop
from lstm_jax.train.config import Config

TINY = Config(task="adding", task_options={"length": 12}, hidden_size=16, batch_size=16, steps=40,
              learning_rate=1e-2, warmup_steps=5, log_every=10, eval_every=20, eval_batches=2,
              checkpoint_every=20)


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def sine_arrays(n=96, steps=10, seed=0):
    """Is a noisy sine rising or falling at its last step? A small classification set."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.arange(steps)[None, :] * 0.5
    xs = (np.sin(t + phase) + 0.05 * rng.normal(size=(n, steps)))[..., None].astype(np.float32)
    labels = (np.cos(t[:, -1:] + phase)[:, 0] > 0).astype(np.int32)
    return xs, labels


# ---- config -------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", float("nan"), "`learning_rate` must be a finite number > 0, got nan"),
    ("learning_rate", float("inf"), "`learning_rate` must be a finite number > 0, got inf"),
    ("learning_rate", -1.0, "`learning_rate` must be a finite number > 0, got -1.0"),
    ("weight_decay", float("nan"), "`weight_decay` must be a finite number >= 0, got nan"),
    ("weight_decay", -1.0, "`weight_decay` must be a finite number >= 0, got -1.0"),
    ("grad_clip", float("nan"), "`grad_clip` must be a finite number >= 0, got nan"),
    ("grad_clip", float("-inf"), "`grad_clip` must be a finite number >= 0, got -inf"),
    ("warmup_steps", -1, "`warmup_steps` must be >= 0, got -1"),
    ("seed", 2**63, "`seed` must be in [-2**63, 2**63) (the ints jax.random.key takes), "
                    "got 9223372036854775808"),
    ("seed", -2**63 - 1, "`seed` must be in [-2**63, 2**63) (the ints jax.random.key takes), "
                         "got -9223372036854775809"),
])
def test_an_out_of_range_hyperparameter_names_its_field_and_value(field, value, message):
    with pytest.raises(lt.ConfigError) as error:
        dataclasses.replace(TINY, **{field: value})
    assert str(error.value) == message


def test_the_ends_of_the_ranges_are_accepted():
    for changes in [{"weight_decay": 0.0, "grad_clip": 0.0, "warmup_steps": 0},
                    {"seed": -2**63}, {"seed": 2**63 - 1}]:
        config = dataclasses.replace(TINY, **changes)
        assert loop.run_keys(config.seed).init == config.seed  # jax.random.key takes it


def test_a_nan_on_the_command_line_is_one_line_before_a_run_directory(tmp_path, monkeypatch, capsys):
    from lstm_jax import cli

    monkeypatch.chdir(tmp_path)
    for flags, message in [
        (["--learning-rate", "nan"], "`learning_rate` must be a finite number > 0, got nan"),
        (["--weight-decay", "inf"], "`weight_decay` must be a finite number >= 0, got inf"),
        (["--sweep", "learning_rate=nan,0.1"], "`learning_rate` must be a finite number > 0, got nan"),
        (["--seed", "99999999999999999999"], "`seed` must be in [-2**63, 2**63)"),
        (["--seeds", "1,99999999999999999999"], "--seeds must be in [-2**63, 2**63) (the ints "
                                                 "jax.random.key takes), got 99999999999999999999"),
    ]:
        assert cli.main(["train", "adding", *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"lstm-jax: error: {message}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # no run directory


def test_a_sweep_of_a_bad_value_is_refused_with_its_field():
    with pytest.raises(lt.ConfigError, match=r"^`grad_clip` must be a finite number >= 0, got nan$"):
        lt.config.sweep_grid(TINY, {"grad_clip": [1.0, float("nan")]})
    with pytest.raises(lt.ConfigError, match=r"^`seeds` must be in \[-2\*\*63, 2\*\*63\)"):
        lt.config.group_runs(TINY, seeds=[0, 2**64])


# ---- steps --------------------------------------------------------------------------

def test_train_step_lowers_the_loss():
    prepared = lt.prepare(dataclasses.replace(TINY, steps=150))
    task, model, optimizer, keys = prepared.task, prepared.model, prepared.optimizer, prepared.keys
    state = lt.init_state(model, optimizer, keys.init)
    train_step = lt.make_train_step(model, task, optimizer)
    eval_step = lt.make_eval_step(model, task)
    batch = task.train_batch(jax.random.key(5), 0, 64)
    before = float(eval_step(state.params, batch)["loss"])
    for step in range(150):
        state, _ = train_step(state, task.train_batch(keys.data, step, 16))
    after = float(eval_step(state.params, batch)["loss"])
    assert int(state.step) == 150
    assert after < 0.5 * before and after < task.baselines["mse"]


def test_config_model_options_reach_the_layers():
    config = dataclasses.replace(TINY, cell="gru", num_layers=2, bidirectional=True,
                                 rnn_options={"zoneout": 0.1, "unroll": 2, "remat": True},
                                 cell_options={"bias": False})
    prepared = lt.prepare(config)
    params = prepared.model.init(jax.random.key(0))
    assert len(params["rnn"]) == 2 and params["readout"]["w"].shape == (32, 1)
    assert type(params["rnn"][0].forward).__name__ == "GRUParams"
    assert params["rnn"][0].forward.b is None  # bias=False reached the cell
    with pytest.raises(lt.ConfigError, match="unknown option 'zonout' of lj.rnn; its options: unroll"):
        lt.prepare(dataclasses.replace(TINY, rnn_options={"zonout": 0.1}))


def test_own_cells_per_layer_keep_the_configs_stack_options():
    """build_layer(cells=...): each layer its own cell (here the second without bias),
    with the config's bidirectional and dropout; a count other than num_layers is refused."""
    import lstm_jax as lj

    config = dataclasses.replace(TINY, num_layers=2, bidirectional=True, dropout=0.5)
    layer = lt.build_layer(config, cells=[lj.gru(16), lj.gru(16, bias=False)])
    first, second = layer.init(jax.random.key(0), 2)
    assert first.forward.b is not None and second.forward.b is None and second.backward.b is None
    xs = jnp.ones((3, 12, 2))
    assert layer.apply((first, second), xs)[1].shape == (3, 12, 32)
    dropped = layer.apply((first, second), xs, key=jax.random.key(1))[1]
    assert not np.allclose(dropped, layer.apply((first, second), xs)[1])  # dropout between layers
    with pytest.raises(ValueError, match="`cells` holds 1 cells for `num_layers` 2"):
        lt.build_layer(config, cells=[lj.gru(16)])


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_readouts_read_the_valid_steps(readout):
    xs, labels = sine_arrays(n=40)
    lengths = np.full(40, 10)
    lengths[::2] = 6
    task = from_arrays(xs, labels, seq_lengths=lengths)
    config = dataclasses.replace(TINY, readout=readout)
    model = lt.prepare(config, task=task).model
    params = model.init(jax.random.key(0))
    padded = np.array(xs[:4])
    changed = padded.copy()
    changed[:, 6:] = 100.0  # past the length of rows 0 and 2
    out_a = model.apply(params, padded, jnp.array([6, 10, 6, 10]))
    out_b = model.apply(params, changed, jnp.array([6, 10, 6, 10]))
    np.testing.assert_allclose(out_a[::2], out_b[::2], rtol=1e-6)
    assert not np.allclose(out_a[1::2], out_b[1::2])


def test_token_inputs_are_embedded():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 5, size=(64, 8))
    task = from_arrays(tokens, tokens, readout="every", test_fraction=0.25)  # echo each token
    config = dataclasses.replace(TINY, embed_size=12, readout="task")
    model = lt.prepare(config, task=task).model
    params = model.init(jax.random.key(0))
    assert params["embed"].shape == (5, 12)
    assert model.apply(params, tokens[:3]).shape == (3, 8, 5)
    with pytest.raises(lt.ConfigError, match="`readout` 'last' does not fit task 'arrays', whose targets are per step"):
        lt.prepare(dataclasses.replace(config, readout="last"), task=task)


# ---- the loop -----------------------------------------------------------------------

def test_train_writes_metrics_plot_record_and_checkpoints(tmp_path):
    result = lt.train(TINY, tmp_path, progress=False)
    records = read_metrics(tmp_path)
    train_lines = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train_lines] == [10, 20, 30, 40]
    assert [r["step"] for r in records if r["split"] == "eval"] == [20, 40]
    for line in train_lines:
        assert {"loss", "grad_norm", "learning_rate", "steps_per_s", "elapsed_s", "time"} <= set(line)
    schedule = lt.learning_rate_schedule(TINY)
    assert train_lines[0]["learning_rate"] == pytest.approx(float(schedule(9)))
    assert records[-1] == result["metrics"] and records[-1]["final"] is True
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["20", "40"]
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["config"]["hidden_size"] == 16 and record["source"] == "config"
    assert set(record["versions"]) >= {"jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "lstm_jax"}
    assert record["devices"] == [str(d) for d in jax.devices()]
    assert record["command"] is None  # made in Python, not by the lstm-jax command
    with pytest.raises(lt.ConfigError, match="already holds a run; continue it with resume=True"):
        lt.train(TINY, tmp_path, progress=False)


@pytest.mark.slow
def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    config = dataclasses.replace(TINY, checkpoint_every=1, keep_checkpoints=10)
    poison = optax.chain(optax.sgd(1e-3), optax.scale_by_schedule(lambda n: jnp.where(n >= 2, jnp.nan, 1.0)))
    with pytest.raises(lt.TrainingDiverged, match=r"non-finite values at step 3 \(loss 0\.\d+, parameter norm nan\); training stopped\. Last good: checkpoint .*checkpoints/2"):
        lt.train(config, tmp_path, optimizer=poison, progress=False)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [1, 2]
    params = lt.load(tmp_path).params
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(params))


def test_a_nan_reported_late_names_its_step_and_no_checkpoint_follows_it(tmp_path):
    """The loop reads the metrics only at lines and checkpoints, yet names the first bad step."""
    config = dataclasses.replace(TINY, log_every=10, checkpoint_every=5, keep_checkpoints=10)
    poison = optax.chain(optax.sgd(1e-3), optax.scale_by_schedule(lambda n: jnp.where(n >= 12, jnp.nan, 1.0)))
    with pytest.raises(lt.TrainingDiverged, match=r"non-finite values at step 13 \(loss \d\.\d+, parameter norm nan\); training stopped\. Last good: checkpoint .*checkpoints/10$"):
        lt.train(config, tmp_path, optimizer=poison, progress=False)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [5, 10]
    assert [r["step"] for r in read_metrics(tmp_path)] == [10]


class Watched:
    """A metric of step ``step`` that notes in ``events`` when the host reads it."""

    def __init__(self, value, step, events):
        self.value, self.step, self.events = value, step, events

    def block_until_ready(self):
        self.value.block_until_ready()
        return self

    def __array__(self, dtype=None, copy=None):
        self.events.append(("read", self.step))
        return np.asarray(self.value, dtype)

    def __float__(self):
        self.events.append(("read", self.step))
        return float(self.value)


def test_the_host_makes_the_next_batch_before_it_reads_a_step_and_reads_only_at_lines(
        tmp_path, monkeypatch):
    events = []  # ("batch", s): batch s made; ("step", s): step s dispatched; ("read", s)
    real_make = loop.make_train_step

    def make_train_step(*args, **options):
        step = real_make(*args, **options)

        def watched(state, batch, *hyperparams):
            state, metrics = step(state, batch, *hyperparams)
            done = int(state.step)
            events.append(("step", done))
            return state, {name: Watched(value, done, events) for name, value in metrics.items()}

        return watched

    monkeypatch.setattr(loop, "make_train_step", make_train_step)
    task = lt.prepare(TINY).task
    real_batch = task.train_batch

    def train_batch(key, step, batch_size):
        events.append(("batch", step))
        return real_batch(key, step, batch_size)

    config = dataclasses.replace(TINY, steps=30, log_every=10, eval_every=15, checkpoint_every=30)
    lt.train(config, tmp_path, task=task._replace(train_batch=train_batch), progress=False)
    for step in range(1, config.steps):  # batch s is made for step s + 1, before step s is read
        reads = [i for i, event in enumerate(events) if event == ("read", step)]
        assert events.index(("batch", step)) < min(reads), step
    read_at = sorted({len([e for e in events[:i] if e[0] == "step"])
                      for i, event in enumerate(events) if event[0] == "read"})
    assert read_at == [10, 15, 20, 30]  # the lines, the evaluation, the last step


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def interrupt_at(monkeypatch, moment: str) -> None:
    """Send this process SIGINT, as Ctrl-C would, just after training step 13 ("step") or
    inside the first evaluation, that of step 20 ("eval")."""
    name = "make_train_step" if moment == "step" else "make_eval_step"
    real = getattr(loop, name)

    def make(*args, **options):
        compiled = real(*args, **options)

        def call(*inputs):
            out = compiled(*inputs)
            if isinstance(out[0].step if moment == "step" else out["loss"], jax.core.Tracer):
                return out  # traced, not run: a group's check that its runs are one program
            if moment == "eval" or int(np.ravel(out[0].step)[0]) == 13:  # runs at once: (N,)
                signal.raise_signal(signal.SIGINT)
            return out

        return call

    monkeypatch.setattr(loop, name, make)


@pytest.mark.parametrize("moment, step", [("step", 13), ("eval", 20)])
def test_an_interrupt_checkpoints_the_step_reached_and_resume_ends_bit_identical(
        moment, step, tmp_path, monkeypatch, capsys):
    config = dataclasses.replace(TINY, keep_checkpoints=10)
    with monkeypatch.context() as patch:
        interrupt_at(patch, moment)
        with pytest.raises(lt.Interrupted) as stopped:
            lt.train(config, tmp_path / "stopped", progress=True)
    assert (stopped.value.step, stopped.value.checkpoint, stopped.value.exit_code) == (step, step, 130)
    checkpoints = tmp_path / "stopped" / "checkpoints"
    assert sorted(int(p.name) for p in checkpoints.iterdir()) == [step]
    records = read_metrics(tmp_path / "stopped")
    assert [(r["split"], r["step"]) for r in records] == {
        13: [("train", 10), ("train", 13)], 20: [("train", 10), ("train", 20)]}[step]
    progress_lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("adding: step")]
    assert progress_lines[-1].startswith(f"adding: step {step}/40  loss {records[-1]['loss']:.4g}  ")

    resumed = lt.train(config, tmp_path / "stopped", resume=True, progress=False)
    straight = lt.train(config, tmp_path / "straight", progress=False)
    assert_trees_equal(resumed["state"], straight["state"])
    assert resumed["metrics"] == straight["metrics"]
    evals = {run: [r for r in read_metrics(tmp_path / run) if r["split"] == "eval"]
             for run in ("stopped", "straight")}
    assert evals["stopped"] == evals["straight"] and [r["step"] for r in evals["straight"]] == [20, 40]
    train_steps = [r["step"] for r in read_metrics(tmp_path / "stopped") if r["split"] == "train"]
    assert train_steps == sorted({10, 20, 30, 40, step})  # every step's loss is in a line
    # TensorBoard hides only what comes after the step resumed from, not its line
    from tensorboardX.proto.event_pb2 import SessionLog
    from test_report import read_events

    starts = [event.step for path in (tmp_path / "stopped").glob("events.out.tfevents.*")
              for event in read_events(path) if event.session_log.status == SessionLog.START]
    assert starts == [step + 1]


@pytest.mark.slow
def test_resume_extends_a_run_and_a_finished_run_is_left_alone(tmp_path):
    short = dataclasses.replace(TINY, steps=20, warmup_steps=0)
    lt.train(short, tmp_path, progress=False)
    before = (tmp_path / "metrics.jsonl").read_text()
    again = lt.train(short, tmp_path, resume=True, progress=False)
    assert again["already_finished"] and (tmp_path / "metrics.jsonl").read_text() == before
    longer = lt.train(dataclasses.replace(short, steps=40), tmp_path, resume=True, progress=False)
    assert longer["metrics"]["step"] == 40 and not longer["already_finished"]
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records if r.get("final")] == [40]  # one final line, the last
    assert json.loads((tmp_path / "config.json").read_text())["config"]["steps"] == 40
    with pytest.raises(lt.ConfigError, match="`steps` 30 is below step 40 that .* has reached; "
                                             "a larger `steps` extends a run$"):
        lt.train(dataclasses.replace(short, steps=30), tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_own_arrays_train_evaluate_and_load_for_inference(tmp_path):
    xs, labels = sine_arrays()
    task = from_arrays(xs, labels, test_fraction=0.25)
    config = dataclasses.replace(TINY, steps=60, eval_every=1000, checkpoint_every=30)
    result = lt.train(config, tmp_path, task=task, progress=False)
    assert result["metrics"]["accuracy"] > 0.8
    assert "epoch" in read_metrics(tmp_path)[0]
    with pytest.raises(lt.ConfigError, match="trained with a task or model given in Python"):
        lt.load(tmp_path)
    trained = lt.load(tmp_path, task=task)
    assert trained.step == 60
    batches = task.eval_batches(None, config.batch_size, 1)
    correct = sum(float(jnp.sum((jnp.argmax(trained.predict(b.xs, b.seq_lengths), -1) == b.targets)
                                * b.weights)) for b in batches)
    assert correct / sum(float(b.weights.sum()) for b in batches) == pytest.approx(
        result["metrics"]["accuracy"], abs=1e-6)
    assert lt.evaluate(tmp_path, task=task)["metrics"] == pytest.approx(
        {k: v for k, v in result["metrics"].items() if k not in ("split", "step", "final")})


@pytest.mark.slow
def test_own_model_and_optimizer_train_and_evaluate(tmp_path):
    import flax.linen as nn

    class Mean(nn.Module):  # a non-recurrent model of one's own: mean over time, then dense
        @nn.compact
        def __call__(self, xs):
            return nn.Dense(1)(jnp.mean(xs, axis=1))

    module = Mean()
    model = lt.Model(
        init=lambda key: module.init(key, jnp.zeros((1, 12, 2)))["params"],
        apply=lambda params, xs, seq_lengths=None, key=None: module.apply({"params": params}, xs),
    )
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.05)
    config = dataclasses.replace(TINY, steps=20)
    result = lt.train(config, tmp_path, model=model, optimizer=optimizer, progress=False)
    assert read_metrics(tmp_path)[0]["learning_rate"] == pytest.approx(0.05)
    evaluated = lt.evaluate(tmp_path, model=model)
    assert evaluated["step"] == 20
    assert evaluated["metrics"]["mse"] == pytest.approx(result["metrics"]["mse"], rel=1e-6)


@pytest.mark.slow
def test_evaluate_works_whatever_optimizer_the_run_used(tmp_path):
    config = dataclasses.replace(TINY, steps=10)
    lt.train(config, tmp_path, optimizer=optax.chain(optax.clip(1.0), optax.lion(1e-3)), progress=False)
    assert lt.evaluate(tmp_path)["step"] == 10


FOUR_DEVICES = textwrap.dedent("""
    import dataclasses, sys
    import jax, numpy as np
    from lstm_jax import train as lt
    from lstm_jax.train.config import Config
    assert jax.device_count() == 4, jax.devices()
    config = Config(task="adding", task_options={"length": 12}, hidden_size=16, batch_size=16,
                    steps=8, learning_rate=1e-2, warmup_steps=2, eval_every=4, eval_batches=2,
                    checkpoint_every=8, log_every=4, dropout=0.0)
    out = sys.argv[1]
    four = lt.train(config, out + "/four", progress=False)["state"]
    one = lt.train(config, out + "/one", progress=False, devices=jax.devices()[:1])["state"]
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(jax.tree.leaves(four.params), jax.tree.leaves(one.params)))
    print("max difference", worst)
    assert worst <= 1e-6, worst
    leaf = jax.tree.leaves(four.params)[0]
    assert len(leaf.sharding.device_set) == 4
    try:
        lt.train(dataclasses.replace(config, batch_size=18), out + "/bad", progress=False)
    except ValueError as error:
        assert "`batch_size` 18 is not divisible by the 4 devices" in str(error), error
    else:
        raise AssertionError("no error for batch_size 18 on 4 devices")
    print("ok")
""")


@pytest.mark.slow
def test_four_devices_match_one_device(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# ---- inference ----------------------------------------------------------------------

def trained_on(task, config=Config(hidden_size=8, batch_size=16)):
    """A Trained of ``task`` with initial params: what ``lt.load`` gives, without training."""
    model = lt.build_model(config, task)
    return lt.Trained("mine", config, task, model, model.init(jax.random.key(0)), 0)


def test_a_model_trained_on_padded_sequences_requires_their_lengths():
    xs, labels = sine_arrays()
    lengths = np.random.default_rng(1).integers(3, 11, size=len(xs))
    padded = trained_on(from_arrays(xs, labels, seq_lengths=lengths))
    assert padded.task.variable_lengths
    with pytest.raises(ValueError) as error:
        padded.predict(xs[:4])
    assert str(error.value) == (
        "`seq_lengths` is required: the model of 'mine' was trained on padded sequences of "
        "different lengths, and without them the padding is read as data; pass the (B,) "
        "valid lengths (T for a sequence without padding)")
    by_hand = padded.model.apply(padded.params, xs[:4], lengths[:4])
    np.testing.assert_array_equal(padded.predict(xs[:4], lengths[:4]), by_hand)
    for wrong, values in (([11, 3, 3, 3], r"\[3, 11\]"), ([-1, 3, 3, 3], r"\[-1, 3\]")):
        with pytest.raises(ValueError, match=rf"`seq_lengths` must lie in \[0, T=10\], got values in {values}"):
            padded.predict(xs[:4], np.array(wrong))  # as layer.apply says it, not run silently
    full = trained_on(from_arrays(xs, labels))
    assert not full.task.variable_lengths
    np.testing.assert_allclose(full.predict(xs[:4]), full.predict(xs[:4], np.full(4, 10)),
                               atol=1e-6)


@pytest.mark.parametrize("temperature", [-0.5, float("nan"), float("inf")])
def test_sampling_at_a_temperature_not_finite_and_non_negative_is_a_config_error(temperature):
    ids = (np.arange(40, dtype=np.int32) % 6).reshape(8, 5)
    trained = trained_on(from_arrays(ids, np.roll(ids, -1, axis=1), readout="every"))
    with pytest.raises(lt.ConfigError) as error:
        trained.sample([1, 2], 3, temperature=temperature)
    assert str(error.value) == f"`temperature` must be a finite float >= 0, got {temperature!r}"


def test_sampling_again_reuses_the_compiled_draw():
    ids = np.random.default_rng(0).integers(0, 6, size=(40, 7)).astype(np.int32)
    trained = trained_on(from_arrays(ids, np.roll(ids, -1, axis=1), readout="every"))
    traced = []

    def counting_step(params, carry, xs):  # runs only while jax traces
        traced.append(xs.shape)
        return trained.model.step(params, carry, xs)

    counted = trained._replace(model=trained.model._replace(step=counting_step))
    first = counted.sample([1, 2, 3], 5, temperature=0.0)
    assert traced and first.shape == (5,)
    traces = len(traced)
    counted.sample([3, 2, 1], 5, temperature=0.0, seed=1)  # same lengths: nothing traced again
    assert len(traced) == traces
    np.testing.assert_array_equal(first, trained.sample([1, 2, 3], 5, temperature=0.0))

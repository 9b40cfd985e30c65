"""Sweeps (``lt.train(..., sweep=...)``, ``lstm-jax train --sweep``): runs that differ in
values the compiled step does not hold train as one program, each equal to its run alone;
runs that differ in what the step compiles are refused before anything is written."""

import dataclasses
import shlex

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstm_jax import cli
from lstm_jax import train as lt
from test_seeds import assert_close_runs
from test_train import TINY, interrupt_at
from tests.helpers import SMALL

SWEEP = {"learning_rate": [0.01, 0.003], "cell_options.forget_bias": [0.0, 1.0]}


@pytest.mark.parametrize("weight_decay, warmup_steps, grad_clip",
                         [(0.0, 5, 1.0), (0.01, 0, 0.0), (0.1, 100, 0.5)])
def test_the_default_optimizer_is_optax_adamw_bit_for_bit(weight_decay, warmup_steps, grad_clip):
    """The same updates and the same state (old checkpoints restore), with its learning
    rate, weight decay and clipping bound compiled in or given as inputs."""
    config = dataclasses.replace(TINY, weight_decay=weight_decay, warmup_steps=warmup_steps,
                                 grad_clip=grad_clip, steps=30)
    warmup = min(warmup_steps, config.steps - 1)
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup,
                                                  max(config.steps, warmup + 1))
    reference = optax.adamw(schedule, weight_decay=weight_decay)
    if grad_clip:
        reference = optax.chain(optax.clip_by_global_norm(grad_clip), reference)
    params = {"w": jax.random.normal(jax.random.key(0), (5, 7)), "b": jnp.ones(3)}
    ours = lt.default_optimizer(config)
    assert jax.tree.structure(ours.init(params)) == jax.tree.structure(reference.init(params))

    def trained(optimizer, **given):
        @jax.jit
        def step(params, state, i, given):
            grads = jax.tree.map(lambda p: 3 * jnp.sin(p * (i + 1.0)), params)
            updates, state = optimizer.update(grads, state, params, **given)
            return optax.apply_updates(params, updates), state

        current, state = params, optimizer.init(params)
        for i in range(40):  # past `steps`: the schedule's floor too
            current, state = step(current, state, i, given)
        return current

    inputs = jax.tree.map(jnp.float32, lt.Hyperparams.of(config))
    expected = jax.tree.leaves(trained(reference))
    for got in (trained(ours), trained(ours, hyperparams=inputs)):
        for a, b in zip(jax.tree.leaves(got), expected, strict=True):
            np.testing.assert_array_equal(a, b)
    steps = jnp.arange(45)
    np.testing.assert_array_equal(jax.vmap(lt.learning_rate_schedule(config))(steps),
                                  jax.vmap(schedule)(steps))


def test_a_sweep_trains_every_combination_at_once_each_as_its_run_alone(tmp_path):
    together = lt.train(TINY, tmp_path / "sweep", sweep=SWEEP, progress=False)
    assert [r["run_dir"].name for r in together] == [
        "learning_rate=0.01-cell_options.forget_bias=0.0",
        "learning_rate=0.01-cell_options.forget_bias=1.0",
        "learning_rate=0.003-cell_options.forget_bias=0.0",
        "learning_rate=0.003-cell_options.forget_bias=1.0"]
    alone = lt.train(dataclasses.replace(TINY, learning_rate=0.003, cell_options={"forget_bias": 0.0}),
                     tmp_path / "alone", progress=False)
    assert_close_runs(together[2], alone)
    recorded = lt.load(together[2]["run_dir"]).config
    assert (recorded.learning_rate, recorded.cell_options) == (0.003, {"forget_bias": 0.0})
    finals = {r["run_dir"].name: r["metrics"]["loss"] for r in together}
    assert len(set(finals.values())) == 4  # four different runs


def test_a_sweep_of_the_clipping_bound_trains_at_once_each_as_its_run_alone(tmp_path):
    assert lt.Hyperparams._fields == lt.config.STEP_INPUTS  # what a group's step takes as inputs
    together = lt.train(TINY, tmp_path / "sweep", sweep={"grad_clip": [0.01, 1.0]}, progress=False)
    alone = lt.train(dataclasses.replace(TINY, grad_clip=0.01), tmp_path / "alone", progress=False)
    assert_close_runs(together[0], alone)
    assert together[0]["metrics"]["loss"] != together[1]["metrics"]["loss"]  # 0.01 clips


def test_runs_whose_steps_differ_are_refused_before_anything_is_written(tmp_path):
    deeper = dataclasses.replace(TINY, num_layers=2)
    for config, sweep, fields in [
        (deeper, {"dropout": [0.0, 0.1]}, "dropout"),
        (TINY, {"rnn_options.recurrent_dropout": [0.0, 0.1]}, "rnn_options.recurrent_dropout"),
        (TINY, {"hidden_size": [8, 16]}, "hidden_size"),
        (TINY, {"grad_clip": [1.0, 0.0]}, "grad_clip"),  # 0: no clipping, another program
        (TINY, {"learning_rate": [0.01, 0.003], "warmup_steps": [0, 5]}, "warmup_steps"),
    ]:
        with pytest.raises(lt.ConfigError, match=(
                rf"^runs that differ in {fields} cannot train at once: it is compiled into the "
                rf"training step; runs trained at once may differ only in the seed, "
                rf"learning_rate, weight_decay, grad_clip \(grad_clip among positive values\) "
                rf"and options read only at init \(such as cell_options' forget_bias\)$")):
            lt.train(config, tmp_path / "refused", sweep=sweep, seeds=[0, 1])
    with pytest.raises(lt.ConfigError, match=r"^runs trained at once share one loop: they cannot "
                                             r"differ in eval_every$"):
        lt.train(TINY, tmp_path / "refused", sweep={"eval_every": [10, 20]})
    assert not (tmp_path / "refused").exists()


def test_a_bad_sweep_is_a_config_error():
    for sweep, message in [
        ({}, r"`sweep` must map config fields to their values, got \{\}"),
        ([0.1], r"`sweep` must map config fields to their values, got \[0\.1\]"),
        ({"lr": [0.1]}, r"cannot sweep 'lr': name a config field or FIELD\.KEY of an options "
                        r"field \(task_options, cell_options, rnn_options\)"),
        ({"learning_rate.x": [0.1]}, r"cannot sweep 'learning_rate\.x'"),
        ({"learning-rate": [0.1]}, r"cannot sweep 'learning-rate': name a config field or "
                                   r"FIELD\.KEY of an options field \(task_options, cell_options, "
                                   r"rnn_options\); did you mean learning_rate\?$"),
        ({"seed": [1, 2]}, r"seeds are swept with `seeds`"),
        ({"learning_rate": []}, r"the values of learning_rate must be a non-empty list of "
                                r"distinct values, got \[\]"),
        ({"learning_rate": [0.1, 0.1]}, r"the values of learning_rate must be a non-empty list of "
                                        r"distinct values, got \[0\.1, 0\.1\]"),
        ({"learning_rate": [-1.0]}, r"`learning_rate` must be a finite number > 0, got -1\.0"),
        ({"task_options.name": ["a/b"]}, r"a swept value cannot name a directory: "
                                         r"'task_options\.name=a/b'"),
    ]:
        with pytest.raises(lt.ConfigError, match=f"^{message}"):
            lt.config.sweep_grid(TINY, sweep)


def test_bad_sweeps_on_the_command_line_are_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "run")
    for flags, message in [
        (["--sweep", "learning_rate"], "--sweep takes FIELD=V,V,... (e.g. learning_rate=0.001,0.003), "
                                       "got 'learning_rate'"),
        (["--sweep", "learning_rate=0.1,0.2", "--learning-rate", "0.1"],
         "give --learning-rate for every run or --sweep learning_rate=... for several, not both"),
        # named as written, not as its flag --learning-rate
        (["--sweep", "learning_rate=0.1,fast"],
         "--sweep learning_rate: could not convert string to float: 'fast'\n"),
        (["--sweep", "steps=0"], "`steps` must be positive, got 0\n"),  # its own check
        (["--sweep", "seed=1,2"], "seeds are swept with --seeds"),
        (["--sweep", "num_layers=1,2"], "runs that differ in num_layers cannot train at once"),
        # a bool field's values: true/false, not a value given to its flag --bidirectional
        (["--sweep", "bidirectional=true,false"],
         "runs that differ in bidirectional cannot train at once"),
        (["--sweep", "bidirectional=yes"], "`bidirectional` must be bool, got 'yes'"),
        # a field given twice: the first --sweep's values used to be dropped
        (["--sweep", "learning_rate=0.1,0.2", "--sweep", "learning_rate=0.3"],
         "--sweep learning_rate is given twice: give all its values in one --sweep "
         "learning_rate=V,V,...\n"),
        (["--sweep", "cell_options.forget_bias=0", "--sweep", "cell_options.forget_bias=1"],
         "--sweep cell_options.forget_bias is given twice"),
    ]:
        assert cli.main(["train", "adding", "--out", out, *flags, *SMALL]) == 2
        assert capsys.readouterr().err.startswith(f"lstm-jax: error: {message}")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_sweep_from_the_command_line_stops_and_continues(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    sweep = ["--sweep", "learning_rate=0.01,0.003", "--sweep", "cell_options.forget_bias=0,1"]
    flags = ["train", "adding", *sweep, "--steps", "20", *SMALL]
    with monkeypatch.context() as patch:
        interrupt_at(patch, "step")
        assert cli.main([*flags, "--out", str(out)]) == 130
    continue_with = shlex.join(["lstm-jax", "train", "adding", *sweep, "--out", str(out), "--resume"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGINT) at step 13; each run's last checkpoint is step 13, in "
        f"{out / 'RUN' / 'checkpoints'}. Continue with: {continue_with}")
    assert cli.main(["train", "adding", "--out", str(out), "--resume"]) == 2
    assert capsys.readouterr().err.startswith(f"lstm-jax: error: {out} holds runs trained at once (")
    assert cli.main([*shlex.split(continue_with)[1:], "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "learning_rate=0.003-cell_options.forget_bias=1: final evaluation:" in printed
    resumed = lt.load(out / "learning_rate=0.003-cell_options.forget_bias=1")
    assert (resumed.step, resumed.config.learning_rate, resumed.config.cell_options["forget_bias"]) \
        == (20, 0.003, 1)


def test_a_sweep_of_what_the_given_model_or_optimizer_ignores_is_refused(tmp_path):
    """A model or optimizer given in Python does not read the config's fields for it."""
    for options, sweep in [({"optimizer": optax.adam(1e-3)}, {"learning_rate": [0.01, 0.003]}),
                           ({"model": lt.build_model(TINY, lt.prepare(TINY).task)},
                            {"cell_options.forget_bias": [0.0, 1.0]})]:
        name = next(iter(sweep))
        with pytest.raises(lt.ConfigError, match=rf"^runs that differ in {name} would train "
                                                 rf"alike: neither the model nor the optimizer "
                                                 rf"that trains them reads it$"):
            lt.train(TINY, tmp_path / "alike", sweep=sweep, **options)
    assert not (tmp_path / "alike").exists()

"""`lstm-jax reproduce`: every variant × seed of an experiment, its summary, figure and table."""

import json
import statistics
import textwrap
from pathlib import Path

import pytest

from lstm_jax import train as lt
from lstm_jax.train import reproduce
from lstm_jax.train.report import MetricsLog
from tests.test_cli import run_cli

EXPERIMENT = textwrap.dedent('''
    """A tiny adding problem with two models."""
    from lstm_jax.train import Config

    DESCRIPTION = "tiny adding problem"
    SEEDS = (0, 1)
    VARIANTS = {"lstm": {}, "tanh": {"cell": "simple", "cell_options": {"bias": False}}}
    REFERENCE = {"source": "a paper, table 1", "published": "MSE 0.01", "metric": "mse",
                 "value": 0.01, "variant": "lstm", "note": "Short runs: far from the paper."}

    def get_config():
        return Config(task="adding", task_options={"length": 6}, cell_options={"bias": True},
                      hidden_size=8, batch_size=16, steps=4, warmup_steps=1, log_every=2,
                      eval_every=2, eval_batches=2, checkpoint_every=4)
''')


@pytest.fixture
def experiment_file(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(EXPERIMENT)
    return path


def test_plan_runs_every_variant_with_every_seed_and_merges_option_dicts(experiment_file):
    experiment = lt.load_experiment(str(experiment_file))
    runs = reproduce.plan(experiment)
    assert [(r.variant, r.seed) for r in runs] == [("lstm", 0), ("lstm", 1), ("tanh", 0), ("tanh", 1)]
    assert runs[2].config.cell == "simple" and runs[2].config.cell_options == {"bias": False}
    assert runs[0].config.cell == "lstm" and runs[3].config.seed == 1
    assert runs[2].config.task_options == {"length": 6}  # the experiment's own, kept

    halved = reproduce.plan(experiment, only=["tanh"], chosen_seeds=[5],
                            overrides=lambda c: lt.config.replace(c, steps=2))
    assert [(r.variant, r.seed, r.config.steps, r.config.cell) for r in halved] == [("tanh", 5, 2, "simple")]
    with pytest.raises(lt.ConfigError, match=r"unknown variant 'gru' of tiny; its variants: lstm, tanh"):
        reproduce.plan(experiment, only=["gru"])
    # each run once: two runs of one variant and seed used to train at once in one directory
    with pytest.raises(lt.ConfigError, match=r"^`only` must be distinct, got tanh, lstm, tanh$"):
        reproduce.plan(experiment, only=["tanh", "lstm", "tanh"])
    with pytest.raises(lt.ConfigError, match=r"^`seeds` must be distinct, got 5, 5$"):
        reproduce.plan(experiment, chosen_seeds=[5, 5])


@pytest.mark.parametrize("text, message", [
    ("VARIANTS = {'a b': {}}", r"variant name 'a b' must be letters, digits and _\.\+=-"),
    ("VARIANTS = {'a': 3}", r"VARIANTS\['a'\] must be a dict of config changes, got int"),
    ("VARIANTS = {}", "VARIANTS must be a non-empty dict"),
    ("VARIANTS = {'a': {'hiden_size': 3}}", r"variant 'a': unknown config field 'hiden_size'"),
    ("SEEDS = ()", "SEEDS must be a non-empty tuple of distinct ints"),
    ("SEEDS = (0, 0)", "SEEDS must be a non-empty tuple of distinct ints"),
    ("REFERENCE = {'sauce': 'x'}", "unknown REFERENCE key 'sauce'"),
    ("REFERENCE = {'variant': 'gru'}", "REFERENCE variant 'gru' is not one of VARIANTS"),
    ("SAMPLE = {'prompt': 'a'}", "SAMPLE must be a dict of prompt, length and temperature"),
])
def test_mistakes_in_an_experiments_row_are_named(tmp_path, text, message):
    path = tmp_path / "bad.py"
    path.write_text("from lstm_jax.train import Config\n\ndef get_config():\n    return Config()\n"
                    + text + "\n")
    experiment = lt.load_experiment(str(path))
    with pytest.raises(lt.ConfigError, match=message):
        reproduce.reference(experiment)
        reproduce.sample_options(experiment)
        reproduce.plan(experiment)


@pytest.mark.slow
def test_reproduce_writes_a_summary_true_to_the_runs_then_continues_without_retraining(
        experiment_file, tmp_path):
    runs_dir, results = tmp_path / "runs", tmp_path / "out" / "results"
    summary = reproduce.reproduce(str(experiment_file), runs_dir=runs_dir, results_dir=results,
                                  progress=False, command="lstm-jax reproduce tiny.py",
                                  log=lambda line: None)
    for name in ("lstm", "tanh"):
        finals = []
        for seed in (0, 1):
            records = MetricsLog(runs_dir / "tiny" / f"{name}-seed{seed}" / "metrics.jsonl").read()
            assert records[-1]["final"] and records[-1]["step"] == 4
            finals.append(records[-1]["mse"])
        variant = summary["variants"][name]
        assert variant["final"]["mse"] == finals and variant["seeds"] == [0, 1]
        assert variant["mean"]["mse"] == pytest.approx(statistics.mean(finals))
        assert variant["std"]["mse"] == pytest.approx(statistics.stdev(finals))
        assert variant["baselines"] == {"mse": pytest.approx(1 / 6, abs=1e-3)}
        assert variant["baseline_note"] == "always predicting 1.0, the mean of the target"
        assert all(w > 0 for w in variant["wall_s"])
    assert summary["variants"]["tanh"]["config"]["cell"] == "simple"
    for run in summary["runs"]:  # a variant's two seeds trained at once: each has half the time
        lines = [r for r in MetricsLog(Path(run["run_dir"]) / "metrics.jsonl").read()
                 if "elapsed_s" in r]
        assert run["at_once"] == lines[-1]["at_once"] == 2
        assert run["wall_s"] == lines[-1]["elapsed_s"] / 2
    curve = [r for r in summary["runs"] if r["variant"] == "lstm" and r["seed"] == 0][0]["curve"]
    assert [point["step"] for point in curve] == [2, 4]
    assert json.loads((results / "tiny.json").read_text()) == summary
    assert (results / "tiny.png").read_bytes()[:4] == b"\x89PNG"

    table = (tmp_path / "out" / "RESULTS.md").read_text()
    lstm = summary["variants"]["lstm"]
    row = [line for line in table.splitlines() if line.startswith("| [tiny]")][0]
    assert f"lstm {reproduce.ours(lstm, 'mse')}" in row and "a paper, table 1" in row
    assert "`lstm-jax reproduce tiny.py`" in row and "| 0, 1 |" in row
    assert "![tiny learning curves](results/tiny.png)" in table
    assert "Short runs: far from the paper." in table
    assert "Runs trained at once, up to 2 as one program: a variant's seeds" in table
    assert f"lstm: {reproduce._number(lstm['mean']['mse'])} against the published 0.01, short of" in table

    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("metrics.jsonl")}
    said = []
    again = reproduce.reproduce(str(experiment_file), runs_dir=runs_dir, results_dir=results,
                                progress=False, log=said.append)
    assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob("metrics.jsonl")} == before
    kept = [line for line in said if line.endswith("had finished at step 4: kept as it is")]
    assert len(kept) == len(summary["runs"])  # each run says it was not trained again
    assert again["variants"]["lstm"]["final"] == summary["variants"]["lstm"]["final"]


def test_runs_of_one_program_at_the_same_point_train_together():
    """A variant's seeds, and variants of one program (``--sweep``-able differences)."""
    experiment = lt.load_experiment("adding")
    runs = reproduce.plan(experiment, chosen_seeds=[0, 1])[:4]  # two variants x two seeds
    paths = [Path("/nonexistent") / f"{run.variant}-seed{run.seed}" for run in runs]
    first, second = runs[0].variant, runs[2].variant
    same = {first: ("program", [1]), second: ("program", [1])}
    assert reproduce._at_once(runs, paths, [False] * 4, same) == [[0, 1, 2, 3]]
    other = {first: ("program", [1]), second: ("another", [1])}
    assert reproduce._at_once(runs, paths, [False] * 4, other) == [[0, 1], [2, 3]]
    assert reproduce._at_once(runs, paths, [False, True, False, True], same) == [[0, 2], [1, 3]]


@pytest.mark.slow
def test_variants_of_one_program_train_at_once_each_as_its_run_alone(tmp_path):
    path = tmp_path / "sweepable.py"
    path.write_text(EXPERIMENT.replace(
        '''VARIANTS = {"lstm": {}, "tanh": {"cell": "simple", "cell_options": {"bias": False}}}''',
        '''VARIANTS = {"lstm": {}, "slow": {"learning_rate": 0.001},
                    "closed": {"cell_options": {"bias": True, "forget_bias": 0.0}}}'''))
    summary = reproduce.reproduce(str(path), runs_dir=tmp_path / "runs", results_dir=tmp_path / "results",
                                  progress=False, log=lambda line: None)
    assert {run["at_once"] for run in summary["runs"]} == {6}
    experiment = lt.load_experiment(str(path))
    alone = lt.train(reproduce.plan(experiment, only=["slow"], chosen_seeds=[1])[0].config,
                     tmp_path / "alone", experiment=experiment, progress=False)
    assert summary["variants"]["slow"]["final"]["mse"][1] == pytest.approx(alone["metrics"]["mse"], abs=1e-5)


@pytest.mark.slow
def test_a_run_directory_of_another_config_is_refused_before_anything_runs(experiment_file, tmp_path):
    runs_dir = tmp_path / "runs"
    reproduce.reproduce(str(experiment_file), runs_dir=runs_dir, results_dir=tmp_path / "results",
                        only=["lstm"], chosen_seeds=[0], progress=False, log=lambda line: None)
    bigger = lambda c: lt.config.replace(c, hidden_size=16)  # noqa: E731
    with pytest.raises(lt.ConfigError, match=r"lstm-seed0 holds a run whose hidden_size is 8, not "
                                             r"16; remove it or choose another runs_dir"):
        reproduce.reproduce(str(experiment_file), runs_dir=runs_dir, results_dir=tmp_path / "r2",
                            overrides=bigger, progress=False, log=lambda line: None)
    assert not (runs_dir / "tiny" / "tanh-seed0").exists() and not (tmp_path / "r2").exists()
    longer = lambda c: lt.config.replace(c, steps=6)  # noqa: E731  a larger --steps extends it
    summary = reproduce.reproduce(str(experiment_file), runs_dir=runs_dir,
                                  results_dir=tmp_path / "r3", only=["lstm"], chosen_seeds=[0],
                                  overrides=longer, progress=False, log=lambda line: None)
    assert summary["runs"][0]["curve"][-1]["step"] == 6


OWN_TASK = EXPERIMENT + textwrap.dedent('''
    def get_task():
        import numpy as np
        from lstm_jax.tasks import from_arrays

        xs = np.random.default_rng(0).normal(size=(64, 6, 2)).astype(np.float32)
        return from_arrays(xs, (xs[:, :, 0].sum(axis=1) > 0).astype(np.int32), name="own")
''')


@pytest.mark.slow  # trains four runs
def test_a_row_of_an_experiment_with_its_own_task_records_it_and_continues(tmp_path):
    path = tmp_path / "own.py"
    path.write_text(OWN_TASK.replace('"metric": "mse"', '"metric": "accuracy"'))
    runs_dir = tmp_path / "runs"
    kwargs = dict(runs_dir=runs_dir, results_dir=tmp_path / "results", only=["lstm"],
                  progress=False, log=lambda line: None)
    summary = reproduce.reproduce(str(path), **kwargs)
    record = json.loads((runs_dir / "own" / "lstm-seed0" / "config.json").read_text())
    assert record["config"]["task"] == "own" and summary["variants"]["lstm"]["task"] == "own"
    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("metrics.jsonl")}
    reproduce.reproduce(str(path), **kwargs)  # continues: the recorded task is this config's
    assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob("metrics.jsonl")} == before


@pytest.mark.parametrize("metric, value, mean, words", [
    ("accuracy", 0.91, 0.895, "gru: 0.895 against the published 0.91, short of it by 1.50 points"),
    ("accuracy", 0.91, 0.92, "gru: 0.92 against the published 0.91, at or better than it by 1.00 points"),
    ("accuracy_long", 0.5, 0.625, "gru: 0.625 against the published 0.5, at or better than it by 12.50 points"),
    ("accuracy_long", 0.9, 0.5, "gru: 0.5 against the published 0.9, short of it by 40.00 points"),
    ("bpc", 1.5, 1.4, "gru: 1.4 against the published 1.5, at or better than it by 0.10"),
    ("bpc", 1.5, 1.75, "gru: 1.75 against the published 1.5, short of it by 0.25"),
])
def test_the_gap_to_the_paper_is_stated_in_the_metrics_direction(metric, value, mean, words):
    summary = {"reference": {"metric": metric, "value": value, "variant": "gru"},
               "variants": {"gru": {"mean": {metric: mean}}}}
    assert reproduce.gap(summary) == words


def test_the_recorded_command_leaves_out_where_the_files_go_and_the_progress_bar():
    from lstm_jax.cli import _what_reproduces

    assert _what_reproduces(["reproduce", "copy", "--runs", "/tmp/r", "--seeds", "0", "1",
                             "--no-progress", "--results=out", "--steps", "5"]) == \
        "lstm-jax reproduce copy --seeds 0 1 --steps 5"
    assert _what_reproduces(["reproduce", "my exp.py", "--runs=/tmp/r"]) == "lstm-jax reproduce 'my exp.py'"


@pytest.mark.slow
def test_the_command_line_reproduces_and_renders_the_table(experiment_file, tmp_path):
    done = run_cli("reproduce", str(experiment_file), "--variants", "tanh", "--seeds", "3",
                   "--steps", "2", "--no-progress", "--runs", "runs", "--results", "res",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tiny (mse, mean ± std over seeds):\n  tanh" in done.stdout
    summary = json.loads((tmp_path / "res" / "tiny.json").read_text())
    assert summary["variants"]["tanh"]["seeds"] == [3] and summary["runs"][0]["config"]["steps"] == 2
    assert summary["command"] == f"lstm-jax reproduce {experiment_file} --variants tanh --seeds 3 --steps 2"
    (tmp_path / "RESULTS.md").unlink()
    rendered = run_cli("results", "--results", "res", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert "| [tiny](#tiny) |" in (tmp_path / "RESULTS.md").read_text()

    for args, message in [
        (["results", "--results", "nothing"], "no run summaries in nothing; make them with"),
        (["reproduce", str(experiment_file), "--variants", "gru"], "unknown variant 'gru' of tiny"),
        (["reproduce", str(experiment_file), "--hiden-size", "3"], "Unrecognized options"),
    ]:
        failed = run_cli(*args, cwd=tmp_path)
        assert failed.returncode == 2 and failed.stderr.startswith("lstm-jax: error: "), failed.stderr
        assert message in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert not Path(tmp_path / "runs" / "tiny" / "lstm-seed0").exists()


def test_reproduce_refuses_seed_and_folders_it_cannot_write_before_training(tmp_path, capsys):
    from lstm_jax import cli

    (tmp_path / "a_file").write_text("")
    cases = {
        ("--seed", "3"): "reproduce trains each variant with the row's seeds: choose them with "
                         "--seeds S ..., not --seed",  # it was ignored, and recorded in the summary
        ("--results", str(tmp_path / "a_file" / "res")):
            f"--results {tmp_path / 'a_file' / 'res'}: {tmp_path / 'a_file'} is a file",
        ("--runs", str(tmp_path / "a_file")): f"--runs {tmp_path / 'a_file'}: {tmp_path / 'a_file'} is a file",
        # a repeated --variants adds its variants; it used to keep the last one's alone
        ("--variants", "lstm-T100"): "--variants must be distinct, got lstm-T100, lstm-T100",
        ("--variants", "tanh-T100", "lstm-T100"): "--variants must be distinct, got lstm-T100, "
                                                  "tanh-T100, lstm-T100",
    }
    for extra, message in cases.items():
        code = cli.main(["reproduce", "adding", "--variants", "lstm-T100", "--seeds", "0",
                         "--steps", "2", "--runs", str(tmp_path / "runs"),
                         "--results", str(tmp_path / "res"), *extra])
        assert code == 2
        assert capsys.readouterr().err == f"lstm-jax: error: {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing trained or made


@pytest.mark.parametrize("stop", ["Interrupted", "StoppedAtOnce"])
def test_reproduce_stopped_by_a_signal_says_how_to_continue(stop, tmp_path, monkeypatch, capsys):
    """A first signal stops at a safe point, a second at once: both print the command that
    continues and exit 128 + the signal, never "nothing was written"."""
    import signal

    from lstm_jax import cli
    from lstm_jax.train import interrupts

    def stopped(*args, **kwargs):
        raise getattr(interrupts, stop)(signal.SIGTERM)

    monkeypatch.setattr(reproduce, "reproduce", stopped)
    args = ["reproduce", "adding", "--variants", "lstm-T100", "--runs", str(tmp_path / "runs"),
            "--results", str(tmp_path / "res")]
    assert cli.main(args) == 143
    assert capsys.readouterr().err == (
        "lstm-jax: interrupted (SIGTERM); the finished runs are kept and the unfinished ones (a "
        "variant's seeds train at once) continue from their last checkpoint. Continue with: "
        f"lstm-jax {' '.join(args)}\n")

"""The `lstm-jax` command as people use it: errors, interrupts, resume, own experiments."""

import gc
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import lstm_jax as lj
from lstm_jax import cli
from lstm_jax import train as lt
from lstm_jax.train import rundir
from tests.helpers import FINISHED, SMALL, extra_requirement


def run_cli(*args, cwd=None, timeout=300, env=None, wait=True):
    command = [sys.executable, "-m", "lstm_jax.cli", *args]
    environment = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def final_params(run_dir: Path):
    return lt.load(run_dir).params


def assert_same_params(a: Path, b: Path):
    for x, y in zip(jax.tree.leaves(final_params(a)), jax.tree.leaves(final_params(b))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_train_eval_list_end_to_end(tmp_path, capsys, monkeypatch):
    from lstm_jax import _machine

    kept = []  # train sets malloc to keep freed buffers, for one run as for several
    monkeypatch.setattr(_machine, "keep_freed_memory", lambda: kept.append("train") or True)
    out = tmp_path / "run"
    code = cli.main(["train", "adding", "--steps", "20", "--seed", "3", "--out", str(out),
                     "--checkpoint-every", "10", *SMALL])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"run directory: {out}" in printed and "(baseline 0.1667)" in printed
    assert "  baseline: always predicting 1.0, the mean of the target\n" in printed
    assert f"loss.png:       {out / 'loss.png'}" in printed
    record = json.loads((out / "config.json").read_text())
    assert record["config"]["seed"] == 3 and record["config"]["task_options"] == {"length": 12}
    assert record["source"] == "lstm_jax.experiments.adding"
    assert record["command"].startswith(f"lstm-jax train adding --steps 20 --seed 3 --out {out}")
    import matplotlib.image

    assert matplotlib.image.imread(out / "loss.png").ndim == 3  # a readable PNG
    assert cli.main(["eval", str(out)]) == 0
    assert kept == ["train"]  # once, and not by eval
    evaluated = capsys.readouterr().out
    assert "adding at step 20:" in evaluated and "baseline: always predicting 1.0" in evaluated
    assert cli.main(["list"]) == 0
    assert "adding problem, T=100" in capsys.readouterr().out


def test_help_lists_every_config_field_with_type_default_and_comment(capsys):
    assert cli.main(["train", "adding", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--out DIR" in text and "--resume" in text
    for field in lt.config.FIELDS:
        assert f"--{field.replace('_', '-')}" in text, field
    assert re.search(r"--hidden-size INT\s+H of every layer \(default: 64\)", text)
    assert "length=100" in text  # the experiment's own default


def test_option_values_need_no_quoting_and_merge_into_the_experiments(tmp_path):
    base = lt.load_experiment("adding").config()
    config = lt.config.cli(base, ["--cell-options", "activation=relu", "forget_bias=0",
                                  "--task-options", "length=30", "--cell", "gru",
                                  "--rnn-options", "learn_initial_carry=true",
                                  "fused_backward=FALSE"], prog="x")
    assert config.cell_options == {"activation": "relu", "forget_bias": 0}
    assert config.task_options == {"length": 30} and config.cell == "gru"
    assert config.rnn_options == {"learn_initial_carry": True, "fused_backward": False}


@pytest.mark.slow  # a fast sibling covers its path
def test_default_run_directory_is_under_runs(tmp_path):
    with_progress = [flag for flag in SMALL if flag != "--no-progress"]
    result = run_cli("train", "adding", "--steps", "4", "--log-every", "2", *with_progress,
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("adding-") and (run_dir / "metrics.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written elsewhere
    assert list(run_dir.glob("events.out.tfevents.*"))  # TensorBoard's files beside the metrics
    # not a terminal: a plain progress line every log_every steps, no carriage returns
    assert "\r" not in result.stdout + result.stderr
    assert re.findall(r"adding: step (\d)/4  loss [\d.]+", result.stderr) == ["2", "4"]


def test_run_directories_are_created_exclusively_under_a_race(tmp_path):
    made, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        made.append(rundir.create(None, "adding", runs=tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 8 and all(p.is_dir() for p in made)


SHIPPED = ", ".join(lt.experiments.shipped())  # adding, charlm, chorales, copy, ...
CELLS = ", ".join(lj.KINDS)  # lstm, gru, simple, mgu, ...


@pytest.mark.parametrize("args, message", [
    (["train"], f"train needs an experiment: {SHIPPED} or the path of your own .py file"),
    (["train", "nope"], f"unknown experiment 'nope'; known experiments: {SHIPPED}"),
    (["train", "missing_exp.py"], "no experiment file"),
    (["train", "adding", "--hiden-size", "3"], "Unrecognized options: --hiden-size; did you mean --hidden-size?"),
    (["train", "adding", "--hidden-size", "x"], "Error parsing --hidden-size: invalid literal for int()"),
    (["train", "adding", "--steps", "0"], "`steps` must be positive, got 0"),
    (["train", "adding", "--task-options", "length=1"], "`length` must be at least 2, got 1"),
    (["train", "adding", "--task-options", "lenght=50"], "unknown option 'lenght' of task 'adding'; its options: length"),
    (["train", "adding", "--cell", "gru2"], f"unknown cell 'gru2'; known cells: {CELLS}"),
    (["train", "adding", "--cell-options", "activaton=relu"], "unknown option 'activaton' of cell 'lstm'"),
    (["train", "adding", "--rnn-options", "zoneout=2.0"], "`zoneout` must be in [0, 1), got 2.0"),
    (["train", "adding", "--readout", "every"], "`readout` 'every' does not fit task 'adding'"),
    (["train", "adding", "--resume"], "--resume needs --out DIR"),
    (["train", "adding", "--out", "{file}/run"], "cannot create run directory {file}/run"),
    (["eval", "{tmp}/nothing"], "{tmp}/nothing/config.json not found: is {tmp}/nothing a run directory?"),
    (["eval", "{corrupt}"], "{corrupt}/config.json is not valid JSON"),
    (["eval", "{tmp}", "--steps", "3"], "unrecognized arguments: --steps 3 (see `lstm-jax eval --help`)"),
    (["eval", "{group}"], "{group} holds runs trained at once (seed0, seed1), not one run: give "
                          "one of them, e.g. {group}/seed0"),
])
def test_user_errors_are_one_line_exit_2_and_leave_nothing(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"experiment": "adding", "config": {')
    group = tmp_path / "group"
    for seed in (0, 1):
        (group / f"seed{seed}").mkdir(parents=True)
        (group / f"seed{seed}" / "config.json").write_text("{}")
    names = {"file": tmp_path / "a_file", "tmp": tmp_path, "corrupt": corrupt, "group": group}
    args = [a.format(**names) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstm-jax: error: ") and err.count("\n") == 1, err
    assert message.format(**names) in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory left


def test_bench_without_torch_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if not installed
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert err == ("lstm-jax: error: `lstm-jax bench` needs torch: pip install "
                   f"'{extra_requirement('torch')}'\n")


QUICK_COMMANDS = [["--help"], ["train", "--help"], ["train", "adding", "--help"],
                  ["eval", "--help"], ["reproduce", "--help"], ["sample", "--help"], ["frob"],
                  ["train"], ["train", "nope"], ["train", "adding", "--hiden-size", "3"], ["eval"],
                  ["train", "adding", "--seeds", "0,0"], ["train", "adding", "--seeds", "0", "--seed", "1"],
                  ["export", "--help"], ["export", "run"], ["export", "run", "--out", "f", "--step",
                                                            "--time", "3"],
                  ["export", "run", "--out", "f", "--platforms", "gpu"],
                  # a folder in use, refused before any run is prepared
                  ["train", "adding", "--seeds", "0,1", "--out", str(Path(__file__).parent)]]


def test_help_and_argument_errors_need_no_jax_orbax_or_bench(monkeypatch, capsys):
    for heavy in ("lstm_jax.bench", "lstm_jax.train.loop", "lstm_jax.train.checkpoint"):
        monkeypatch.setitem(sys.modules, heavy, None)  # importing it raises ImportError
    for args in QUICK_COMMANDS:
        try:
            code = cli.main(args)
        except SystemExit as exit:  # argparse's own --help
            code = exit.code
        assert code in (0, 2), args
    out = capsys.readouterr().out
    assert "bench" in out and "benchmark against flax and PyTorch" in out


def test_help_and_argument_errors_come_back_without_importing_jax():
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from lstm_jax.cli import main
        for args in {QUICK_COMMANDS!r}:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    main(args)
                except SystemExit:
                    pass
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("jax", "orbax")))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_output_read_by_a_reader_that_stops_ends_the_command_quietly(monkeypatch, tmp_path,
                                                                    capsys):
    """A BrokenPipeError (``lstm-jax list | head`` once head has its lines) ends the
    command with SIGPIPE's status and stdout pointed at /dev/null, no traceback; the real
    pipe: ``test_a_closed_pipe_ends_the_installed_command_quietly``."""
    def reader_gone(argv):
        raise BrokenPipeError(32, "Broken pipe")

    with open(tmp_path / "stdout", "w") as stdout:
        monkeypatch.setattr(cli, "_dispatch", reader_gone)
        monkeypatch.setattr(sys, "stdout", stdout)
        assert cli.main(["list"]) == 128 + signal.SIGPIPE
        print("after", flush=True)  # to /dev/null now, not to the file
    assert (tmp_path / "stdout").read_text() == ""
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_closed_pipe_ends_the_installed_command_quietly():
    """`lstm-jax train adding --help | head -1`: the help written into a pipe whose reader
    has gone ends with SIGPIPE's status and nothing on stderr (was a BrokenPipeError
    traceback)."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "lstm_jax.cli", "train", "adding", "--help"],
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (128 + signal.SIGPIPE, "")


@pytest.mark.slow
def test_errors_from_the_installed_command_have_no_traceback(tmp_path):
    result = run_cli("train", "adding", "--cell", "gru2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"lstm-jax: error: unknown cell 'gru2'; known cells: {CELLS}\n"
    assert list(tmp_path.iterdir()) == []


def test_resume_accepts_the_original_flags_extends_and_refuses_contradictions(
        finished_run, tmp_path, capsys):
    out = str(shutil.copytree(finished_run, tmp_path / "run"))
    flags = FINISHED
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert cli.main(["train", "adding", "--out", out, "--resume", *flags]) == 0
    assert f"{out} already finished at step 10" in capsys.readouterr().out
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == metrics  # nothing written
    assert cli.main(["train", "adding", "--out", out, "--resume", *flags, "--hidden-size", "9"]) == 2
    assert ("--hidden-size 9 contradicts the run in " + out + ", whose hidden_size is 8"
            in capsys.readouterr().err)
    assert cli.main(["train", "adding", "--out", out, "--resume", "--steps", "15", "--no-progress"]) == 0
    assert lt.load(tmp_path / "run").step == 15
    assert cli.main(["train", "adding", "--out", out, "--resume", "--steps", "12"]) == 2
    assert "--steps may only grow" in capsys.readouterr().err


def test_resume_continues_only_runs_that_are_there(finished_run, tmp_path, capsys):
    """A misspelt --out, a folder of one's own, or runs trained at once resumed without
    the --seeds that made them: each refused, nothing written, where --resume used to
    start a new run there."""
    thesis = tmp_path / "notarun"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("precious")
    group, negative = tmp_path / "group", tmp_path / "negative"
    for name in ("seed0", "seed1"):
        shutil.copytree(finished_run, group / name)
    for name in ("seed-1", "seed2"):
        shutil.copytree(finished_run, negative / name)
    dashes = tmp_path / "dashes"  # no seed's folder: int("--1") raised a traceback
    shutil.copytree(finished_run, dashes / "seed--1")
    refused = {
        tmp_path / "nonexist": f"--out {tmp_path / 'nonexist'} does not exist: --resume "
                               f"continues a run there; leave --resume out to start one",
        thesis: f"{thesis} is not a run directory (it has no config.json): --resume continues "
                f"a run; leave it out to start one in a new or empty directory",
        thesis / "thesis.tex": f"--out {thesis / 'thesis.tex'} is a file, not a run directory",
        group: f"{group} holds a run per seed (seed0, seed1); continue them with --seeds 0,1 --resume",
        negative: f"{negative} holds a run per seed (seed-1, seed2); continue them with --seeds "
                  f"-1,2 --resume",
        dashes: f"{dashes} holds runs trained at once (seed--1); continue them with the "
                f"--seeds and --sweep that started them, and --resume",
    }
    for out, message in refused.items():
        capsys.readouterr()
        assert cli.main(["train", "adding", "--resume", "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"lstm-jax: error: {message}\n"
    with_seeds = {
        (group, "0,2"): f"{group} holds no run seed2 (it holds seed0, seed1): continue runs "
                        f"trained at once with the --seeds and --sweep that started them",
        (group / "seed0", "0"): f"{group / 'seed0'} holds one run, not runs trained at once: "
                                f"continue it without --seeds and --sweep",
    }
    for (out, seeds), message in with_seeds.items():
        assert cli.main(["train", "adding", "--resume", "--out", str(out), "--seeds", seeds]) == 2
        assert capsys.readouterr().err == f"lstm-jax: error: {message}\n"
    assert not (tmp_path / "nonexist").exists() and not (group / "seed2").exists()
    assert [p.name for p in thesis.iterdir()] == ["thesis.tex"]
    assert sorted(p.name for p in (group / "seed0").iterdir()) == sorted(p.name for p in finished_run.iterdir())
    unstarted = tmp_path / "unstarted"  # an interrupt before the run started: resumable
    (unstarted / "checkpoints").mkdir(parents=True)
    assert cli._resumable(unstarted) and cli._resumable(finished_run)
    assert not cli._resumable(thesis) and not cli._resumable(tmp_path / "nonexist")
    assert cli.main(["train", "adding", "--out", ""]) == 2
    assert capsys.readouterr().err == "lstm-jax: error: --out needs a directory, got an empty one\n"


def damage(step_dir: Path) -> None:
    """Truncate a checkpoint's files, its _CHECKPOINT_METADATA among them."""
    for path in step_dir.rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_eval_of_a_run_whose_checkpoints_do_not_restore_is_an_input_error(finished_run, tmp_path, capsys):
    """A truncated checkpoint is bad input (DESIGN.md) for the commands that only read a
    run: `error:` and exit 2, as --resume of the same run says it."""
    run = shutil.copytree(finished_run, tmp_path / "run")
    for step_dir in (run / "checkpoints").iterdir():
        if step_dir.name.isdigit():
            damage(step_dir)
    capsys.readouterr()
    assert cli.main(["eval", str(run)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"lstm-jax: error: cannot restore any of the 2 checkpoints in "
                               f"{run / 'checkpoints'}") for line in lines), lines


def test_the_only_checkpoint_damaged_is_one_line_saying_what_to_do(tmp_path, capfd, caplog):
    out = tmp_path / "run"
    flags = ["--steps", "10", "--checkpoint-every", "10", *SMALL]
    assert cli.main(["train", "adding", "--out", str(out), *flags]) == 0
    damaged = out / "checkpoints" / "10"
    damage(damaged)
    capfd.readouterr()
    assert cli.main(["train", "adding", "--out", str(out), "--resume", "--no-progress"]) == 2
    gc.collect()  # orbax's abandoned coroutines, if any were left, would print now
    captured = capfd.readouterr()
    (line,) = captured.err.splitlines()  # nothing from orbax, absl or asyncio
    assert [r.getMessage() for r in caplog.records if r.name in ("absl", "asyncio")] == []
    assert line.startswith(f"lstm-jax: error: cannot restore checkpoint {damaged}: ")
    assert line.endswith(f"; remove {damaged} to train this run again from step 0, or start a "
                         f"new run in another directory")
    shutil.rmtree(damaged)  # as the line says
    assert cli.main(["train", "adding", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert lt.load(out).step == 10


@pytest.mark.slow
def test_the_only_checkpoint_damaged_from_the_installed_command_is_one_line(tmp_path):
    """The same in a process of its own: no noise when orbax's coroutines die at exit."""
    out = tmp_path / "run"
    assert cli.main(["train", "adding", "--out", str(out), "--steps", "10", *SMALL]) == 0
    damage(out / "checkpoints" / "10")
    resumed = run_cli("train", "adding", "--out", str(out), "--resume", "--no-progress")
    assert resumed.returncode == 2
    (line,) = resumed.stderr.splitlines()
    assert line.startswith(f"lstm-jax: error: cannot restore checkpoint {out / 'checkpoints' / '10'}")


def test_a_damaged_latest_checkpoint_is_reported_and_the_previous_one_used(
        finished_run, tmp_path, capsys):
    out = shutil.copytree(finished_run, tmp_path / "run")  # checkpoints at 5 and 10
    damage(out / "checkpoints" / "10")
    capsys.readouterr()
    assert cli.main(["eval", str(out)]) == 0
    captured = capsys.readouterr()
    assert "adding at step 5:" in captured.out
    assert f"checkpoint {out / 'checkpoints' / '10'}" in captured.err and "Traceback" not in captured.err
    assert cli.main(["train", "adding", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert lt.load(out).step == 10  # trained again from step 5


def ctrl_c_twice_at(monkeypatch, moment: str) -> None:
    """Ctrl-C twice in this process: as the first training step starts compiling
    ("compile"), or before the run's state is made ("start": config.json not yet written)."""
    from lstm_jax.train import loop

    def twice():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # stops at once: raised from here

    if moment == "compile":
        make = loop.make_train_step

        def make_train_step(*args, **options):
            step = make(*args, **options)
            return lambda *a: twice() or step(*a)

        monkeypatch.setattr(loop, "make_train_step", make_train_step)
    else:
        states = loop._starting_states
        monkeypatch.setattr(loop, "_starting_states", lambda *a: twice() or states(*a))


@pytest.mark.parametrize("moment", ["compile", "start"])
def test_ctrl_c_twice_once_the_run_directory_is_made_prints_the_command_that_continues(
        moment, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    flags = ["--steps", "20", *SMALL]
    with monkeypatch.context() as patch:
        ctrl_c_twice_at(patch, moment)
        assert cli.main(["train", "adding", "--out", str(out), *flags]) == 130
    if moment == "compile":  # config.json is written: the run continues from it
        command = f"lstm-jax train adding --out {out} --resume"
        saved = "no checkpoint was written yet, so resuming starts again from step 0"
    else:  # nothing recorded yet: the command itself, continued in its directory
        command = shlex.join(["lstm-jax", "train", "adding", "--out", str(out), *flags, "--resume"])
        saved = "nothing was trained yet"
    assert capsys.readouterr().err.splitlines() == [
        "lstm-jax: Ctrl-C received: stopping at the next safe point (Ctrl-C again to stop at once)",
        f"lstm-jax: interrupted (SIGINT); {saved}. Continue with: {command}"]
    assert (out / "checkpoints").is_dir()  # made, and kept for the command that continues
    assert cli.main(shlex.split(command)[1:]) == 0
    assert lt.load(out).step == 20 and lt.load(out).config.hidden_size == 8


@pytest.mark.slow
def test_ctrl_c_twice_from_outside_once_the_run_directory_is_made(tmp_path):
    """The same with real signals to a process of its own (INTERRUPTING, "compile")."""
    out = tmp_path / "run"
    flags = ["--steps", "20", *SMALL]
    stopped = subprocess.run([sys.executable, "-c", INTERRUPTING, "compile twice", "train",
                              "adding", "--out", str(out), *flags],
                             capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGINT); no checkpoint was written yet, so resuming starts "
        f"again from step 0. Continue with: lstm-jax train adding --out {out} --resume")
    resumed = run_cli("train", "adding", "--out", str(out), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert lt.load(out).step == 20


def test_a_signal_after_the_last_safe_point_is_not_an_exit_0(monkeypatch, capsys):
    """The command did all of its work: it says so, and exits with the signal's status."""
    real = lt.list_experiments
    monkeypatch.setattr(lt, "list_experiments",
                        lambda: signal.raise_signal(signal.SIGTERM) or real())
    assert cli.main(["list"]) == 143
    captured = capsys.readouterr()
    assert "adding problem, T=100" in captured.out
    assert captured.err.splitlines()[-1] == ("lstm-jax: interrupted (SIGTERM) as the command "
                                             "ended; everything was written")


def test_results_stopped_between_figures_says_which_were_redrawn(tmp_path, monkeypatch, capsys):
    from lstm_jax.train import reproduce

    results = tmp_path / "results"
    monkeypatch.setattr(reproduce, "read_summaries",
                        lambda folder: [{"experiment": "adding"}, {"experiment": "copy"}])

    def plot_summary(summary, path):  # SIGTERM as the first figure is drawn
        path.parent.mkdir(exist_ok=True)
        path.write_text("figure")
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(reproduce, "plot_summary", plot_summary)
    assert cli.main(["results", "--results", str(results)]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGTERM); redrew adding.png in {results}; "
        f"{tmp_path / 'RESULTS.md'} was not written. Start again with: lstm-jax results "
        f"--results {results}")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["adding.png", "results"]


def test_results_stopped_at_once_mid_figure_keeps_the_earlier_png(tmp_path, monkeypatch, capsys):
    """A second SIGTERM once a figure's first bytes are written: the PNG there before is
    kept whole, and no part of the new one is left."""
    from matplotlib.figure import Figure

    from lstm_jax.train import interrupts, reproduce

    results = tmp_path / "results"
    results.mkdir()
    (results / "adding.png").write_bytes(b"earlier figure")
    monkeypatch.setattr(reproduce, "read_summaries", lambda folder: [{"experiment": "adding"}])
    monkeypatch.setattr(reproduce, "summary_figure", lambda summary: Figure())

    def half_saved(fig, fname, **kwargs):
        with open(fname, "wb") if isinstance(fname, (str, Path)) else fname as file:
            file.write(b"\x89PNG\r\n\x1a\n")  # a PNG's first bytes
            raise interrupts.StoppedAtOnce(signal.SIGTERM)

    monkeypatch.setattr(Figure, "savefig", half_saved)
    assert cli.main(["results", "--results", str(results)]) == 143
    assert [(p.name, p.read_bytes()) for p in results.iterdir()] == [("adding.png",
                                                                     b"earlier figure")]
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"lstm-jax: interrupted (SIGTERM); {tmp_path / 'RESULTS.md'} was not written.")


INTERRUPTING = textwrap.dedent("""
    # Run the CLI with SIGINT sent to this process at a chosen moment: "compile" (just as
    # the first training step starts compiling; "compile twice": two SIGINTs then) or "save"
    # (inside the checkpoint save of step 10).
    import os, signal, sys
    from lstm_jax import cli
    from lstm_jax.train import checkpoint, loop
    moment = sys.argv[1]
    if moment.startswith("compile"):  # "compile twice": Ctrl-C again, which stops at once
        make = loop.make_train_step
        def make_train_step(*args, **options):
            step = make(*args, **options)
            def first(*a):
                os.kill(os.getpid(), signal.SIGINT)
                if moment == "compile twice":
                    os.kill(os.getpid(), signal.SIGINT)
                return step(*a)
            return first
        loop.make_train_step = make_train_step
    else:
        save = checkpoint.Checkpoints.save
        def interrupted_save(self, step, state):
            if step == 10:
                os.kill(os.getpid(), signal.SIGINT)
            return save(self, step, state)
        checkpoint.Checkpoints.save = interrupted_save
    sys.exit(cli.main(sys.argv[2:]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["compile", "save"])
def test_sigint_stops_cleanly_and_resume_is_bit_identical(moment, tmp_path):
    flags = ["--steps", "20", "--checkpoint-every", "10", *SMALL]
    out = tmp_path / "stopped"
    stopped = subprocess.run([sys.executable, "-c", INTERRUPTING, moment, "train", "adding",
                              "--out", str(out), *flags], capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr and "Segmentation" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.endswith(f"Continue with: lstm-jax train adding --out {out} --resume")
    reached = 10 if moment == "save" else 1  # the step in the save, or the first one
    assert f"at step {reached}; the last checkpoint is {out / 'checkpoints' / str(reached)}" in last
    assert lt.load(out).step == reached  # the interrupted save completed, or the step was saved
    resumed = run_cli("train", "adding", "--out", str(out), "--resume", *flags)
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    assert cli.main(["train", "adding", "--out", str(straight), *flags]) == 0
    assert_same_params(out, straight)


@pytest.mark.slow
def test_sigint_during_start_up_exits_130_and_writes_nothing(tmp_path):
    process = run_cli("train", "adding", "--out", str(tmp_path / "run"), *SMALL, wait=False)
    time.sleep(1.0)  # jax, flax and orbax are loading
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Segmentation" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("lstm-jax: interrupted")
    if not (tmp_path / "run").exists():
        assert stderr.strip().endswith(
            f"lstm-jax: interrupted (SIGINT); nothing was written. Start again with: "
            f"lstm-jax train adding --out {tmp_path / 'run'} {shlex.join(SMALL)}")


@pytest.mark.slow
def test_sigterm_from_outside_during_training_exits_143(tmp_path):
    out = tmp_path / "run"
    process = run_cli("train", "adding", "--out", str(out), "--steps", "100000", *SMALL, wait=False)
    deadline = time.time() + 120
    metrics = out / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text()):  # training has logged a line
        assert process.poll() is None and time.time() < deadline, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    step = int(re.search(r"interrupted \(SIGTERM\) at step (\d+);", last).group(1))
    assert f"the last checkpoint is {out / 'checkpoints' / str(step)}. Continue with: " in last
    assert lt.load(out).step == step  # the step reached is saved


OWN_EXPERIMENT = textwrap.dedent('''
    """Is a noisy sine rising at its last step? Your own arrays, trained by lstm-jax."""
    import numpy as np
    from lstm_jax.tasks import from_arrays
    from lstm_jax.train import Config

    DESCRIPTION = "my sine experiment"

    def get_config():
        return Config(hidden_size=16, batch_size=16, steps=60, learning_rate=1e-2,
                      warmup_steps=5, log_every=10, eval_every=30, checkpoint_every=30)

    def get_task():
        rng = np.random.default_rng(0)
        phase = rng.uniform(0, 2 * np.pi, size=(128, 1))
        t = np.arange(10)[None, :] * 0.5
        xs = np.sin(t + phase)[..., None].astype(np.float32)
        labels = (np.cos(t[:, -1:] + phase)[:, 0] > 0).astype(np.int32)
        return from_arrays(xs, labels, name="sine")
''')


@pytest.mark.slow
def test_own_experiment_file_trains_evaluates_and_resumes_from_the_command_line(tmp_path):
    elsewhere = tmp_path / "my_project"
    elsewhere.mkdir()
    (elsewhere / "sine_exp.py").write_text(OWN_EXPERIMENT)
    out = tmp_path / "run"
    first = run_cli("train", "sine_exp.py", "--out", str(out), "--steps", "30", "--no-progress",
                    cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    record = json.loads((out / "config.json").read_text())
    assert record["source"] == str(elsewhere / "sine_exp.py") and record["experiment"] == "sine_exp"
    resumed = run_cli("train", str(elsewhere / "sine_exp.py"), "--out", str(out), "--resume",
                      "--steps", "60", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    evaluated = run_cli("eval", str(out), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "sine_exp at step 60:" in evaluated.stdout and "accuracy" in evaluated.stdout
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    shown = float(re.search(r"accuracy\s+([\d.]+)", evaluated.stdout).group(1))
    assert shown == pytest.approx(final["accuracy"], abs=1e-3) and final["accuracy"] > 0.8

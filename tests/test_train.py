"""The training loop, checkpoints, resume, data parallelism and the CLI."""

import dataclasses
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lstm_jax import cli
from lstm_jax import train as lt
from lstm_jax.train.config import Config, apply_overrides

TINY = Config(task="adding", task_options={"length": 12}, hidden_size=16, batch_size=16, steps=40,
              learning_rate=1e-2, warmup_steps=5, log_every=10, eval_every=20, eval_batches=2,
              checkpoint_every=20)
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=300, env=None, wait=True):
    command = [sys.executable, "-m", "lstm_jax.cli", *args]
    environment = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def final_params(run_dir: Path, config: Config):
    """The params of the latest checkpoint in ``run_dir``."""
    task, model, optimizer, keys = lt.setup(config)
    state = lt.Checkpoints(run_dir / "checkpoints").restore(lt.init_state(model, optimizer, keys.init))
    return state


# ---- config -------------------------------------------------------------------------

def test_overrides_are_parsed_as_typed_literals():
    config = apply_overrides(TINY, ["hidden_size=32", "learning_rate=1", "bidirectional=True",
                                    "cell=gru", "task_options.length=30", "cell_options={'bias': False}"])
    assert config.hidden_size == 32 and config.learning_rate == 1.0
    assert config.bidirectional is True and config.cell == "gru"
    assert config.task_options == {"length": 30} and config.cell_options == {"bias": False}
    assert TINY.task_options == {"length": 12}  # the original is untouched


@pytest.mark.parametrize("override, message", [
    ("hiden_size=3", "unknown config key 'hiden_size'; valid keys: task, task_options, cell"),
    ("hidden_size=3.5", "--set hidden_size=3.5: expected int, got float"),
    ("hidden_size=True", "--set hidden_size=True: expected int, got bool"),
    ("bidirectional=1", "--set bidirectional=1: expected bool, got int"),
    ("steps=__import__('os')", "is not a Python literal"),
    ("steps", "--set expects key=value, got 'steps'"),
    ("hidden_size.x=3", "'hidden_size' is not a dict field"),
    ("steps=0", "`steps` must be positive, got 0"),
    ("dropout=1.0", "`dropout` must be in [0, 1), got 1.0"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(lt.ConfigError, match=re.escape(message)):
        apply_overrides(TINY, [override])


def test_experiments_are_listed_and_unknown_names_rejected():
    assert "adding" in lt.list_experiments()
    assert isinstance(lt.load_experiment("adding"), Config)
    with pytest.raises(ValueError, match="unknown experiment 'nope'; known experiments: adding"):
        lt.load_experiment("nope")
    with pytest.raises(ValueError, match="unknown experiment"):
        lt.load_experiment("../etc/passwd")


# ---- steps and loop -----------------------------------------------------------------

def test_train_step_lowers_the_loss():
    config = dataclasses.replace(TINY, steps=150)
    task, model, optimizer, keys = lt.setup(config)
    state = lt.init_state(model, optimizer, keys.init)
    train_step = lt.make_train_step(model, task, optimizer)
    batch = task.batch(jax.random.key(5), 64)
    eval_step = lt.make_eval_step(model, task)
    before = float(eval_step(state.params, batch)["loss"])
    for step in range(150):
        state, metrics = train_step(state, task.batch(jax.random.fold_in(keys.data, step), 16))
    after = float(eval_step(state.params, batch)["loss"])
    assert int(state.step) == 150
    assert after < 0.5 * before and after < task.baselines["mse"]


def test_train_writes_metrics_plot_and_checkpoints(tmp_path):
    result = lt.train(TINY, tmp_path, experiment="adding", progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [10, 20, 30, 40]
    assert [r["step"] for r in records if r["split"] == "eval"] == [20, 40]
    assert records[-1] == result["metrics"] and records[-1]["final"] is True
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["20", "40"]
    assert json.loads((tmp_path / "config.json").read_text())["hidden_size"] == 16
    with pytest.raises(FileExistsError, match="already holds checkpoints; continue it with --resume"):
        lt.train(TINY, tmp_path, experiment="adding", progress=False)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    config = dataclasses.replace(TINY, checkpoint_every=1, keep_checkpoints=10)
    poison = optax.chain(optax.sgd(1e-3), optax.scale_by_schedule(lambda n: jnp.where(n >= 2, jnp.nan, 1.0)))
    with pytest.raises(lt.TrainingDiverged, match=r"non-finite values at step 3 \(loss 0\.\d+, parameter norm nan\); training stopped\. Last good: checkpoint .*checkpoints/2"):
        lt.train(config, tmp_path, experiment="adding", optimizer=poison, progress=False)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [1, 2]
    task, model, _, keys = lt.setup(config, poison)
    state = lt.Checkpoints(tmp_path / "checkpoints").restore(lt.init_state(model, poison, keys.init))
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(state.params))


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    args = ["train", "adding", "--no-progress", "--set", "task_options.length=12", "--set", "hidden_size=16",
            "--set", "batch_size=16", "--steps", "400", "--set", "checkpoint_every=50",
            "--set", "eval_every=1000", "--set", "dropout=0.0"]
    killed = tmp_path / "killed"
    process = run_cli(*args, "--out", str(killed), wait=False)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "100").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoints" / "400").exists()
    resumed = run_cli("train", "adding", "--resume", "--out", str(killed), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    finished = run_cli(*args, "--out", str(straight))
    assert finished.returncode == 0, finished.stderr
    config = lt.config.from_json((straight / "config.json").read_text())[1]
    a, b = final_params(killed, config), final_params(straight, config)
    assert int(a.step) == int(b.step) == 400
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == list(range(50, 401, 50))  # the killed run's extra lines were dropped
    assert records[-1]["final"] is True


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
    four = lt.train(config, out + "/four", experiment="adding", progress=False)["state"]
    one = lt.train(config, out + "/one", experiment="adding", progress=False,
                   devices=jax.devices()[:1])["state"]
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(jax.tree.leaves(four.params), jax.tree.leaves(one.params)))
    print("max difference", worst)
    assert worst <= 1e-6, worst
    leaf = jax.tree.leaves(four.params)[0]
    assert len(leaf.sharding.device_set) == 4
    try:
        lt.train(dataclasses.replace(config, batch_size=18), out + "/bad", experiment="adding",
                 progress=False)
    except ValueError as error:
        assert "`batch_size` 18 is not divisible by the 4 devices" in str(error), error
    else:
        raise AssertionError("no error for batch_size 18 on 4 devices")
    print("ok")
""")


def test_four_devices_match_one_device(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


# ---- CLI ----------------------------------------------------------------------------

def test_cli_train_eval_list_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "adding", "--steps", "20", "--seed", "3", "--out", str(out), "--no-progress",
                     "--set", "task_options.length=12", "--set", "hidden_size=8", "--set", "eval_batches=2",
                     "--set", "checkpoint_every=10"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"run directory: {out}" in printed and "(baseline 0.1667)" in printed
    assert f"loss.png:       {out / 'loss.png'}" in printed
    assert json.loads((out / "config.json").read_text())["seed"] == 3
    import matplotlib.image

    assert matplotlib.image.imread(out / "loss.png").ndim == 3  # a readable PNG
    assert cli.main(["eval", str(out)]) == 0
    assert "adding at step 20:" in capsys.readouterr().out
    assert cli.main(["list"]) == 0
    assert "adding problem, T=100" in capsys.readouterr().out


def test_cli_default_run_directory_is_under_runs(tmp_path):
    result = run_cli("train", "adding", "--steps", "2", "--no-progress", "--set", "task_options.length=4",
                     "--set", "hidden_size=4", "--set", "eval_batches=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("adding-") and (run_dir / "metrics.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing written elsewhere


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "lstm-jax: error: unknown experiment 'nope'; known experiments: adding"),
    (["train", "adding", "--set", "hidden=3"], "unknown config key 'hidden'; valid keys: task,"),
    (["train", "adding", "--resume"], "--resume needs --out DIR"),
    (["eval", "/nonexistent/run"], "/nonexistent/run/config.json not found"),
])
def test_cli_errors_are_one_clear_line(args, message, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# orbax's asyncio reader reports its closed event loop after a failed restore
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_truncated_missing_and_foreign_checkpoints_name_the_path(tmp_path, capsys):
    run = tmp_path / "run"
    lt.train(dataclasses.replace(TINY, steps=20), run, experiment="adding", progress=False)
    # a foreign checkpoint: the same experiment with another hidden size
    other = tmp_path / "other"
    other.mkdir()
    foreign = json.loads((run / "config.json").read_text()) | {"hidden_size": 8}
    (other / "config.json").write_text(json.dumps(foreign))
    shutil.copytree(run / "checkpoints", other / "checkpoints")
    assert cli.main(["eval", str(other)]) == 1
    assert f"checkpoint {other / 'checkpoints' / '20'}" in capsys.readouterr().err
    # a truncated checkpoint: its array files are gone
    for path in sorted((run / "checkpoints" / "20").rglob("*")):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert cli.main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"cannot restore checkpoint {run / 'checkpoints' / '20'}" in err and "Traceback" not in err
    # no checkpoint at all
    shutil.rmtree(run / "checkpoints")
    assert cli.main(["eval", str(run)]) == 1
    assert f"no checkpoint in {run / 'checkpoints'}" in capsys.readouterr().err

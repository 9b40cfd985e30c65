"""The shipped experiments: each runs end to end, and their data is what it promises; an
experiment file of your own loads as ``python FILE`` would run it."""

import dataclasses
import json
import math
import sys
from pathlib import Path

import jax
import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from lstm_jax import train as lt
from lstm_jax.tasks import (MissingData, copy_baseline, copy_batch, copy_task, digits_task,
                            from_arrays, moving_digits_batch, moving_digits_task, parity_task,
                            selective_copy_batch, selective_copy_task)
from lstm_jax.train import experiments, reproduce
from tests.helpers import extra_requirement
from tests.test_datasets import write_idx


def test_copy_baseline_is_the_papers():
    assert copy_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    assert round(copy_baseline(100), 4) == 0.1733


def test_copy_targets_repeat_the_symbols_after_the_delimiter():
    xs, targets = copy_batch(jax.random.key(0), 16, delay=7, length=4, symbols=5)
    xs, targets = np.asarray(xs), np.asarray(targets)
    assert xs.shape == targets.shape == (16, 7 + 8)
    assert np.all((xs[:, :4] >= 1) & (xs[:, :4] <= 5))
    assert np.all(xs[:, 4:10] == 0) and np.all(xs[:, 10] == 6) and np.all(xs[:, 11:] == 0)
    assert np.all(targets[:, :11] == 0) and np.array_equal(targets[:, 11:], xs[:, :4])
    again, _ = copy_batch(jax.random.key(0), 16, delay=7, length=4, symbols=5)
    np.testing.assert_array_equal(xs, again)


def test_copy_memoryless_predictor_scores_the_baseline():
    task = copy_task(delay=30)
    batch = task.train_batch(jax.random.key(0), 0, 64)
    steps = batch.xs.shape[1]
    logits = np.full((64, steps, 10), -1e9, np.float32)
    logits[:, :-10, 0] = 0.0  # blank, surely
    logits[:, -10:, 1:9] = 0.0  # then any of the 8 symbols, uniformly
    assert float(task.loss(logits, batch)) == pytest.approx(task.baselines["loss"], rel=1e-5)


def _parity_of_valid_bits(xs, seq_lengths):
    """NumPy reference: each row's parity, counted bit by bit up to its length."""
    return np.array([sum(int(b) for b in row[:n]) % 2 for row, n in zip(xs, seq_lengths)])


def test_parity_training_batches_are_bits_of_lengths_1_to_L_padded_with_zeros():
    task = parity_task(length=12)
    batch = task.train_batch(jax.random.key(3), 5, 256)
    xs, n = np.asarray(batch.xs), np.asarray(batch.seq_lengths)
    assert xs.shape == (256, 12) and set(np.unique(xs)) <= {0, 1}
    assert n.min() == 1 and n.max() == 12 and len(np.unique(n)) == 12
    assert not np.any(xs[np.arange(12)[None, :] >= n[:, None]])
    np.testing.assert_array_equal(batch.targets, _parity_of_valid_bits(xs, n))
    assert 0.4 < xs[np.arange(12)[None, :] < n[:, None]].mean() < 0.6


def test_parity_evaluation_batches_hold_training_lengths_2L_and_4L_in_thirds():
    task = parity_task(length=10)
    batches = task.eval_batches(jax.random.key(0), 30, 2)
    assert not np.array_equal(batches[0].xs, batches[1].xs)
    for batch in batches:
        xs, n = np.asarray(batch.xs), np.asarray(batch.seq_lengths)
        assert xs.shape == (30, 40)
        assert np.all(n[0::3] <= 10) and np.all(n[1::3] == 20) and np.all(n[2::3] == 40)
        assert not np.any(xs[np.arange(40)[None, :] >= n[:, None]])
        np.testing.assert_array_equal(batch.targets, _parity_of_valid_bits(xs, n))
        assert 0.35 < xs[2::3].mean() < 0.65  # the long rows are random bits to their end


def test_parity_metrics_are_accuracies_per_group_of_lengths():
    task = parity_task(length=10)
    batch = task.eval_batches(jax.random.key(1), 30, 1)[0]
    right = np.eye(2, dtype=np.float32)[np.asarray(batch.targets)]  # (B, 2) logits
    assert {k: float(v) for k, v in task.metrics(right, batch).items()} == {
        "accuracy": 1.0, "accuracy_2L": 1.0, "accuracy_long": 1.0}
    wrong_long = right.copy()
    wrong_long[2::3] = right[2::3, ::-1]
    wrong_long[1] = right[1, ::-1]  # one of the ten 2L rows
    found = task.metrics(wrong_long, batch)
    assert [float(found[k]) for k in ("accuracy", "accuracy_2L", "accuracy_long")] == \
        pytest.approx([1.0, 0.9, 0.0], abs=1e-6)
    short = task.train_batch(jax.random.key(1), 0, 8)  # no row of 2L or 4L: NaN, not 0
    found = task.metrics(np.zeros((8, 2), np.float32), short)
    assert np.isnan(found["accuracy_long"]) and np.isnan(found["accuracy_2L"])
    assert task.baselines == {"accuracy": 0.5, "accuracy_2L": 0.5, "accuracy_long": 0.5}


def test_selective_copy_hides_the_symbols_in_order_among_noise_at_varying_places():
    xs, targets = (np.asarray(a) for a in selective_copy_batch(jax.random.key(0), 64, length=20,
                                                               tokens=5, symbols=6))
    assert xs.shape == targets.shape == (64, 25)
    assert np.all(xs[:, 20:] == 7) and np.all(targets[:, :20] == 0)
    for row, target in zip(xs, targets):
        data = row[:20][row[:20] > 0]
        assert len(data) == 5 and np.array_equal(data, target[20:])
        assert np.all((data >= 1) & (data <= 6))
    places = {tuple(np.flatnonzero(row[:20])) for row in xs}
    assert len(places) > 50  # not the copy task's fixed places


def test_selective_copy_scores_the_answer_steps_only():
    task = selective_copy_task(length=20, tokens=5, symbols=6)
    batch = task.train_batch(jax.random.key(1), 0, 16)
    logits = np.zeros((16, 25, 8), np.float32)  # a uniform guess at the noise steps
    logits[:, 20:] = 20 * np.eye(8, dtype=np.float32)[np.asarray(batch.targets[:, 20:])]
    assert float(task.loss(logits, batch)) < 1e-6
    assert float(task.metrics(logits, batch)["accuracy"]) == 1.0
    logits[:, 20:, :] = 0.0
    assert float(task.loss(logits, batch)) == pytest.approx(np.log(8), rel=1e-6)
    assert task.baselines == {"accuracy": 1 / 6}
    with pytest.raises(ValueError, match=r"^`tokens` must be between 1 and `length` \(4\), got 5$"):
        selective_copy_task(length=4, tokens=5)


def test_moving_digits_bounce_a_whole_digit_within_the_canvas():
    images = jax.random.uniform(jax.random.key(2), (5, 8, 8)) + 0.1  # no blank pixel
    frames = np.asarray(moving_digits_batch(jax.random.key(3), images, 32, 13, 30, speed=2))
    assert frames.shape == (32, 30, 13, 13)
    ink = frames > 0
    assert np.all(ink.sum(axis=(2, 3)) == 64)  # the whole 8x8 digit in every frame
    rows = ink.any(axis=3).argmax(axis=2)  # (B, T) the digit's top row
    cols = ink.any(axis=2).argmax(axis=2)
    for corner in (rows, cols):
        assert corner.min() == 0 and corner.max() == 13 - 8  # it reaches both edges
        steps = np.abs(np.diff(corner, axis=1))
        assert np.all((steps >= 0) & (steps <= 2))
        assert np.all(steps.max(axis=1) > 0)  # every digit moves
    digits = {tuple(np.round(f[r:r + 8, c:c + 8], 5).ravel()) for f, r, c in
              zip(frames[:, 0], rows[:, 0], cols[:, 0])}
    own = {tuple(np.round(np.asarray(i), 5).ravel()) for i in images}
    assert digits <= own


def test_moving_digits_blank_the_frames_to_predict_and_score_them_alone():
    task = moving_digits_task(canvas=12, frames_in=4, frames_out=3)
    batch = task.eval_batches(jax.random.key(0), 8, 1)[0]
    xs, targets = np.asarray(batch.xs), np.asarray(batch.targets)
    assert xs.shape == targets.shape == (8, 7, 144)
    np.testing.assert_array_equal(xs[:, :4], targets[:, :4])
    assert not np.any(xs[:, 4:]) and np.all(targets[:, 4:].sum(axis=2) > 0)
    guess = targets.copy()
    guess[:, :4] = 5.0  # the frames read are not scored
    assert float(task.loss(guess, batch)) == 0.0
    last = np.repeat(targets[:, 3:4], 3, axis=1)
    repeat = np.concatenate([targets[:, :4], last], axis=1)
    assert float(task.metrics(repeat, batch)["mse"]) == pytest.approx(
        np.mean((last - targets[:, 4:]) ** 2), rel=1e-5)
    assert 0.0 < task.baselines["mse"] < 0.2
    image = moving_digits_task(canvas=12, frames_in=4, frames_out=3, flat=False)
    assert image.eval_batches(jax.random.key(0), 8, 1)[0].xs.shape == (8, 7, 12, 12, 1)
    with pytest.raises(ValueError, match=r"^`canvas` must be larger than the digits' 8 pixels, got 8$"):
        moving_digits_task(canvas=8)


def test_the_digits_baseline_is_the_commonest_training_digit_and_says_so():
    task = digits_task()
    batches = task.eval_batches(None, 64, 1)
    digit = int(task.baseline_note.split()[3].rstrip(","))
    right = sum(float(np.sum((b.targets == digit) * b.weights)) for b in batches)
    assert right / sum(float(b.weights.sum()) for b in batches) == pytest.approx(
        task.baselines["accuracy"])
    assert task.baselines["accuracy"] < 0.1  # the test split is balanced: below chance
    assert task.baseline_note == (f"always predicting class {digit}, the commonest in the "
                                  f"training split; a uniform guess scores 1/10 = 0.1")


def test_digits_are_64_steps_of_one_pixel_with_a_fixed_test_split():
    task = digits_task()
    assert (task.input_size, task.output_size, task.train_size) == (1, 10, 1797 - 359)
    batch = task.train_batch(jax.random.key(0), 0, 32)
    assert batch.xs.shape == (32, 64, 1) and 0.0 <= batch.xs.min() and batch.xs.max() <= 1.0
    test_a = np.concatenate([b.xs for b in task.eval_batches(None, 64, 0)])
    test_b = np.concatenate([b.xs for b in digits_task().eval_batches(None, 64, 0)])
    np.testing.assert_array_equal(test_a, test_b)


def test_missing_data_packages_name_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(MissingData) as missing:
        digits_task()
    assert str(missing.value) == ("the digits task needs scikit-learn: pip install "
                                  f"'{extra_requirement('scikit-learn')}'")
    with pytest.raises(lt.ConfigError, match="needs scikit-learn"):
        lt.prepare(lt.load_experiment("digits").config())


def test_list_shows_every_shipped_experiment():
    listed = lt.list_experiments()
    assert set(listed) == {"adding", "charlm", "chorales", "copy", "digits", "fashion_rows",
                           "forget_bias", "indrnn_adding", "mnist1d", "moving_digits", "parity",
                           "selective_copy", "variants"}
    assert all(listed.values())


SMOKE = dict(steps=3, hidden_size=8, batch_size=16, eval_batches=1, log_every=1, eval_every=2,
             checkpoint_every=3, warmup_steps=1)


# shorter sequences and smaller frames for the smoke runs of the generated tasks
SHORTER = {"parity": {"length": 5}, "selective_copy": {"length": 12, "tokens": 4},
           "indrnn_adding": {"length": 30},
           "moving_digits": {"canvas": 10, "frames_in": 3, "frames_out": 2}}


def stand_in_options(name: str, folder) -> dict:
    """Task options that put a few examples the test writes in place of data from a
    Debian package or a slow first parse (the loaders meet the real data in
    test_datasets.py, test_text.py and test_chorales.py)."""
    rng = np.random.default_rng(0)
    if name in SHORTER:
        return SHORTER[name]
    if name == "fashion_rows":
        for prefix, n in (("train", 40), ("t10k", 20)):
            write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                      rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
            write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
        return {"data_dir": str(folder)}
    if name == "charlm":
        (folder / "text.txt").write_text("In the beginning was the word. " * 60)
        return {"path": str(folder / "text.txt"), "seq_len": 20}
    if name == "chorales":
        music21 = pytest.importorskip("music21")
        from tests.test_chorales import write_piece

        assert music21
        notes = ["C4", "D4", "E4", "F4", "G4", "A4", "B4", "C5"]
        return {"files": [write_piece(folder / f"piece{n}.musicxml",
                                      [(notes[(n + k) % 8], 1) for k in range(6 + n % 3)])
                          for n in range(20)]}
    return {}


# adding and the generated tasks of the newer cells in the default tier; the others, each
# a few seconds of compiling, marked slow
FAST = ("adding", "parity", "selective_copy", "indrnn_adding", "moving_digits")


@pytest.mark.parametrize("name", [pytest.param(name, marks=[] if name in FAST else pytest.mark.slow)
                                  for name in experiments.shipped()])
def test_every_shipped_experiment_reproduces_a_few_steps(name, tmp_path, monkeypatch):
    """Every variant's config builds and traces; the first variant trains end to end
    through `reproduce` and its summary, figure and table are written. An experiment's
    own figure is written whole: stopped mid-PNG, the one there before is kept."""
    experiment = lt.load_experiment(name)
    stand_in = stand_in_options(name, tmp_path)
    assert reproduce.reference(experiment)["source"] and reproduce.reference(experiment)["published"]
    def smoke(config):
        return dataclasses.replace(config, **SMOKE, task_options={**config.task_options, **stand_in})

    runs = reproduce.plan(experiment, chosen_seeds=[0], overrides=smoke)
    for run in runs:
        lt.prepare(run.config, experiment=experiment)
    first = runs[0].variant
    summary = reproduce.reproduce(experiment, runs_dir=tmp_path / "runs",
                                  results_dir=tmp_path / "results", only=[first], chosen_seeds=[0],
                                  overrides=smoke,
                                  progress=False, log=lambda line: None)
    final = summary["variants"][first]["final"]
    metric = reproduce.reference(experiment)["metric"]
    assert metric in final and all(np.isfinite(v) for values in final.values() for v in values)
    assert lt.evaluate(tmp_path / "runs" / name / f"{first}-seed0")["step"] == 3
    table = (tmp_path / "RESULTS.md").read_text()
    assert f"| [{name}](#{name}) |" in table
    if hasattr(experiment.module, "figure"):  # its own figure, shown in its section
        assert summary["figure"] == f"{name}_figure.png"
        assert matplotlib.image.imread(tmp_path / "results" / summary["figure"]).ndim == 3
        assert f"](results/{name}_figure.png)" in table
        path = tmp_path / "results" / summary["figure"]
        before = {p.name: p.read_bytes() for p in path.parent.iterdir()}

        def half_saved(fig, fname, **kwargs):
            with open(fname, "wb") if isinstance(fname, (str, Path)) else fname as file:
                file.write(b"\x89PNG\r\n\x1a\n")  # a PNG's first bytes
                raise KeyboardInterrupt

        monkeypatch.setattr(Figure, "savefig", half_saved)
        with pytest.raises(KeyboardInterrupt):
            experiment.module.figure({first: tmp_path / "runs" / name / f"{first}-seed0"}, path)
        assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before
    else:
        assert summary["figure"] is None


# ---- an experiment file of your own -------------------------------------------------------

WAVES_DATA = '''
import numpy as np

def make_waves(n=96, steps=8):
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, size=(n, 1))
    xs = np.sin(np.arange(steps)[None, :] * 0.5 + phase)[..., None].astype(np.float32)
    return xs, phase[:, 0]
'''
WAVES_LABELS = '''
import numpy as np

def label(phase):
    return (np.cos(phase) > 0).astype(np.int32)
'''
WAVES_EXPERIMENT = '''
from waves_data import make_waves  # a module beside this file

from lstm_jax.tasks import from_arrays
from lstm_jax.train import Config

DESCRIPTION = "waves made by a module beside the experiment"

def get_config():
    return Config(hidden_size=8, batch_size=16, steps=2, warmup_steps=1, log_every=1,
                  eval_every=2, checkpoint_every=2)

def get_task():
    from waves_labels import label  # imported when the task is built, not at load

    xs, phase = make_waves()
    return from_arrays(xs, label(phase), name="waves")
'''
BESIDE = ("waves_data", "waves_labels", "lstm_jax_user_experiment_waves_exp")


@pytest.fixture
def waves_file(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "waves_data.py").write_text(WAVES_DATA)
    (folder / "waves_labels.py").write_text(WAVES_LABELS)
    (folder / "waves_exp.py").write_text(WAVES_EXPERIMENT)
    yield folder / "waves_exp.py"
    for name in BESIDE:
        sys.modules.pop(name, None)


def test_an_experiment_file_imports_the_modules_beside_it_and_leaves_sys_path(waves_file):
    path_before = list(sys.path)
    experiment = experiments.load(str(waves_file))
    assert sys.path == path_before
    prepared = lt.prepare(experiment.config(), experiment=experiment)
    assert sys.path == path_before
    assert prepared.task.name == "waves" and prepared.task.train_size is not None


def test_the_recorded_config_names_the_task_that_ran(waves_file):
    experiment = experiments.load(str(waves_file))
    assert experiment.config().task == "adding"  # Config's default, which get_task replaces
    assert lt.prepare(experiment.config(), experiment=experiment).config.task == "waves"
    xs, labels = np.zeros((40, 5, 2), np.float32), np.arange(40) % 2
    given = lt.prepare(lt.Config(batch_size=8), task=from_arrays(xs, labels, name="mine"))
    assert given.config.task == "mine"
    shipped = lt.prepare(lt.load_experiment("adding").config(), experiment="adding")
    assert shipped.config.task == "adding"  # a registered task keeps its config


@pytest.mark.slow  # trains (about 20 s)
def test_an_experiment_files_run_reloads_with_its_modules_for_eval(waves_file, tmp_path):
    run = tmp_path / "run"
    experiment = experiments.load(str(waves_file))
    lt.train(experiment.config(), run, experiment=experiment, progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["task"] == "waves" and record["source"] == str(waves_file)
    for name in BESIDE:  # a new process: nothing of the first load is imported
        sys.modules.pop(name, None)
    assert lt.evaluate(run)["step"] == 2
    assert lt.load(run).task.name == "waves"


def test_a_missing_module_in_an_experiment_file_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "broken_exp.py"
    path.write_text("import numpy\nfrom waves_dat import make_waves\n")
    with pytest.raises(lt.ConfigError) as error:
        experiments.load(str(path))
    assert str(error.value) == f"{path}, line 2: No module named 'waves_dat'"
    assert "lstm_jax_user_experiment_broken_exp" not in sys.modules


def test_a_file_that_is_not_python_is_one_line_naming_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("get_config = None\n")
    with pytest.raises(lt.ConfigError) as error:
        experiments.load(str(path))
    assert str(error.value) == (f"{path} is not a Python file: give a shipped experiment's "
                                f"name or the path of your own .py file")


def test_indrnn_adding_initialises_the_indrnn_as_the_reference_addition_example():
    """Input weights N(0, 0.001²), the first layer's |u| within 2^(1/T), the last
    layer's u all 1; the other cells get the default model."""
    experiment = experiments.load("indrnn_adding")
    indrnn, lstm = (reproduce.plan(experiment, only=[name], chosen_seeds=[0])[0].config
                    for name in ("indrnn", "lstm"))
    task = experiment.task(indrnn)
    first, last = (jax.tree.map(np.asarray, layer) for layer in
                   experiment.model(indrnn, task).init(jax.random.key(0))["rnn"])
    assert np.all(last.w_hh == 1.0)
    assert np.all(np.abs(first.w_hh) <= 2 ** (1 / experiment.module.T)) and np.std(first.w_hh) > 0.5
    for layer in (first, last):
        assert 0.8e-3 < np.std(layer.w_ih) < 1.2e-3 and np.all(layer.b == 0)
    assert experiment.model(lstm, task) is None

"""The chorales task: piano rolls of pieces the test writes, the frame NLL, the split."""

import sys

import jax
import numpy as np
import pytest

from lstm_jax.tasks import MissingData, chorales
from lstm_jax.tasks.base import Batch
from tests.helpers import extra_requirement

music21 = pytest.importorskip("music21")


def write_piece(path, notes):
    """A one-part piece of (pitches, quarter lengths) as MusicXML; a list of pitches is a chord."""
    part = music21.stream.Part()
    for pitches, length in notes:
        if isinstance(pitches, list):
            part.append(music21.chord.Chord(pitches, quarterLength=length))
        else:
            part.append(music21.note.Note(pitches, quarterLength=length))
    music21.stream.Score([part]).write("musicxml", fp=str(path))
    return str(path)


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    root = tmp_path_factory.mktemp("pieces")
    tunes = [
        [("C4", 1), ("E4", 2), (["G4", "B4"], 1)],  # frames: C4 | E4 | E4 | G4+B4
        [("D4", 1), ("F4", 1), ("A4", 1)],
        [("C5", 2), ("G4", 1), ("E4", 1), ("C4", 1)],
        [("E4", 1), ("E4", 1), ("D4", 1), ("C4", 2)],
        [("G4", 1), ("A4", 1), ("B4", 1), ("C5", 1), ("D4", 1)],
    ]
    return [write_piece(root / f"tune{n}.musicxml", tune) for n, tune in enumerate(tunes)]


def test_piano_roll_holds_the_pitches_sounding_at_each_quarter(pieces):
    pitches, bounds = chorales.piano_roll(music21.converter.parse(pieces[0]))
    frames = [pitches[bounds[f]:bounds[f + 1]].tolist() for f in range(len(bounds) - 1)]
    assert frames == [[60], [64], [64], [67, 71]]


def test_task_shifts_frames_by_one_and_splits_by_piece(pieces):
    task = chorales.chorales_task(files=pieces, test_fraction=0.4)
    assert task.input_size == task.output_size == 72 - 60 + 1  # C4 .. C5
    assert task.readout == "every" and task.train_size == 3
    test = task.eval_batches(jax.random.key(0), 2, 1)
    assert sum(int(b.weights.sum()) for b in test) == 2
    batch = task.train_batch(jax.random.key(0), 0, 3)
    assert batch.xs.shape == batch.targets.shape == (3, 4, 13)  # the longest pieces: 5 frames
    for xs, targets, length in zip(batch.xs, batch.targets, batch.seq_lengths):
        np.testing.assert_array_equal(xs[1:length], targets[:length - 1])
        assert not xs[length:].any() and not targets[length:].any()
    train_lengths = sorted(int(n) for n in batch.seq_lengths)
    test_lengths = sorted(int(n) for b in test for n, w in zip(b.seq_lengths, b.weights) if w)
    assert sorted(train_lengths + test_lengths) == [2, 3, 4, 4, 4]  # every piece once
    again = chorales.chorales_task(files=pieces, test_fraction=0.4)
    np.testing.assert_array_equal(again.eval_batches(None, 2, 1)[0].xs, test[0].xs)


def test_a_test_fraction_outside_0_1_is_refused(pieces):
    with pytest.raises(ValueError, match=r"^`test_fraction` must be in \(0, 1\), got 1.0$"):
        chorales.chorales_task(files=pieces, test_fraction=1.0)


def test_frame_nll_sums_pitches_and_averages_valid_frames():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4)).astype(np.float32)
    targets = (rng.random((2, 3, 4)) < 0.3).astype(np.float32)
    batch = Batch(np.zeros((2, 3, 4), np.float32), targets, np.array([3, 1], np.int32))
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    per_frame = -np.sum(targets * np.log(p) + (1 - targets) * np.log(1 - p), axis=-1)
    expected = (per_frame[0].sum() + per_frame[1, 0]) / 4  # 4 valid frames
    assert float(chorales.frame_nll(logits, batch)) == pytest.approx(expected, rel=1e-5)


def test_the_baseline_is_the_nll_of_the_training_frequencies(pieces):
    task = chorales.chorales_task(files=pieces, test_fraction=0.4)
    train = task.train_batch(jax.random.key(0), 0, 3)
    valid = np.arange(4)[None, :] < np.asarray(train.seq_lengths)[:, None]
    p = np.clip(np.asarray(train.targets)[valid].mean(axis=0), 1e-6, 1 - 1e-6)
    logits = np.log(p / (1 - p)).astype(np.float32)
    test = task.eval_batches(None, 2, 1)[0]
    nll = task.loss(np.broadcast_to(logits, test.targets.shape), test)
    assert float(nll) == pytest.approx(task.baselines["nll"], rel=1e-4)
    assert float(task.metrics(np.broadcast_to(logits, test.targets.shape), test)["nll"]) == \
        pytest.approx(float(nll))


def test_without_music21_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "music21", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(MissingData) as missing:
        chorales.chorales_task()
    assert str(missing.value) == ("the chorales task needs music21: pip install "
                                  f"'{extra_requirement('music21')}'")

"""Polyphonic music: predict the next piano-roll frame of Bach's four-part chorales.

The 371 chorales of music21's corpus (the ``experiments`` extra) are read
as piano rolls with one frame per quarter note (the frame holds every pitch sounding at
its start) over the pitch range found in the corpus. A model reads frames 0..T-2 and
predicts frames 1..T-1; the loss is the negative log-likelihood of a frame, the sum over
pitches of the binary cross entropy of independent sigmoids, averaged over valid frames.
Pieces are split into training and test sets once, the same for every seed. The parse
is cached as ``${XDG_CACHE_HOME:-~/.cache}/lstm_jax/bach-chorales.npz``.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax.tasks import losses
from lstm_jax.tasks.arrays import from_arrays, split_indices
from lstm_jax.tasks.base import Batch, Task
from lstm_jax._extras import pip_install
from lstm_jax.tasks.digits import MissingData
from lstm_jax.tasks.cache import cached_arrays

CACHE = "bach-chorales.npz"


def _music21():
    try:
        import music21
    except ModuleNotFoundError:
        raise MissingData(f"the chorales task needs music21: {pip_install('music21')}") from None
    return music21


def piano_roll(score, frames_per_quarter: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A music21 score as ``(frames, pitches)``: for each frame the MIDI pitches sounding at
    its start, as a flat int array of pitches and the (F + 1,) offsets of each frame's
    pitches in it (a ragged array)."""
    frames = max(1, math.ceil(float(score.highestTime) * frames_per_quarter))
    sounding: list[set] = [set() for _ in range(frames)]
    for note in score.flatten().notes:
        start = float(note.offset) * frames_per_quarter
        end = start + float(note.quarterLength) * frames_per_quarter
        for frame in range(math.ceil(start - 1e-9), min(frames, math.ceil(end - 1e-9))):
            sounding[frame].update(p.midi for p in note.pitches)
    pitches = np.array([p for frame in sounding for p in sorted(frame)], np.int32)
    bounds = np.cumsum([0] + [len(frame) for frame in sounding]).astype(np.int32)
    return pitches, bounds


def _parse(sources: Sequence[str], parse) -> dict[str, np.ndarray]:
    """Every piece's ragged roll, concatenated: ``pitches``, ``bounds`` and ``frames``."""
    pitches, bounds, frames = [], [], []
    for source in sources:
        roll, bound = piano_roll(parse(source))
        pitches.append(roll)
        bounds.append(bound)
        frames.append(len(bound) - 1)
    return {"pitches": np.concatenate(pitches), "bounds": np.concatenate(bounds),
            "frames": np.array(frames, np.int32)}


def bach_chorales() -> dict[str, np.ndarray]:
    """The parsed corpus, from the cache or parsed once (a minute or two) and cached."""

    def parse() -> dict[str, np.ndarray]:
        music21 = _music21()
        names = list(music21.corpus.chorales.Iterator(returnType="filename"))
        return _parse(names, music21.corpus.parse)

    return cached_arrays(CACHE, parse)


def rolls(parsed: dict[str, np.ndarray]) -> list[list[np.ndarray]]:
    """Per piece, per frame, the MIDI pitches sounding."""
    pieces, pitch_at, bound_at = [], 0, 0
    for frames in parsed["frames"]:
        bounds = parsed["bounds"][bound_at:bound_at + frames + 1]
        pitches = parsed["pitches"][pitch_at:pitch_at + bounds[-1]]
        pieces.append([pitches[bounds[f]:bounds[f + 1]] for f in range(frames)])
        pitch_at, bound_at = pitch_at + bounds[-1], bound_at + frames + 1
    return pieces


def frame_nll(predictions: jax.Array, batch: Batch) -> jax.Array:
    """Sum over pitches of the sigmoid binary cross entropy, mean over valid frames (nats)."""
    per_pitch = jnp.logaddexp(0.0, predictions) - predictions * batch.targets  # -log p(target)
    weights = losses.example_weights(batch, per_step=True)
    return jnp.sum(jnp.sum(per_pitch, axis=-1) * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def chorales_task(files: list[str] | None = None, test_fraction: float = 0.2) -> Task:
    """Next-frame prediction on Bach's chorales (or on your own ``files`` of music).

    xs (B, T, P) are frames 0..T-2 of each piece, padded to the longest, targets (B, T, P)
    the frames 1..T-1; ``seq_lengths`` mark each piece's frames. P spans the lowest to
    the highest pitch found. Metric ``nll`` (nats per frame); its baseline predicts
    every pitch independently with its frequency in the training frames.
    """
    if files is None:
        pieces = rolls(bach_chorales())
    else:
        pieces = rolls(_parse([str(f) for f in files], _music21().converter.parse))
    if any(len(piece) < 2 for piece in pieces):
        raise ValueError("every piece needs at least two frames")
    lowest = min(int(p.min()) for piece in pieces for p in piece if len(p))
    highest = max(int(p.max()) for piece in pieces for p in piece if len(p))
    steps = max(len(piece) for piece in pieces) - 1
    roll = np.zeros((len(pieces), steps + 1, highest - lowest + 1), np.float32)
    for n, piece in enumerate(pieces):
        for f, pitches in enumerate(piece):
            roll[n, f, pitches - lowest] = 1.0
    lengths = np.array([len(piece) - 1 for piece in pieces], np.int32)
    train, test = split_indices(len(pieces), test_fraction)
    inputs = roll[:, :-1] * (np.arange(steps)[None, :] < lengths[:, None])[..., None]  # 0 past the end
    task = from_arrays(inputs[train], roll[train, 1:], seq_lengths=lengths[train],
                       test=(inputs[test], roll[test, 1:], lengths[test]), loss="mse",
                       readout="every", name="chorales")
    # the baseline: each pitch on with its frequency in the training frames, independently
    p = np.clip(np.concatenate([roll[n, 1:lengths[n] + 1] for n in train]).mean(axis=0),
                1e-6, 1 - 1e-6)
    test_frames = np.concatenate([roll[n, 1:lengths[n] + 1] for n in test])
    baseline = -np.mean(np.sum(test_frames * np.log(p) + (1 - test_frames) * np.log1p(-p), axis=1))
    return task._replace(loss=frame_nll, metrics=lambda pr, b: {"nll": frame_nll(pr, b)},
                         baselines={"nll": float(baseline)},
                         baseline_note="each pitch on with its frequency in the training "
                                       "frames, independently")

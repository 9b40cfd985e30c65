"""Character-level language modelling over one text: predict the next character.

The default text is the King James Bible that Debian's ``bible-kjv`` package ships
(its ``bible`` program decodes it; verse references are stripped so the model sees
prose, one verse a line). The decoded text is cached under
``${XDG_CACHE_HOME:-~/.cache}/lstm_jax/``. ``path=`` reads any UTF-8 text file instead.

The last 5% of the text (contiguous, never trained on) is held out and read as
consecutive windows, each from a fresh carry.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from lstm_jax import _checks
from lstm_jax.tasks import losses
from lstm_jax.tasks.arrays import check_test_fraction, host_rng
from lstm_jax.tasks.base import Batch, Task
from lstm_jax._files import write_atomically
from lstm_jax.tasks.cache import cache_dir
from lstm_jax.tasks.digits import MissingData

BIBLE = ["bible", "-f", "gen1:1-rev22:21"]  # -f: one verse a line, "Ge1:1 In the beginning..."
VERSE_REFERENCE = re.compile(r"^\S+?\d+:\d+ ", re.MULTILINE)  # "Ge1:1 ", "1Chr12:3 "
INSTALL_BIBLE = "sudo apt-get install bible-kjv (or `make data`)"


def bible_text() -> str:
    """The King James Bible as prose, one verse a line (about 4.3 million characters)."""
    cached = cache_dir() / "bible-kjv.txt"
    if cached.exists():
        return cached.read_text(encoding="utf-8")
    if shutil.which(BIBLE[0]) is None:
        raise MissingData(f"the chars task reads the King James Bible: {INSTALL_BIBLE}; "
                          f"or give it your own text with task_options path=FILE")
    printed = subprocess.run(BIBLE, capture_output=True, text=True, check=True,
                             env={**os.environ, "COLUMNS": "0"}).stdout
    text = VERSE_REFERENCE.sub("", printed)
    write_atomically(cached, text)
    return text


def read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"`path` {str(path)!r} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"`path` {str(path)!r} is not UTF-8 text ({error.reason} at byte "
                         f"{error.start})") from None


def windows(ids: np.ndarray, starts: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) inputs ``ids[s:s+T]`` and next-character targets ``ids[s+1:s+T+1]``."""
    index = starts[:, None] + np.arange(seq_len)[None, :]
    return ids[index], ids[index + 1]


def unigram_bpc(ids: np.ndarray, vocab_size: int) -> float:
    """The entropy, in bits, of the characters' frequencies: a model without context."""
    p = np.bincount(ids, minlength=vocab_size) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def char_task(path: str | None = None, seq_len: int = 128, test_fraction: float = 0.05) -> Task:
    """Next-character prediction: (B, T) int ids in, a target at every step.

    Args:
      path: a UTF-8 text file; None reads the King James Bible (``bible-kjv``).
      seq_len: T, the characters per training window and per evaluation window.
      test_fraction: the held-out tail of the text.

    The vocabulary is the text's sorted characters (``task.encode`` / ``task.decode``
    map strings to ids and back). Training batch ``s`` is ``B`` windows at random
    offsets of the training part, a pure function of (data key, s). Metrics: ``bpc``
    (bits per character: the cross entropy over ln 2) and ``accuracy``; the baseline
    ``bpc`` is the unigram entropy of the training characters.
    """
    seq_len = _checks.positive_int("seq_len", seq_len)
    check_test_fraction(test_fraction)
    text = bible_text() if path is None else read_text(path)
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    vocab_codes, ids = np.unique(codes, return_inverse=True)  # sorted characters, ids
    ids = ids.astype(np.int32)
    vocab = "".join(map(chr, vocab_codes))
    lookup = {char: n for n, char in enumerate(vocab)}
    split = len(ids) - round(len(ids) * test_fraction)
    train, test = ids[:split], ids[split:]
    for part, name in ((train, "training part"), (test, "held-out tail")):
        if len(part) < seq_len + 1:
            raise ValueError(f"the text's {name} has {len(part)} characters, fewer than "
                             f"`seq_len` + 1 = {seq_len + 1}")

    def encode(string: str) -> np.ndarray:
        unknown = sorted(set(string) - set(lookup))
        if unknown:
            raise ValueError(f"characters {''.join(unknown)!r} are not in the text's vocabulary")
        return np.array([lookup[char] for char in string], np.int32)

    def decode(tokens) -> str:
        return "".join(vocab[int(t)] for t in np.asarray(tokens).ravel())

    def train_batch(key, step, batch_size):
        starts = host_rng(key, int(step)).integers(0, len(train) - seq_len, batch_size)
        return Batch(*windows(train, starts, seq_len))

    def eval_batches(key, batch_size, count):
        del key, count  # the whole held-out tail, always
        starts = np.arange(0, len(test) - seq_len, seq_len)
        batches = []
        for first in range(0, len(starts), batch_size):
            rows = starts[first:first + batch_size]
            weights = np.zeros(batch_size, np.float32)
            weights[:len(rows)] = 1.0
            rows = np.concatenate([rows, np.zeros(batch_size - len(rows), rows.dtype)])
            batches.append(Batch(*windows(test, rows, seq_len), weights=weights))
        return batches

    def metrics(predictions, batch):
        return {"bpc": losses.cross_entropy(predictions, batch) / math.log(2),
                "accuracy": losses.accuracy(predictions, batch)}

    return Task(name="chars", input_size=len(vocab), output_size=len(vocab), readout="every",
                train_batch=train_batch, eval_batches=eval_batches, loss=losses.cross_entropy,
                metrics=metrics, baselines={"bpc": unigram_bpc(train, len(vocab))},
                baseline_note="each character with its frequency in the training text",
                tokens=True, encode=encode, decode=decode)

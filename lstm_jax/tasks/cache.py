"""Where data made from packages is kept between runs: ``${XDG_CACHE_HOME:-~/.cache}/lstm_jax``.

A file there is written whole or not at all (two processes may race to make it), read
back without pickle, and made again when it is unreadable; an unwritable cache only
costs the next process the time to make the data again.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from lstm_jax._files import write_atomically


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lstm_jax"


def cached_arrays(name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``make()`` returns, stored as ``cache_dir()/name`` (an ``.npz``) the
    first time and read from there afterwards."""
    path = cache_dir() / name
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # absent or unreadable: make it again
    arrays = make()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        write_atomically(path, buffer.getvalue())
    except OSError:
        pass
    return arrays

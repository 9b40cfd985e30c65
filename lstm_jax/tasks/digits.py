"""scikit-learn's 8×8 digits read pixel by pixel: 64 steps of one value.

The 1,797 images ship inside scikit-learn (``sklearn.datasets.load_digits``), so
nothing is downloaded. A fifth of them, the same for every seed, is the test split.
"""

from __future__ import annotations

import numpy as np

from lstm_jax._extras import pip_install
from lstm_jax.tasks.arrays import from_arrays
from lstm_jax.tasks.base import Task


class MissingData(ValueError):
    """An experiment's data comes from a package that is not installed."""


def digits_task(test_fraction: float = 0.2) -> Task:
    """Classify each digit from its 64 pixels in reading order (values scaled to [0, 1])."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError:
        raise MissingData(f"the digits task needs scikit-learn: {pip_install('scikit-learn')}") from None
    digits = load_digits()
    xs = (digits.images.reshape(-1, 64, 1) / 16.0).astype(np.float32)
    return from_arrays(xs, digits.target.astype(np.int32), test_fraction=test_fraction,
                       name="digits")

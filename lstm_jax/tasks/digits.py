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


def load_images(task: str) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits in scikit-learn's order: (N, 64) float32 pixels in [0, 1] and
    (N,) int32 labels; ``task`` names the task that needs them in the error when
    scikit-learn is missing."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError:
        raise MissingData(f"the {task} task needs scikit-learn: {pip_install('scikit-learn')}") from None
    digits = load_digits()
    return (digits.images.reshape(-1, 64) / 16.0).astype(np.float32), digits.target.astype(np.int32)


def digits_task(test_fraction: float = 0.2) -> Task:
    """Classify each digit from its 64 pixels in reading order (values scaled to [0, 1])."""
    pixels, labels = load_images("digits")
    return from_arrays(pixels.reshape(-1, 64, 1), labels, test_fraction=test_fraction,
                       name="digits")

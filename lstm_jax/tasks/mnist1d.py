"""MNIST-1D (Greydanus & Kobak, 2020): 40-point 1-D signals of the ten digits.

The data set is generated, not downloaded: the PyPI package ``mnist1d`` draws it with
``make_dataset`` from its default arguments (5,000 signals, seed 42), whose first 80%
are the training split and the rest the test split, as in the paper. Generating takes
a few seconds, so the arrays are kept per process and in an ``.npz`` under
``${XDG_CACHE_HOME:-~/.cache}/lstm_jax/`` (read back without pickle).
"""

from __future__ import annotations

import functools
import importlib.metadata
import random

import numpy as np

from lstm_jax.tasks.arrays import from_arrays
from lstm_jax.tasks.base import Task
from lstm_jax.tasks.cache import cached_arrays
from lstm_jax._extras import pip_install
from lstm_jax.tasks.digits import MissingData

NUM_SAMPLES = 5000  # the package's default, that of the published results


def _missing() -> MissingData:
    return MissingData(f"the mnist1d task needs the mnist1d package: {pip_install('mnist1d')}")


def _generate(num_samples: int) -> dict[str, np.ndarray]:
    """The package's ``make_dataset`` (never its ``get_dataset``, which may download)."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ModuleNotFoundError:
        raise _missing() from None
    args = get_dataset_args()
    args.num_samples = num_samples
    states = random.getstate(), np.random.get_state()
    try:  # make_dataset seeds the global generators; leave them as they were
        data = make_dataset(args)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return {"x": data["x"].astype(np.float32), "y": data["y"].astype(np.int32),
            "x_test": data["x_test"].astype(np.float32), "y_test": data["y_test"].astype(np.int32)}


@functools.cache
def mnist1d_arrays(num_samples: int = NUM_SAMPLES) -> dict[str, np.ndarray]:
    """``{"x": (N, 40), "y": (N,), "x_test": (M, 40), "y_test": (M,)}``, N + M = num_samples."""
    try:
        version = importlib.metadata.version("mnist1d")  # a new generator, a new file
    except importlib.metadata.PackageNotFoundError:
        raise _missing() from None
    arrays = cached_arrays(f"mnist1d-{version}-{num_samples}.npz", lambda: _generate(num_samples))
    if set(arrays) != {"x", "y", "x_test", "y_test"}:  # another file by that name
        arrays = _generate(num_samples)
    return arrays


def mnist1d_task(num_samples: int = NUM_SAMPLES) -> Task:
    """Classify each MNIST-1D signal read point by point: T = 40 steps of I = 1 value.

    Args:
      num_samples: signals generated; the first 80% train, the rest test (the published
        results use the default 5,000: 4,000 train, 1,000 test).
    """
    if num_samples < 10:
        raise ValueError(f"`num_samples` must be at least 10 (one per digit), got {num_samples}")
    data = mnist1d_arrays(num_samples)
    return from_arrays(data["x"][..., None], data["y"],
                       test=(data["x_test"][..., None], data["y_test"]), num_classes=10,
                       name="mnist1d")

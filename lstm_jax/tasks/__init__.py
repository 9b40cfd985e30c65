"""Data for experiments: generators (pure functions of a PRNG key) and your own arrays."""

from __future__ import annotations

from typing import Callable

from lstm_jax import _checks
from lstm_jax.tasks.adding import adding_batch, adding_task
from lstm_jax.tasks.arrays import from_arrays
from lstm_jax.tasks.base import READOUTS, Batch, Task, generated
from lstm_jax.tasks.chorales import chorales_task
from lstm_jax.tasks.copy import copy_baseline, copy_batch, copy_task
from lstm_jax.tasks.digits import MissingData, digits_task
from lstm_jax.tasks.fashion import fashion_rows_task
from lstm_jax.tasks.mnist1d import mnist1d_task
from lstm_jax.tasks.moving_digits import moving_digits_batch, moving_digits_task
from lstm_jax.tasks.parity import parity_batch, parity_task
from lstm_jax.tasks.selective_copy import selective_copy_batch, selective_copy_task
from lstm_jax.tasks.text import char_task

TASKS: dict[str, Callable[..., Task]] = {"adding": adding_task, "chars": char_task,
                                         "chorales": chorales_task, "copy": copy_task,
                                         "digits": digits_task, "fashion_rows": fashion_rows_task,
                                         "mnist1d": mnist1d_task, "moving_digits": moving_digits_task,
                                         "parity": parity_task,
                                         "selective_copy": selective_copy_task}


def get_task(name: str, **options) -> Task:
    """Build the task registered as ``name`` with its keyword ``options``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](**_checks.known_options(f"task {name!r}", TASKS[name], options))


__all__ = ["Batch", "MissingData", "READOUTS", "TASKS", "Task", "adding_batch", "adding_task",
           "char_task", "chorales_task", "copy_baseline", "copy_batch", "copy_task", "digits_task",
           "fashion_rows_task", "from_arrays", "generated", "get_task", "mnist1d_task",
           "moving_digits_batch", "moving_digits_task",
           "parity_batch", "parity_task", "selective_copy_batch", "selective_copy_task"]

"""Data for experiments: synthetic generators, pure functions of a PRNG key."""

from __future__ import annotations

from typing import Callable

from lstm_jax.tasks.adding import adding_batch, adding_task
from lstm_jax.tasks.base import Batch, Task

TASKS: dict[str, Callable[..., Task]] = {"adding": adding_task}


def get_task(name: str, **options) -> Task:
    """Build the task registered as ``name`` with its keyword ``options``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](**options)


__all__ = ["Batch", "TASKS", "Task", "adding_batch", "adding_task", "get_task"]

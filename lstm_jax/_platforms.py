"""The platforms ``jax.export`` lowers for, written once for ``lj.export`` and the
``lstm-jax export`` command. No jax import: the command checks its arguments with
it before jax loads, so a mistake comes back at once."""

from __future__ import annotations

from typing import Iterable

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # what jax.export lowers for


def unknown(name: str, platforms: Iterable[str]) -> str | None:
    """The message for the first of ``platforms`` that is not in ``PLATFORMS``, naming
    the argument ``name`` ("`platforms`", "--platforms"); None when all are known.

    >>> unknown("--platforms", ["cpu", "gpu"])
    "--platforms: unknown platform 'gpu'; known: cpu, cuda, rocm, tpu"
    """
    for platform in platforms:
        if platform not in PLATFORMS:
            return f"{name}: unknown platform {platform!r}; known: {', '.join(PLATFORMS)}"
    return None

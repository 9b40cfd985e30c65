"""The platforms ``jax.export`` lowers for, written once for ``lj.export`` and the
``lstm-jax export`` command. No jax import: the command checks its arguments with
it before jax loads, so a mistake comes back at once."""

from __future__ import annotations

from typing import Iterable

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")  # what jax.export lowers for


def problem(name: str, platforms: Iterable[str]) -> str | None:
    """What is wrong with ``platforms``: the message for the first that is not in
    ``PLATFORMS`` or is named again, naming the argument ``name`` ("`platforms`",
    "--platforms"); None when all are known and each is named once.

    >>> problem("--platforms", ["cpu", "gpu"])
    "--platforms: unknown platform 'gpu'; known: cpu, cuda, rocm, tpu"
    >>> problem("--platforms", ["cpu", "cuda", "cpu"])
    "--platforms: repeated platform 'cpu'; name each platform once"
    """
    seen = set()
    for platform in platforms:
        if platform not in PLATFORMS:
            return f"{name}: unknown platform {platform!r}; known: {', '.join(PLATFORMS)}"
        if platform in seen:
            return f"{name}: repeated platform {platform!r}; name each platform once"
        seen.add(platform)
    return None

"""How a message names an argument: as the ``lstm-jax`` command's flag, or as the Python
argument, whichever way the user called.

The ``lstm-jax`` command runs under ``command_line()``; everything else is Python. One
table holds both wordings, so an error raised in ``lstm_jax.train`` tells each user
what they can type:

>>> f"choose another {named('out')}"
'choose another run_dir'
>>> with command_line():
...     f"choose another {named('out')}"
'choose another --out'
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

# name -> (the lstm-jax command's flag, the Python argument of lt.train / lt.reproduce)
WORDINGS = {
    "out": ("--out", "run_dir"),
    "resume": ("--resume", "resume=True"),
    "steps": ("--steps", "`steps`"),
    "runs": ("--runs", "runs_dir"),
    "seeds": ("--seeds", "`seeds`"),
    "sweep": ("--sweep", "`sweep`"),
    "variants": ("--variants", "`only`"),
}

_on_command_line = contextvars.ContextVar("lstm_jax_on_command_line", default=False)


def named(name: str) -> str:
    """The argument ``name`` (a key of ``WORDINGS``) as the caller spells it."""
    return WORDINGS[name][0 if _on_command_line.get() else 1]


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Messages raised inside name the ``lstm-jax`` command's flags."""
    token = _on_command_line.set(True)
    try:
        yield
    finally:
        _on_command_line.reset(token)

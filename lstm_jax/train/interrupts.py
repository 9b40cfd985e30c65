"""Ctrl-C and SIGTERM that stop a run between steps, never in the middle of one.

``deferred()`` replaces the SIGINT/SIGTERM handlers with one that only records the
signal; the training loop calls ``check()`` at safe points (between steps, between
evaluation batches, after a checkpoint is written), which raises ``Interrupted``.
So an interrupt never lands inside XLA's compiler, a jitted step or an orbax save,
and a checkpoint being written is completed before the run stops. A second Ctrl-C
stops at once (Python's ``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

_pending: list[int] = []  # the signal received, at most one


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM at a safe point; ``exit_code`` is 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _record(signum, frame) -> None:
    if _pending and signum == signal.SIGINT:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt
    if not _pending:
        _pending.append(signum)
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\nlstm-jax: {name} received: stopping at the next safe point "
              f"(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Record SIGINT/SIGTERM inside the block instead of acting on them.

    Nested blocks share the outer one's handlers. Outside the main thread (where
    Python cannot install handlers) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is _record:
        yield
        return
    previous = {s: signal.signal(s, _record) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}  # e.g. nohup: stay ignored
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending.clear()


def check() -> None:
    """Raise ``Interrupted`` if a signal arrived since ``deferred()`` began."""
    if _pending:
        raise Interrupted(_pending[0])

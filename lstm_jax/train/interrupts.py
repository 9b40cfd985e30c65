"""Ctrl-C and SIGTERM that stop a command between steps, never in the middle of one.

``deferred()`` replaces the SIGINT/SIGTERM handlers with one that only records the
signal and says so on stderr; every command calls ``check()`` at its safe points
(between training steps, between evaluation batches, after a checkpoint is written,
between benchmark repetitions, between the chunks of a sample, before a file is
written), which raises ``Interrupted``. So an interrupt never lands inside XLA's
compiler, a jitted step, an orbax save or half a file, and a checkpoint being written
is completed before the run stops. A second signal, of either kind, stops at once:
``StoppedAtOnce`` is raised wherever the program is (a ``KeyboardInterrupt``, which
``check``'s callers do not catch as a safe stop). The announcement names the way to do
that for the signal received: Ctrl-C again after a Ctrl-C, SIGTERM again after a
SIGTERM (``kill`` is sent from elsewhere, where no Ctrl-C reaches the process).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

_pending: list[int] = []  # the signal received, at most one
_bars: set[int] = set()  # progress bars on a terminal now (ids): their line is not ended
_active: list[bool] = []  # a deferred() block is open
_indivisible: list[bool] = []  # an indivisible() block is open


class _Signalled(KeyboardInterrupt):
    """Stopped by the signal ``signum``, whose name is the message; ``exit_code`` is
    128 + signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class Interrupted(_Signalled):
    """A run stopped by SIGINT or SIGTERM at a safe point."""


class StoppedAtOnce(_Signalled):
    """A second SIGINT or SIGTERM: raised by the handler wherever the program was, not at a
    safe point (so not an ``Interrupted``)."""


def announcement(signum: int) -> str:
    """The line that answers a first signal: what happens, and how to stop at once."""
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    return (f"lstm-jax: {name} received: stopping at the next safe point "
            f"({name} again to stop at once)")


def _record(signum, frame) -> None:
    if not record_first(signum) and not _indivisible:
        raise StoppedAtOnce(signum)


def record_first(signum: int) -> bool:
    """What the handler of ``deferred()`` does with a first signal, for a caller that has
    taken the signal itself (``checkpoint``, while a save holds signals): record it and
    announce it, and return True; False, doing nothing, if a signal is already pending."""
    if _pending:
        return False
    _pending.append(signum)
    new_line = "\n" if _bars else ""  # a progress bar's line is ended first
    print(new_line + announcement(signum), file=sys.stderr, flush=True)
    return True


def is_handler(handler) -> bool:
    """Whether ``handler`` (``signal.getsignal``'s) is the one ``deferred()`` installs."""
    return handler is _record


def bar_shown(bar: object, shown: bool = True) -> None:
    """A progress bar on a terminal starts (``shown``) or ends: while one is on screen, the
    announcement begins with a new line (the cursor is at the end of the bar's line)."""
    (_bars.add if shown else _bars.discard)(id(bar))


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Record SIGINT/SIGTERM inside the block instead of acting on them.

    Nested blocks share the outer one's handlers. Outside the main thread (where
    Python cannot install handlers) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or _active:
        yield
        return
    previous = {s: signal.signal(s, _record) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}  # e.g. nohup: stay ignored
    _active.append(True)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending.clear()
        _active.clear()


@contextlib.contextmanager
def indivisible() -> Iterator[None]:
    """A few system calls that no signal may cut in two (the renames that put an export's
    two files in place), after the command's last safe point: under ``deferred()`` a
    second signal inside the block does not stop at once; the first, pending, ends the
    command as any signal after its last safe point does (exit 128 + N, "everything was
    written"). Outside ``deferred()`` it changes nothing."""
    _indivisible.append(True)
    try:
        yield
    finally:
        _indivisible.clear()


def pending() -> int | None:
    """The signal received since ``deferred()`` began, or None."""
    return _pending[0] if _pending else None


def check() -> None:
    """Raise ``Interrupted`` if a signal arrived since ``deferred()`` began."""
    if _pending:
        raise Interrupted(_pending[0])

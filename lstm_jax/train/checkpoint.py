"""Checkpoints on local disk with orbax: every N steps and at the end, the last K kept.

Layout: ``<directory>/<step>/params`` holds the model's parameters and
``<directory>/<step>/state`` the rest of the train state (optimizer state, step, key), so
the parameters restore without knowing the optimizer a run used (``restore_params``).

Writes are atomic: orbax writes each checkpoint to ``<step>.orbax-checkpoint-tmp*`` and
renames it when complete. ``save`` writes in a helper thread and waits for it; SIGINT
and SIGTERM arriving meanwhile are reported, held until the write is complete, and then
handed to their handlers (Ctrl-C's ``KeyboardInterrupt`` comes out of ``save``, a
handler that raises ``SystemExit`` runs then): the checkpoint is complete. A first one
under ``interrupts.deferred()``, which only asks the run to stop at its next check, is
recorded (and announced) at once, before the line saying the save is being finished. A write that
fails, or raises inside orbax, is discarded. Temporary folders left by a killed process
are removed when the folder is opened again.

Reading is forgiving: ``restore`` and ``restore_params`` take the latest checkpoint that
restores, report each one that does not (truncated, missing files, another model's
shapes or dtypes) in one line, and raise ``CheckpointError`` only when none does.
Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from lstm_jax import _checks
from lstm_jax.train import interrupts

_ITEMS = ("params", "state")  # the sub-folders of a step
_TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's marker of an unfinished write
_REASON_CHARS = 200  # a report line stays readable


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, truncated or from another model."""


def warn_on_stderr(message: str) -> None:
    """The default ``report``: ``message`` as one line on stderr."""
    print(message, file=sys.stderr, flush=True)


class Checkpoints:
    """The checkpoints of one run, in ``directory`` (``<run>/checkpoints``).

    Args:
      directory: the folder of the checkpoints; created if missing.
      keep: how many of the latest checkpoints are kept.
      report: receives one line for each checkpoint skipped by ``restore`` and for a
        save that an interrupt waits for; default: printed to stderr.

    A state is a NamedTuple (or dict) with a ``params`` field, e.g. ``TrainState``.

    >>> import tempfile, jax.numpy as jnp
    >>> from lstm_jax.train.steps import TrainState
    >>> state = TrainState({"w": jnp.ones(3)}, (), jnp.array(7), jnp.zeros(2, jnp.uint32))
    >>> with Checkpoints(tempfile.mkdtemp()) as checkpoints:
    ...     checkpoints.save(7, state)
    ...     params, step = checkpoints.restore_params({"w": jnp.zeros(3)})
    >>> params["w"].tolist(), step
    ([1.0, 1.0, 1.0], 7)
    """

    def __init__(self, directory: Path, keep: int = 3,
                 report: Callable[[str], None] = warn_on_stderr):
        self.directory = Path(directory).resolve()
        self.report = report
        self.directory.mkdir(parents=True, exist_ok=True)
        _remove_unfinished(self.directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False
        )
        handlers = {name: ocp.StandardCheckpointHandler() for name in _ITEMS}
        with _quiet(collect=False):  # it reads every step's metadata, damaged ones too
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=_ITEMS, item_handlers=handlers
            )

    def latest_step(self) -> int | None:
        """The highest step saved (restorable or not), None when there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def all_steps(self) -> list[int]:
        """The saved steps, ascending."""
        with _quiet(collect=False):  # orbax logs each step whose metadata it cannot read
            return sorted(self._manager.all_steps())

    def path(self, step: int) -> Path:
        """The folder of the checkpoint of ``step``."""
        return self.directory / str(step)

    def save(self, step: int, state: Any) -> None:
        """Write ``state`` as the checkpoint of ``step``, replacing one already there.

        Synchronous: the checkpoint is complete on return. Interrupted, it is either
        complete or gone: see the module docstring.
        """
        params, rest = _split(state)
        args = ocp.args.Composite(params=ocp.args.StandardSave(params),
                                  state=ocp.args.StandardSave(rest))
        if step in self.all_steps():  # e.g. a damaged one skipped by restore
            self._manager.delete(step)

        def write() -> None:
            self._manager.save(step, args=args, force=True)
            self._manager.wait_until_finished()

        reported = []

        def interrupted() -> None:  # reported once, however many signals come
            if not reported:
                reported.append(True)
                self.report(f"lstm-jax: finishing checkpoint {self.path(step)} before stopping")

        try:
            with _signals_held(interrupted):
                _finish_despite_interrupts(write, interrupted)
        except BaseException:  # the write failed, or it finished and an interrupt follows
            with _quiet():
                _remove_unfinished(self.directory, step)
                self._manager.reload()
            raise

    def restore(self, like: Any, at_most: int | None = None) -> Any:
        """The latest state that restores, shaped like ``like`` (a state of this model);
        with ``at_most``, the latest of a step no later than that.

        Raises:
          CheckpointError: when there is no checkpoint, or none restores.
        """
        like_params, like_rest = _split(like)

        def attempt(step: int) -> Any:
            restored = self._restore_items(step, {"params": like_params, "state": like_rest})
            return _join(like, restored["params"], restored["state"])

        return self._latest_that_restores(attempt, at_most)

    def restore_params(self, like_params: Any) -> tuple[Any, int]:
        """``(params, step)`` of the latest checkpoint whose params restore.

        Only the ``params`` item is read, so it works whatever optimizer the run used.

        Raises:
          CheckpointError: when there is no checkpoint, or none restores.
        """

        def attempt(step: int) -> tuple[Any, int]:
            return self._restore_items(step, {"params": like_params})["params"], step

        return self._latest_that_restores(attempt)

    def close(self) -> None:
        with _quiet(collect=False):  # a failed read collected its own leftovers
            self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- restore: one step, then the fallback over steps ---------------------------

    def _restore_items(self, step: int, likes: dict[str, Any]) -> dict[str, Any]:
        """The items ``likes`` names, read from ``step``; CheckpointError(reason) if not.

        orbax's exception is dropped before ``_quiet`` ends: its traceback holds
        tensorstore's unfinished coroutines, which would otherwise be finalised later,
        outside ``_quiet``, and print "Exception ignored in: <coroutine ...>".
        """
        with _quiet():
            try:
                stored = self._manager.item_metadata(step)
                for name, like in likes.items():
                    tree = getattr(stored.get(name), "tree", None)
                    if tree is None:
                        raise CheckpointError(f"no readable {name!r} item")
                    _check_matches(tree, like, name)
                args = {name: ocp.args.StandardRestore(_here(stored[name].tree)) for name in likes}
                restored = self._manager.restore(step, args=ocp.args.Composite(**args))
                return {name: _rebuilt(like, restored[name]) for name, like in likes.items()}
            except Exception as error:  # orbax/tensorstore raise many types
                reason = _reason(error)
        _silence_late_read_errors()
        raise CheckpointError(reason)

    def _latest_that_restores(self, attempt: Callable[[int], Any],
                              at_most: int | None = None) -> Any:
        """``attempt(step)`` for the newest step (up to ``at_most``) where it succeeds,
        reporting the others.

        ``attempt`` raises ``CheckpointError(reason)``; the path is added here.
        """
        steps = [s for s in self.all_steps()[::-1] if at_most is None or s <= at_most]
        if not steps:
            later = "" if at_most is None else f" of step {at_most} or earlier"
            raise CheckpointError(f"no checkpoint{later} in {self.directory}")
        for index, step in enumerate(steps):
            try:
                return attempt(step)
            except CheckpointError as error:
                reason = _reason(error)
                if index + 1 < len(steps):
                    self.report(f"lstm-jax: warning: checkpoint {self.path(step)} does not "
                                f"restore ({reason}); trying {self.path(steps[index + 1])}")
                elif len(steps) == 1:
                    raise CheckpointError(
                        f"cannot restore checkpoint {self.path(step)}: {reason}") from error
                else:
                    raise CheckpointError(
                        f"cannot restore any of the {len(steps)} checkpoints in "
                        f"{self.directory}; the oldest, {self.path(step)}: {reason}") from error
        raise AssertionError("unreachable")


# ---- pure helpers ----------------------------------------------------------------------

def _split(state: Any) -> tuple[Any, dict[str, Any]]:
    """``(params, {every other field})`` of a NamedTuple or dict state."""
    fields = state._asdict() if hasattr(state, "_asdict") else dict(state)
    if "params" not in fields:
        raise TypeError(f"a checkpointed state needs a `params` field; got {type(state).__name__} "
                        f"with {sorted(fields)}")
    rest = {name: value for name, value in fields.items() if name != "params"}
    return fields["params"], rest


def _join(like: Any, params: Any, rest: dict[str, Any]) -> Any:
    """The inverse of ``_split``: a state of ``like``'s type."""
    if hasattr(like, "_replace"):
        return like._replace(params=params, **rest)
    return type(like)(params=params, **rest)


def _here(stored: Any) -> Any:
    """Restore targets for a checkpoint's tree of array metadata: each array as stored, on
    this process's first device. orbax would otherwise place them as they were saved,
    which fails where those devices are missing (a run of ``--seeds`` split over a CPU
    device per core, loaded in a Python session that has one)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
                        stored)


def _rebuilt(like: Any, stored: Any) -> Any:
    """The leaves of ``stored`` (as orbax read them back: dicts and lists) in the
    structure of ``like``, matched by key path (``_check_matches`` has compared them).

    So a checkpoint restores into a params type that gained an optional field (None)
    since it was written: ``None`` is no leaf, and the arrays are found by name.
    """
    return jax.tree.map(lambda want, leaf: jax.numpy.asarray(leaf, dtype=want.dtype),
                        like, _checks.rebuilt(like, stored))


def _check_matches(stored: Any, like: Any, item: str) -> None:
    """Refuse a checkpoint ``item`` whose structure, shapes or dtypes differ from ``like``.

    ``stored`` and ``like`` are trees whose leaves have ``shape`` and ``dtype`` (arrays or
    orbax's array metadata), compared by key path (``_checks.tree_like(by_path=True)``),
    so a NamedTuple that orbax stored as a dict still matches. Checked before reading,
    because orbax casts a stored array to the requested dtype without a word.

    Raises:
      CheckpointError: naming the first differing leaf, e.g.
        ``params.w is (3, 4) float32 where this model has (5, 4) float32``.
    """
    try:
        _checks.tree_like(item, stored, like, by_path=True)
    except (TypeError, ValueError) as error:
        raise CheckpointError(str(error)) from None


def _reason(error: BaseException) -> str:
    """The first line of ``error``, shortened, for a one-line report."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    if not isinstance(error, CheckpointError):
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"


def _remove_unfinished(directory: Path, step: int | None = None) -> None:
    """Delete orbax's temporary folders in ``directory`` (only ``step``'s when given)."""
    pattern = re.compile(rf"{step if step is not None else r'.*'}{re.escape(_TMP_SUFFIX)}.*")
    for path in directory.iterdir():
        if pattern.fullmatch(path.name):
            shutil.rmtree(path, ignore_errors=True)


# ---- quiet orbax, signals held during a write ----------------------------------------

@contextlib.contextmanager
def _quiet(collect: bool = True):
    """Silence orbax's logging, asyncio's and the "exception ignored" noise of a failed read.

    orbax logs through absl (printed as ``WARNING:absl:...``), tensorstore's coroutines
    left unawaited after an error reach ``sys.unraisablehook``; both only repeat the
    error that is reported anyway. ``collect``: finalise such coroutines at the end
    (a garbage collection, tens of ms); False where nothing is read.
    """
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels = [logger.level for logger in loggers]
    hook = sys.unraisablehook
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    sys.unraisablehook = lambda unraisable: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if collect:
            gc.collect()  # finalize the abandoned coroutines while their noise is silenced
        sys.unraisablehook = hook
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _closed_loop(unraisable) -> bool:
    return (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed")


def _unretrieved(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Future exception was never retrieved")


def _silence_late_read_errors() -> None:
    """After a failed read, tensorstore's other reads finish later, outside ``_quiet``:
    their callbacks into orbax's event loop, closed by then, raise "RuntimeError: Event
    loop is closed" into ``sys.unraisablehook``, and their futures, collected at some
    later moment, log "Future exception was never retrieved" through asyncio's logger.
    Both printed tracebacks among or after the one-line report, and both only repeat
    it. Installed once per process, on the first failed read: a hook that drops exactly
    that error and passes every other one to the hook it replaces, and a filter on the
    asyncio logger for exactly that message."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop", False):
        return

    def hook(unraisable) -> None:
        if not _closed_loop(unraisable):
            previous(unraisable)

    hook.drops_closed_loop = True
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_unretrieved)


def _finish_despite_interrupts(work: Callable[[], None], interrupted: Callable[[], None]) -> None:
    """Run ``work()`` in a thread and wait for it, even when the waiting is interrupted.

    A ``KeyboardInterrupt`` or ``SystemExit`` raised in this thread while ``work`` runs
    (by a signal handler) calls ``interrupted()`` once and is raised again when ``work``
    has finished: orbax's writer threads are never abandoned mid-write (the process
    would abort at exit). An exception of ``work`` itself is raised here.
    """
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            work()
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=target, name="lstm-jax-checkpoint").start()
    interrupt: BaseException | None = None
    reported = False
    while True:
        try:  # all of the loop inside the try: a further signal may strike anywhere
            if done.is_set():
                break
            if interrupt is not None and not reported:
                reported = True
                interrupted()
            # a plain sleep: an exception raised inside Thread.join or Event.wait (lock
            # waits) breaks them (3.11's join then reports a running thread as stopped)
            time.sleep(0.02)
        except (KeyboardInterrupt, SystemExit) as error:
            interrupt = interrupt or error
    if failure:
        raise failure[0]
    if interrupt is not None:
        raise interrupt


@contextlib.contextmanager
def _signals_held(held_one: Callable[[], None]):
    """Hold SIGINT and SIGTERM during the block, then hand them to their own handlers.

    Their handlers are replaced by one that records the signal and calls ``held_one()``;
    at the end of the block the handlers are put back and each signal held is raised
    again, so e.g. Ctrl-C's ``KeyboardInterrupt`` comes out of the block once it is done
    (and a default SIGTERM ends the process then). Replacing handlers needs the main
    thread; elsewhere (where no signal handler runs anyway) nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    previous = {number: handler for number, handler in previous.items()
                if handler not in (signal.SIG_IGN, None)}  # None: set outside Python
    held: list[int] = []

    def hold(number, frame) -> None:
        # a first signal under interrupts.deferred() is announced and recorded now, so its
        # line comes before held_one's (it only asks the run to stop at its next check);
        # any other signal waits for the end of the block
        if not (interrupts.is_handler(previous.get(number)) and interrupts.record_first(number)):
            held.append(number)
        held_one()

    for number in previous:
        signal.signal(number, hold)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(held):  # each signal once, in the order they came
            signal.raise_signal(number)

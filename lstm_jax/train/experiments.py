"""Experiments: the ones shipped in ``lstm_jax.experiments``, and a user's own file.

An experiment module defines ``DESCRIPTION`` (one line) and ``get_config() -> Config``,
and may define ``get_task(config) -> Task`` (your own data, e.g.
``lstm_jax.tasks.from_arrays``; ``get_task()`` without arguments works too) and
``get_model(config, task) -> Model`` (your own model). Shipped experiments are imported
by name; a file runs only because the user named it (``lstm-jax train path/to/my_exp.py``),
as ``python my_exp.py`` would run it: its folder is on ``sys.path`` while it loads and
while its functions run, so it imports the modules beside it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import pkgutil
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Iterator, NamedTuple

from lstm_jax.train.config import Config, ConfigError

if TYPE_CHECKING:
    from lstm_jax.tasks import Task

PACKAGE = "lstm_jax.experiments"


class Experiment(NamedTuple):
    """An experiment module and where it came from (recorded in every run)."""

    name: str  # the shipped name, or the file's stem
    source: str  # "lstm_jax.experiments.NAME", or the absolute path of the user's file
    module: ModuleType

    @property
    def description(self) -> str:
        return getattr(self.module, "DESCRIPTION", "")

    @property
    def own_task(self) -> bool:
        """Whether the module defines ``get_task`` (else the task is ``config.task``)."""
        return callable(getattr(self.module, "get_task", None))

    def config(self) -> Config:
        with _beside(self.source):
            config = self.module.get_config()
        if not isinstance(config, Config):
            raise ConfigError(f"{self.source}: get_config() must return a Config, "
                              f"got {type(config).__name__}")
        return config

    def task(self, config: Config) -> Task:
        """The experiment's own ``get_task``, else the registered ``config.task``."""
        from lstm_jax.tasks import Task, get_task  # jax: not needed to list experiments

        if not self.own_task:
            return get_task(config.task, **config.task_options)
        get = self.module.get_task
        with _beside(self.source):
            task = get(config) if inspect.signature(get).parameters else get()
        if not isinstance(task, Task):
            raise ConfigError(f"{self.source}: get_task() must return a lstm_jax.tasks.Task, "
                              f"got {type(task).__name__}")
        return task

    def model(self, config: Config, task: Task):
        """The experiment's own ``get_model(config, task)``, or None for the default model."""
        get = getattr(self.module, "get_model", None)
        if get is None:
            return None
        with _beside(self.source):
            return get(config, task)


def shipped() -> list[str]:
    """The names of the experiments shipped with the package."""
    package = importlib.import_module(PACKAGE)
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__)
                  if not info.name.startswith("_"))


def list_experiments() -> dict[str, str]:
    """{name: one-line description} of every shipped experiment."""
    return {name: load(name).description for name in shipped()}


def load(name_or_path: str) -> Experiment:
    """A shipped experiment by name, or the experiment in a ``.py`` file.

    Unknown names list the shipped ones; a path that is no file, or a file Python does
    not import (``.txt``), is a ConfigError.
    """
    if name_or_path.endswith(".py") or "/" in name_or_path:
        return _load_file(Path(name_or_path))
    if not name_or_path.isidentifier() or name_or_path not in shipped():
        raise ConfigError(f"unknown experiment {name_or_path!r}; known experiments: "
                          f"{', '.join(shipped()) or 'none'} (or the path of your own .py file)")
    module = importlib.import_module(f"{PACKAGE}.{name_or_path}")
    return _checked(Experiment(name_or_path, f"{PACKAGE}.{name_or_path}", module))


def _load_file(path: Path) -> Experiment:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"no experiment file {path}")
    spec = importlib.util.spec_from_file_location(f"lstm_jax_user_experiment_{path.stem}", path)
    if spec is None:  # not a suffix Python imports: .txt, .yaml, none
        raise ConfigError(f"{path} is not a Python file: give a shipped experiment's name or "
                          f"the path of your own .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses in the file need it
    try:
        with _beside(str(path)):
            spec.loader.exec_module(module)  # the user named this file: it runs, as `python FILE` would
    except ImportError as error:  # a module it imports is missing: one line, not a traceback
        del sys.modules[spec.name]
        raise ConfigError(f"{path}, line {_line_in(error, path)}: {error}") from None
    except BaseException:
        del sys.modules[spec.name]
        raise
    return _checked(Experiment(path.stem, str(path), module))


@contextlib.contextmanager
def _beside(source: str) -> Iterator[None]:
    """The folder of a user's experiment file first on ``sys.path`` (as ``python FILE``
    puts it), for the duration; nothing for a shipped experiment."""
    if source.startswith(PACKAGE + "."):
        yield
        return
    folder = str(Path(source).parent)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)  # the first equal entry: the one inserted above


def _line_in(error: BaseException, path: Path) -> int | str:
    """The line of ``path`` where ``error`` was raised (the last frame in that file)."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if frame.filename == str(path)]
    return lines[-1] if lines else "?"


def _checked(experiment: Experiment) -> Experiment:
    if not callable(getattr(experiment.module, "get_config", None)):
        raise ConfigError(f"{experiment.source} defines no get_config()")
    return experiment

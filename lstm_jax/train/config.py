"""Experiment configs: one typed, frozen dataclass, and overrides parsed as literals.

An experiment file ``experiments/NAME.py`` defines ``DESCRIPTION`` (one line) and
``get_config() -> Config``. ``--set key=value`` overrides are parsed with
``ast.literal_eval`` (never ``eval``) and checked against the field's declared type;
``--set task_options.length=200`` sets one entry of a dict field.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """An experiment name, config key or value that cannot be used."""


POSITIVE = ("hidden_size", "num_layers", "batch_size", "steps", "log_every", "eval_every",
            "eval_batches", "checkpoint_every", "keep_checkpoints")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Two runs with equal configs are identical."""

    # task
    task: str = "adding"  # a name in lstm_jax.tasks.TASKS
    task_options: dict = dataclasses.field(default_factory=dict)  # e.g. {"length": 100}
    # model: a stack of recurrent layers, then a linear readout
    cell: str = "lstm"  # "lstm", "gru" or "simple"
    hidden_size: int = 128  # H of every layer
    num_layers: int = 1  # recurrent layers in the stack
    bidirectional: bool = False  # each layer reads forward and backward
    dropout: float = 0.0  # between recurrent layers, as torch.nn.LSTM(dropout=)
    cell_options: dict = dataclasses.field(default_factory=dict)  # e.g. {"forget_bias": 1.0}
    # optimisation: clip_by_global_norm, then AdamW with warmup and cosine decay
    batch_size: int = 64  # divisible by the number of devices
    steps: int = 2000  # optimiser steps in the whole run
    learning_rate: float = 3e-3  # peak, reached after warmup_steps
    warmup_steps: int = 100  # linear warmup from 0
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float = 1.0  # global gradient norm; 0 turns clipping off
    # bookkeeping
    seed: int = 0  # params, data order and dropout all derive from it
    log_every: int = 50  # steps between training-metric lines
    eval_every: int = 500  # steps between evaluations (and a final one)
    eval_batches: int = 8  # batches of batch_size in every evaluation
    checkpoint_every: int = 500  # steps between checkpoints (and a final one)
    keep_checkpoints: int = 3  # the most recent ones kept on disk

    def __post_init__(self):
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigError(f"`{name}` must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0 or self.warmup_steps < 0 or self.grad_clip < 0:
            raise ConfigError("`learning_rate` must be positive, `warmup_steps` and `grad_clip` "
                              "non-negative")


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _type_of(name: str) -> type:
    return type(getattr(Config(), name))


def _parse_value(key: str, text: str, expected: type) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if expected is str:
            return text
        raise ConfigError(f"--set {key}={text}: {text!r} is not a Python literal") from None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is not object and not (
        isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
    ):
        raise ConfigError(
            f"--set {key}={text}: expected {expected.__name__}, got {type(value).__name__}"
        )
    return value


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """``config`` with ``key=value`` overrides applied; errors list the valid keys.

    >>> apply_overrides(Config(), ["hidden_size=64", "task_options.length=50"]).task_options
    {'length': 50}
    """
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        name, _, entry = key.partition(".")
        if name not in FIELDS:
            raise ConfigError(
                f"unknown config key {name!r}; valid keys: {', '.join(FIELDS)}"
            )
        if entry:
            if _type_of(name) is not dict:
                raise ConfigError(f"--set {key}: {name!r} is not a dict field")
            current = dict(changes.get(name, getattr(config, name)))
            current[entry] = _parse_value(key, text, object)
            changes[name] = current
        else:
            changes[name] = _parse_value(key, text, _type_of(name))
    return dataclasses.replace(config, **changes)


def to_json(config: Config, experiment: str) -> str:
    return json.dumps({"experiment": experiment, **dataclasses.asdict(config)}, indent=2)


def from_json(text: str) -> tuple[str, Config]:
    """(experiment name, config) from a run's config.json."""
    data = json.loads(text)
    experiment = data.pop("experiment")
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise ConfigError(f"config.json has unknown keys {sorted(unknown)}")
    return experiment, Config(**data)


def experiments_dir() -> Path:
    """``$LSTM_JAX_EXPERIMENTS``, else the ``experiments/`` folder beside the package."""
    default = Path(__file__).resolve().parents[2] / "experiments"
    return Path(os.environ.get("LSTM_JAX_EXPERIMENTS", default))


def list_experiments() -> dict[str, str]:
    """{name: one-line description} of every experiment file."""
    found = {}
    for path in sorted(experiments_dir().glob("*.py")):
        if not path.name.startswith("_"):
            found[path.stem] = _load_module(path).DESCRIPTION
    return found


def load_experiment(name: str) -> Config:
    """``get_config()`` of ``experiments/<name>.py``; unknown names list the valid ones."""
    path = experiments_dir() / f"{name}.py"
    if not name.isidentifier() or not path.is_file():
        known = ", ".join(list_experiments()) or "none"
        raise ConfigError(f"unknown experiment {name!r}; known experiments: {known}")
    config = _load_module(path).get_config()
    if not isinstance(config, Config):
        raise TypeError(f"{path}: get_config() must return a Config, got {type(config).__name__}")
    return config


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"lstm_jax_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

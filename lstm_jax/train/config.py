"""Experiment configs: one typed, frozen dataclass.

Every field has a type, a default and a comment; the command line is built from them
with tyro (``lstm-jax train adding --help`` lists them), so a value is parsed against
its declared type and never ``eval``ed. Option dicts (``task_options``,
``cell_options``, ``rnn_options``) are given as ``KEY=VALUE`` pairs whose values are
read as Python literals when they are one (``true``/``false`` too) and as strings
otherwise (``--cell-options activation=relu forget_bias=0``); the pairs given replace those keys
of the experiment's dict and keep the others.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import itertools
import math
import os
import typing
from typing import Annotated, Any

import tyro

from lstm_jax.train import arguments


class ConfigError(ValueError):
    """An experiment name, config key or value that cannot be used."""


class GivenOptions(dict):
    """``KEY=VALUE`` pairs from the command line, to be merged into the experiment's dict."""


def _literal(text: str) -> Any:
    if text.lower() in ("true", "false"):  # as YAML and JSON spell them, too
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string: activation=relu


def parse_options(items: list[str]) -> GivenOptions:
    """``["length=50", "activation=relu"]`` -> ``{"length": 50, "activation": "relu"}``.

    >>> parse_options(["length=50", "activation=relu", "peephole=True", "bias=false"])
    {'length': 50, 'activation': 'relu', 'peephole': True, 'bias': False}
    """
    options = GivenOptions()
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        options[key] = _literal(text)
    return options


Options = Annotated[
    dict,
    tyro.constructors.PrimitiveConstructorSpec(
        nargs="*",
        metavar="KEY=VALUE",
        instance_from_str=parse_options,
        is_instance=lambda value: isinstance(value, dict),
        str_from_instance=lambda value: [f"{k}={v!r}" for k, v in value.items()],
    ),
]

POSITIVE = ("hidden_size", "num_layers", "embed_size", "batch_size", "steps", "log_every",
            "eval_every", "eval_batches", "checkpoint_every", "keep_checkpoints")
READOUTS = ("task", "last", "mean", "every")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a training run depends on. Two runs with equal configs are identical.

    Making one checks every field's type and range (``learning_rate`` a finite number
    > 0, ``weight_decay`` and ``grad_clip`` finite numbers >= 0, ``seed`` in ``SEEDS``,
    ...) and raises ConfigError naming the field and the value received.
    """

    # task
    task: str = "adding"  # a task in lstm_jax.tasks.TASKS; an experiment's get_task() replaces it (runs record its name)
    task_options: Options = dataclasses.field(default_factory=dict)  # keyword options of the task, e.g. length=100
    # model: [token embedding] -> recurrent layers -> linear readout
    cell: str = "lstm"  # the cell of every layer: a name in lj.KINDS (lstm, gru, mgu, min_gru, ...)
    hidden_size: int = 128  # H of every layer
    num_layers: int = 1  # recurrent layers in the stack
    bidirectional: bool = False  # each layer reads forward and backward
    dropout: float = 0.0  # between recurrent layers, as torch.nn.LSTM(dropout=)
    cell_options: Options = dataclasses.field(default_factory=dict)  # keyword options of the cell, e.g. forget_bias=0 activation=relu
    rnn_options: Options = dataclasses.field(default_factory=dict)  # options of lj.rnn: input_dropout, recurrent_dropout, zoneout, weight_drop, learn_initial_carry, remat, ...
    embed_size: int = 64  # E, the embedding of token-id inputs (tasks whose inputs are tokens)
    readout: str = "task"  # where predictions are read: task (the task's own), last, mean (over valid steps) or every
    # optimisation: clip_by_global_norm, then AdamW with warmup and cosine decay
    batch_size: int = 64  # divisible by the number of devices
    steps: int = 2000  # optimiser steps in the whole run
    learning_rate: float = 3e-3  # peak, reached after warmup_steps
    warmup_steps: int = 100  # linear warmup from 0
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float = 1.0  # global gradient norm; 0 turns clipping off
    bptt_chunk: int = 0  # truncated BPTT (lj.truncated_bptt): gradients cross at most this many steps; 0: the whole sequence
    # bookkeeping
    seed: int = 0  # params, data order and dropout all derive from it
    log_every: int = 50  # steps between training-metric lines
    eval_every: int = 500  # steps between evaluations (and a final one)
    eval_batches: int = 8  # batches of batch_size in every evaluation of a generated task
    checkpoint_every: int = 500  # steps between checkpoints (and a final one)
    keep_checkpoints: int = 3  # the most recent ones kept on disk

    def __post_init__(self):
        for field, expected in _field_types().items():
            value = getattr(self, field)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, field, float(value))
            elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(f"`{field}` must be {expected.__name__}, got {value!r}")
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigError(f"`{name}` must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if not 0 < self.learning_rate < math.inf:  # NaN fails every comparison
            raise ConfigError(f"`learning_rate` must be a finite number > 0, got {self.learning_rate}")
        for name in ("weight_decay", "grad_clip"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"`{name}` must be a finite number >= 0, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"`warmup_steps` must be >= 0, got {self.warmup_steps}")
        seed_in_range("`seed`", self.seed)
        if self.bptt_chunk < 0:
            raise ConfigError(f"`bptt_chunk` must be >= 0 (0: full BPTT), got {self.bptt_chunk}")
        if self.bptt_chunk and self.bidirectional:
            raise ConfigError("`bptt_chunk` needs a unidirectional model (no carry passes "
                              "between chunks of a bidirectional layer)")
        if self.readout not in READOUTS:
            raise ConfigError(f"`readout` must be one of {', '.join(READOUTS)}, got {self.readout!r}")


@functools.cache
def _field_types() -> dict[str, type]:
    """{field: the class its values must be an instance of}, from the annotations."""
    return typing.get_type_hints(Config)  # Options is Annotated[dict, ...]: dict


FIELDS = tuple(f.name for f in dataclasses.fields(Config))


def replace(config: Config, **changes) -> Config:
    """``config`` with ``changes``; unknown fields list the valid ones.

    Option dicts given as ``GivenOptions`` are merged into the config's own, except that
    a new ``task`` starts from no task options (those of the old task do not apply).

    >>> adding = Config(task="adding", task_options={"length": 100})
    >>> replace(adding, task_options=GivenOptions(length=50)).task_options
    {'length': 50}
    >>> replace(adding, task="copy", task_options=GivenOptions(delay=30)).task_options
    {'delay': 30}
    >>> replace(adding, task="copy").task_options
    {}
    """
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown config field {unknown[0]!r}; valid fields: {', '.join(FIELDS)}")
    own = {name: getattr(config, name) for name in FIELDS}
    if changes.get("task", config.task) != config.task:  # the old task's options do not apply
        own["task_options"] = {}
        changes.setdefault("task_options", {})
    for name, value in changes.items():
        if isinstance(value, GivenOptions):
            changes[name] = {**own[name], **value}
    return dataclasses.replace(config, **changes)


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def from_dict(data: Any, where: str) -> Config:
    """The Config stored in a run's config.json; ``where`` names the file in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object of config fields")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown config field {unknown[0]!r}")
    try:
        return Config(**data)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def cli(config: Config, args: list[str], prog: str) -> Config:
    """``config`` with command-line ``args`` (``--hidden-size 32 --cell-options ...``) applied.

    ``--help`` prints every field with its type, default and comment, and exits.
    Errors raise ConfigError with tyro's message condensed to one line.
    """
    import contextlib
    import io

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            parsed = tyro.cli(Config, default=config, args=args, prog=prog,
                              description=f"Train with these config fields ({prog}).")
    except SystemExit as exit:
        if exit.code in (0, None):
            raise
        # a field's own check names the field: tyro's "Error parsing Config: " adds nothing
        raise ConfigError(_one_line(captured.getvalue()).removeprefix("Error parsing Config: ")) from None
    given = {name: getattr(parsed, name) for name in FIELDS
             if getattr(parsed, name) != getattr(config, name)
             or isinstance(getattr(parsed, name), GivenOptions)}
    task_options = given.get("task_options")
    if isinstance(task_options, GivenOptions) and isinstance(task_options.get("path"), str):
        # a file named here is recorded absolute: eval, sample and --resume work from anywhere
        given["task_options"] = GivenOptions(task_options, path=os.path.abspath(task_options["path"]))
    return replace(config, **given)


def _one_line(message: str) -> str:
    """tyro's boxed error, as one line: its first message, and any suggestion."""
    boxed = [line.strip(" │╭╮╰╯") for line in message.splitlines()]
    lines = [line for line in boxed if line.strip("─-") and not line.startswith("For full helptext")]
    if len(lines) < 2:
        return " ".join(lines) or "invalid arguments"
    # lines[0] is the box's title; its message, wrapped to the box's width, is the run of
    # lines after it up to a rule or a blank line
    def is_text(line: str) -> bool:
        return bool(line.strip(" ─-"))

    after_title = itertools.dropwhile(lambda line: not is_text(line), boxed[boxed.index(lines[0]) + 1:])
    text = " ".join(line.strip() for line in itertools.takewhile(is_text, after_title))
    if "Perhaps you meant:" in lines:
        suggestion = lines[lines.index("Perhaps you meant:") + 1].split()[0]
        text += f"; did you mean {suggestion}?"
    if text.startswith("Unrecognized options: "):  # tyro lists the values too: --bogus, 3
        head, sep, rest = text.partition("; ")
        words = head.removeprefix("Unrecognized options: ").split(", ")
        options = ", ".join(word for word in words if word.startswith("-")) or ", ".join(words)
        text = (f"Unrecognized options: {options}{sep}{rest}; the config fields: "
                + ", ".join(map(flag, FIELDS)))
    return text


def flag(field: str) -> str:
    """The command-line flag of a config field: ``hidden_size`` -> ``--hidden-size``."""
    return "--" + field.replace("_", "-")


def explicit_fields(args: list[str]) -> set[str]:
    """The config fields named by flags in ``args`` (``--hidden-size 3`` -> hidden_size)."""
    named = {arg[2:].split("=")[0].replace("-", "_") for arg in args if arg.startswith("--")}
    named |= {name[3:] for name in named if name.startswith("no_")}  # --no-bidirectional
    return named & set(FIELDS)


SEEDS = range(-2**63, 2**63)  # the ints jax.random.key takes: a C long


def seed_in_range(name: str, seed: int) -> None:
    """Raise unless ``seed`` is in ``SEEDS``; ``name`` names it in the message."""
    if seed not in SEEDS:
        raise ConfigError(f"{name} must be in [-2**63, 2**63) (the ints jax.random.key "
                          f"takes), got {seed}")


def check_seeds(seeds) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct ints in ``SEEDS``, at least one."""
    seeds = tuple(seeds) if isinstance(seeds, (list, tuple, range)) else seeds
    if not isinstance(seeds, tuple) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"{arguments.named('seeds')} must be one or more ints, got {seeds!r}")
    for seed in seeds:
        seed_in_range(arguments.named("seeds"), seed)
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"{arguments.named('seeds')} must be distinct, got "
                          f"{', '.join(map(str, seeds))}")
    return seeds


# The default optimizer's values that the step of runs trained at once takes as inputs
# (``steps.Hyperparams``): besides the seed and options read only at init, what a sweep
# may vary and stay one program.
STEP_INPUTS = ("learning_rate", "weight_decay", "grad_clip")


def sweep_grid(config: Config, sweep) -> list[tuple[str, Config]]:
    """The runs of a sweep: ``config`` with every combination of one value per name.

    ``sweep`` maps a config field (``learning_rate``) or a key of an options field
    (``cell_options.forget_bias``) to its values. Returns ``(label, config)`` per run in
    grid order, the label naming its values (``learning_rate=0.01-cell_options.forget_bias=0``),
    fit for a directory name.

    >>> [label for label, _ in sweep_grid(Config(), {"learning_rate": [0.01, 0.03]})]
    ['learning_rate=0.01', 'learning_rate=0.03']

    Raises:
      ConfigError: ``sweep`` is not a non-empty dict of names to distinct values, a name is
        not a field or option, ``seed`` is swept (seeds are their own argument), or a value
        is not valid for its field.
    """
    if not isinstance(sweep, dict) or not sweep:
        raise ConfigError(f"{arguments.named('sweep')} must map config fields to their values, "
                          f"got {sweep!r}")
    for name, values in sweep.items():
        field, _, key = str(name).partition(".")
        if field not in FIELDS or (key and not isinstance(getattr(config, field), dict)):
            options = ", ".join(f for f in FIELDS if isinstance(getattr(config, f), dict))
            close = difflib.get_close_matches(field.replace("-", "_"), FIELDS, n=1)
            raise ConfigError(f"cannot sweep {name!r}: name a config field or FIELD.KEY of an "
                              f"options field ({options})"
                              + (f"; did you mean {close[0]}?" if close and not key else ""))
        if field == "seed":
            raise ConfigError(f"seeds are swept with {arguments.named('seeds')}")
        distinct = isinstance(values, (list, tuple)) and len(set(map(repr, values))) == len(values)
        if not values or not distinct:
            raise ConfigError(f"the values of {name} must be a non-empty list of distinct "
                              f"values, got {values!r}")
    grid = []
    for point in itertools.product(*sweep.values()):
        changes: dict[str, Any] = {}
        for name, value in zip(sweep, point):
            field, _, key = name.partition(".")
            if key:
                changes.setdefault(field, GivenOptions())[key] = value
            else:
                changes[field] = value
        label = "-".join(f"{name}={value}" for name, value in zip(sweep, point))
        if "/" in label or "\0" in label:
            raise ConfigError(f"a swept value cannot name a directory: {label!r}")
        grid.append((label, replace(config, **changes)))
    return grid


def group_runs(config: Config, seeds=None, sweep=None) -> list[tuple[str, Config]]:
    """The runs of ``train(..., seeds=, sweep=)``: each its directory's name in ``run_dir``
    and its config. Every point of the ``sweep`` grid (``sweep_grid``) with each seed, as
    ``learning_rate=0.01-seed3``; seeds alone are ``seedS``.

    Raises:
      ConfigError: bad ``seeds`` or ``sweep``.
    """
    points = sweep_grid(config, sweep) if sweep is not None else [("", config)]
    if seeds is None:
        return points
    seeds = check_seeds(seeds)
    return [("-".join(filter(None, (label, seed_label(seed)))), dataclasses.replace(point, seed=seed))
            for label, point in points for seed in seeds]


def seed_label(seed: int) -> str:
    """The name of a seed's run directory among runs trained at once."""
    return f"seed{seed}"

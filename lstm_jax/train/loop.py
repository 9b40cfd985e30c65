"""The training loop: prepare (check everything), then step, log, evaluate and checkpoint.

``prepare`` builds the task, model and optimizer and checks that they fit together
(shapes, batch size, devices) without writing anything, so a mistake in a config is
reported before a run directory exists. ``run`` trains a prepared run in a directory;
``train`` does both. ``evaluate`` and ``load`` rebuild a finished or interrupted run
from its ``config.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from lstm_jax import _checks
from lstm_jax.sampling import check_temperature
from lstm_jax.tasks import Task, get_task
from lstm_jax.tasks.arrays import epochs
from lstm_jax.train import interrupts, rundir
from lstm_jax.train.arguments import named
from lstm_jax.train.checkpoint import CheckpointError, Checkpoints
from lstm_jax.train.config import (FIELDS, STEP_INPUTS, Config, ConfigError, check_seeds, group_runs,
                                  seed_label, to_dict)
from lstm_jax.train.experiments import PACKAGE, Experiment, load as load_experiment
from lstm_jax.train.model import Model, build_model
from lstm_jax.train.report import MetricsLog, Progress, plot_losses
from lstm_jax.train.sharding import DataParallel, ModelParallel
from lstm_jax.train.steps import (Hyperparams, TrainState, default_optimizer, init_state,
                                  learning_rate_schedule, make_eval_step, make_train_step)

FROM_CONFIG = "config"  # a run whose task is config.task, rebuilt from the config alone
FROM_PYTHON = "python"  # a run given task=/model= in Python: pass them again to evaluate/load


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunKeys(NamedTuple):
    """Every random stream of a run, derived from its seed alone."""

    init: int  # seed of the params and of the dropout key
    data: jax.Array  # training batch at step s: task.train_batch(data, s, B)
    eval: jax.Array  # the evaluation set: task.eval_batches(eval, B, eval_batches)


def run_keys(seed: int) -> RunKeys:
    root = jax.random.key(seed)
    return RunKeys(seed, jax.random.fold_in(root, 1), jax.random.fold_in(root, 2))


class Prepared(NamedTuple):
    """A run's parts, built and checked against each other; nothing written yet."""

    config: Config
    name: str  # the experiment's name, for directories and plots
    source: str  # where the task and model come from (see rundir)
    task: Task
    model: Model
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule | None  # the default optimizer's learning rate, for the logs
    keys: RunKeys
    parallel: DataParallel | ModelParallel


def prepare(
    config: Config,
    *,
    experiment: Experiment | str | None = None,
    task: Task | None = None,
    model: Model | None = None,
    optimizer: optax.GradientTransformation | None = None,
    devices=None,
    models: int = 1,
) -> Prepared:
    """Build the run's task, model and optimizer and check that one step can run.

    ``experiment`` (an ``Experiment`` or a name/path for ``experiments.load``) supplies
    the task and model its module defines; ``task=``/``model=`` give them directly.
    Every mistake in the config (an unknown task, cell or option, a bad task option,
    a batch size the data or the devices cannot take, shapes that do not fit) raises
    ``ConfigError``. Nothing is compiled and nothing is written. A task of the
    experiment's own ``get_task`` or given as ``task=`` becomes the config's ``task``
    (its ``name``), so ``config.json`` records the task that ran. ``models``: the
    number of runs this one is trained with at once (``prepare_seeds``), which places
    them over the devices by model instead of splitting the batch.
    """
    if isinstance(experiment, str):
        experiment = load_experiment(experiment)
    name = experiment.name if experiment else (task.name if task else config.task)
    if task is not None or model is not None:
        source = FROM_PYTHON  # nothing on disk can rebuild them
    else:
        source = experiment.source if experiment else FROM_CONFIG
    parallel = ModelParallel(models, devices) if models > 1 else DataParallel(devices)
    parallel.check_batch_size(config.batch_size)
    keys = run_keys(config.seed)
    own_task = task is not None or bool(experiment and experiment.own_task)
    try:
        if task is None:
            task = experiment.task(config) if experiment else get_task(config.task, **config.task_options)
        if own_task:  # config.json records the task that ran, not the config's default
            config = dataclasses.replace(config, task=task.name)
        if model is None:
            model = (experiment and experiment.model(config, task)) or build_model(config, task)
        _check_one_step(model, task, keys, config.batch_size)
    except (TypeError, ValueError) as error:  # an unknown cell or option, a bad value, shapes
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(str(error)) from error
    schedule = learning_rate_schedule(config) if optimizer is None else None
    return Prepared(config, name, source, task, model, optimizer or default_optimizer(config),
                    schedule, keys, parallel)


def _check_one_step(model: Model, task: Task, keys: RunKeys, batch_size: int) -> None:
    """Build one training batch and trace (not compile) the loss on it."""
    batch = task.train_batch(keys.data, 0, batch_size)
    params = jax.eval_shape(model.init, jax.random.key(0))
    jax.eval_shape(lambda p, b: task.loss(model.apply(p, b.xs, b.seq_lengths), b), params, batch)


def prepare_group(configs: list[Config], **options) -> list[Prepared]:
    """``prepare`` for each of ``configs``: runs to be trained at once by ``run_many``, as
    one program (the first run's step over the models, ``steps.over_models``) in one
    loop. They may differ in their ``seed``, in the default optimizer's ``STEP_INPUTS``
    (``learning_rate``, ``weight_decay`` and a positive ``grad_clip``: inputs of the
    group's step, ``steps.Hyperparams``), in options read only at init, such as
    ``cell_options``' ``forget_bias`` or an initializer, and in task options that change
    the data but no shape. What is compiled into the step (shapes, dropout rates,
    ``warmup_steps``, whether gradients are clipped, ...) must be equal, checked by
    tracing every run's step (``step_program``), and so must the ``LOOP_FIELDS``.
    ``options`` as for ``prepare``.

    Raises:
      ConfigError: the runs are not one program or loop (the message names the fields
        that differ), two of them would train alike (what differs is read by neither the
        model nor the optimizer, e.g. ``optimizer=`` given and ``learning_rate`` swept),
        or as ``prepare``.
    """
    group = [prepare(config, models=len(configs), **options) for config in configs]
    first = group[0]
    others = [prepared for prepared in group[1:]
              if dataclasses.replace(prepared.config, seed=0) != dataclasses.replace(first.config, seed=0)]
    if not others:
        return group  # seeds alone: the seed changes the params and the data, never the program
    program = step_program(first)
    for prepared in others:
        shared = [name for name in LOOP_FIELDS
                  if getattr(prepared.config, name) != getattr(first.config, name)]
        if shared:
            raise ConfigError(f"runs trained at once share one loop: they cannot differ in "
                              f"{', '.join(shared)}")
        if step_program(prepared) != program:
            fields = _compiled_differences(first.config, prepared.config)
            raise ConfigError(
                f"runs that differ in {', '.join(fields)} cannot train at once: "
                f"{'they are' if len(fields) > 1 else 'it is'} compiled into the "
                f"training step; runs trained at once may differ only in the seed, "
                f"{', '.join(STEP_INPUTS)} (grad_clip among positive values) and options "
                f"read only at init (such as cell_options' forget_bias)")
    starts: dict[str, Prepared] = {}  # a fingerprint of what a run starts from -> the run
    for prepared in group:
        state = init_state(prepared.model, prepared.optimizer, prepared.keys.init)
        batch = prepared.task.train_batch(prepared.keys.data, 0, prepared.config.batch_size)
        leaves = jax.tree.leaves((state, batch, _hyperparams(prepared)))
        start = "".join(_fingerprint(leaf) for leaf in leaves)
        if start in starts:  # the same program from the same state on the same data
            fields = ", ".join(_differences(starts[start].config, prepared.config)) or "nothing"
            raise ConfigError(f"runs that differ in {fields} would train alike: neither the "
                              f"model nor the optimizer that trains them reads it")
        starts[start] = prepared
    return group


def step_program(prepared: Prepared) -> tuple[str, str]:
    """The jaxprs of a run's training step (the default optimizer's ``Hyperparams`` as its
    inputs, as the loop of a group passes them) and evaluation step, constants inlined:
    equal for runs that one program can train."""
    state = jax.eval_shape(functools.partial(init_state, prepared.model, prepared.optimizer,
                                             prepared.keys.init))
    batch = prepared.task.train_batch(prepared.keys.data, 0, prepared.config.batch_size)
    inputs = jax.tree.map(lambda value: jax.ShapeDtypeStruct((), jax.numpy.float32),
                          _hyperparams(prepared))
    jaxprs = [jax.make_jaxpr(make_train_step(prepared.model, prepared.task, prepared.optimizer))(
                  state, batch, inputs),
              jax.make_jaxpr(make_eval_step(prepared.model, prepared.task))(state.params, batch)]
    return tuple(str(closed.jaxpr) + "".join(_fingerprint(c) for c in closed.consts)
                 for closed in jaxprs)


def _hyperparams(prepared: Prepared) -> Hyperparams | None:
    """The run's values that a group's step takes as inputs: the default optimizer's
    ``Hyperparams`` (None for an optimizer of one's own)."""
    return Hyperparams.of(prepared.config) if prepared.schedule is not None else None


def _fingerprint(array) -> str:
    array = np.asarray(array)
    return f"{array.dtype}{array.shape}{hashlib.sha256(array.tobytes()).hexdigest()}"


def _differences(a: Config, b: Config) -> list[str]:
    """The fields (``cell_options.forget_bias`` for an option) in which ``b`` differs from ``a``."""
    names = []
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, dict) and isinstance(y, dict):
            names += [f"{name}.{key}" for key in sorted(set(x) | set(y)) if x.get(key) != y.get(key)]
        elif x != y and name != "seed":
            names.append(name)
    return names


def _compiled_differences(a: Config, b: Config) -> list[str]:
    """The fields of ``_differences(a, b)`` that a group's step cannot take as inputs:
    not the ``STEP_INPUTS``, but ``grad_clip`` where one run clips and the other does not
    (all of them if that leaves none)."""
    fields = _differences(a, b)
    compiled = [name for name in fields if name not in STEP_INPUTS
                or (name == "grad_clip" and (a.grad_clip > 0) != (b.grad_clip > 0))]
    return compiled or fields


def prepare_seeds(config: Config, seeds, **options) -> list[Prepared]:
    """``prepare_group`` of runs of ``config`` that differ only in their seed.

    Raises:
      ConfigError: ``seeds`` is not a non-empty sequence of distinct ints, or as ``prepare``.
    """
    return prepare_group([dataclasses.replace(config, seed=seed) for seed in check_seeds(seeds)],
                         **options)


def seed_dirs(parent: Path, seeds) -> list[Path]:
    """The run directory of each seed of ``train(..., seeds=...)``: ``parent/seedS``."""
    return [Path(parent) / seed_label(seed) for seed in seeds]


def train(
    config: Config,
    run_dir: str | Path,
    *,
    experiment: Experiment | str | None = None,
    task: Task | None = None,
    model: Model | None = None,
    optimizer: optax.GradientTransformation | None = None,
    resume: bool = False,
    devices=None,
    progress: bool = True,
    seeds=None,
    sweep=None,
) -> dict[str, Any] | list[dict[str, Any]]:
    """Train ``config`` in ``run_dir`` and return the final evaluation.

    ``run_dir`` receives ``config.json`` (the config, where the task came from, the
    command, versions, devices), ``metrics.jsonl`` (a train line every ``log_every``
    steps with loss, gradient norm, learning rate, steps/s and elapsed time; eval
    lines; the last line is the final evaluation), ``loss.png``, TensorBoard event
    files and ``checkpoints/``. With ``resume`` the run continues from its latest
    checkpoint that restores and ends exactly as an uninterrupted run would; a larger
    ``config.steps`` extends it. Batch ``s`` is a pure function of (seed, s); dropout
    at step ``s`` uses ``fold_in(rng, s)``.

    ``seeds`` (ints) trains one run per seed, all at once: one program (``over_models``)
    whose model axis is split over the devices (``ModelParallel``). ``run_dir`` then
    holds a run directory per seed, ``seedS`` (``seed_dirs``), each what the run of
    that seed alone would write, with results equal to it within float rounding; the
    return value is the list of their dicts, in the order of ``seeds``.

    Returns:
      ``{"metrics": final evaluation, "baselines": the task's, "state": TrainState,
      "run_dir": Path, "already_finished": bool}``.

    Raises:
      ConfigError: a mistake in the config, ``run_dir`` already holds another run, or
        ``resume`` finds no checkpoint that restores (the message says what to do).
      TrainingDiverged: on a NaN or infinite loss (no checkpoint is written after it).
      interrupts.Interrupted: SIGINT/SIGTERM; the run stops between steps and checkpoints
        the step reached (``stop.step``, ``stop.checkpoint``), so ``resume`` loses nothing.
    """
    options = dict(experiment=experiment, task=task, model=model, optimizer=optimizer,
                   devices=devices)
    if run_dir is not None and not resume:  # at once, not after preparing every run
        rundir.check_new(run_dir)
    runs = None if seeds is None and sweep is None else group_runs(config, seeds, sweep)
    group = (prepare_group([run_config for _, run_config in runs], **options) if runs
             else [prepare(config, **options)])
    run_dir = rundir.make(Path(run_dir)) if resume else rundir.create(run_dir, group[0].name)
    if runs is None:
        return run(group[0], run_dir, resume=resume, progress=progress)
    return run_many(group, [run_dir / name for name, _ in runs], resume=resume, progress=progress)


def run(prepared: Prepared, run_dir: Path, *, resume: bool = False, progress: bool = True,
        command: str | None = None) -> dict[str, Any]:
    """Train a prepared run in ``run_dir`` (see ``train``); ``command`` is the lstm-jax
    command line that asked for it, recorded in ``config.json`` (None from Python)."""
    return run_many([prepared], [run_dir], resume=resume, progress=progress, command=command)[0]


def run_many(group: list[Prepared], run_dirs: list[Path], *, resume: bool = False,
             progress: bool = True, command: str | None = None) -> list[dict[str, Any]]:
    """Train prepared runs that are one program (``prepare_group``) at once, each
    in its own directory, as one program over the runs (``over_models``); a group of one is
    ``run``. Returns ``run``'s dict for each. They start and stop together: resumed,
    they continue from the latest step that every run has checkpointed.
    """
    config = group[0].config  # its loop fields are every run's (prepare_group)
    run_dirs = [rundir.make(Path(path)) for path in run_dirs]
    with interrupts.deferred(), contextlib.ExitStack() as stack:
        checkpoints = [stack.enter_context(Checkpoints(path / "checkpoints", keep=config.keep_checkpoints))
                       for path in run_dirs]
        states = _starting_states(group, run_dirs, checkpoints, resume)
        start = int(states[0].step)
        records = [MetricsLog(path / "metrics.jsonl").read() for path in run_dirs]
        if start > config.steps:
            raise ConfigError(f"`steps` {config.steps} is below step {start} that {run_dirs[0]} "
                              f"has reached; a larger {named('steps')} extends a run")
        if start == config.steps and all(r and r[-1].get("final") and r[-1]["step"] == start
                                         for r in records):
            return [{"metrics": r[-1], "baselines": p.task.baselines, "state": state,
                     "run_dir": path, "already_finished": True}
                    for p, r, state, path in zip(group, records, states, run_dirs)]
        for prepared, path in zip(group, run_dirs):
            _write_record(prepared, path, resume, command)
        logs = [stack.enter_context(_Logs(path, start)) for path in run_dirs]
        earlier = [[r["elapsed_s"] for r in rs if r["step"] <= start and "elapsed_s" in r]
                   for rs in records]
        evaluated = all(any(r["split"] == "eval" and r["step"] == start for r in rs) for rs in records)
        try:
            states, finals = _loop(group, states, start, checkpoints, logs, progress,
                                   elapsed=[e[-1] if e else 0.0 for e in earlier],
                                   evaluate_start=_eval_due(config, start) and not evaluated)
        except KeyboardInterrupt as stop:  # at a safe point, or at once (a second signal)
            stop.checkpoint = checkpoints[0].latest_step()
            raise
    for prepared, path, log in zip(group, run_dirs, logs):
        plot_losses(log.jsonl.read(), path / "loss.png",
                    f"{prepared.name} ({config.cell}, H={config.hidden_size})", prepared.task.baselines)
    return [{"metrics": final, "baselines": p.task.baselines, "state": state, "run_dir": path,
             "already_finished": False} for p, final, state, path in zip(group, finals, states, run_dirs)]


def _starting_states(group: list[Prepared], run_dirs: list[Path], checkpoints: list[Checkpoints],
                     resume: bool) -> list[TrainState]:
    """Each run's initial state, or with ``resume`` its checkpointed one: all at the latest
    step every run has a checkpoint of that restores."""
    states = [init_state(p.model, p.optimizer, p.keys.init) for p in group]
    saved = [c.latest_step() is not None for c in checkpoints]
    if not resume or not any(saved):
        for path, found in zip(run_dirs, saved):
            if found:
                raise ConfigError(f"{path} already holds checkpoints; continue it with "
                                  f"{named('resume')} or choose another {named('out')}")
        return states
    if not all(saved):
        raise ConfigError(f"{run_dirs[saved.index(False)]} has no checkpoint while "
                          f"{run_dirs[saved.index(True)]} has; these runs cannot continue "
                          f"together: continue each alone with {named('resume')}")
    common = None
    while True:
        restored = []
        for state, c in zip(states, checkpoints):
            try:
                restored.append(c.restore(state, at_most=common))
            except CheckpointError as error:
                raise ConfigError(_cannot_resume(error, c)) from None
        steps = [int(state.step) for state in restored]
        if len(set(steps)) == 1:
            return restored
        common = min(steps)


def _cannot_resume(error: CheckpointError, checkpoints: Checkpoints) -> str:
    """What a run none of whose checkpoints restores can do: start again, here or elsewhere."""
    steps = checkpoints.all_steps()
    damaged = checkpoints.path(steps[0]) if len(steps) == 1 else checkpoints.directory
    return (f"{error}; remove {damaged} to train this run again from step 0, or start a "
            f"new run in another directory")


def _write_record(prepared: Prepared, run_dir: Path, resume: bool, command: str | None) -> None:
    path = run_dir / rundir.RECORD
    if resume and path.exists():
        record, _ = rundir.read_record(run_dir)
        record["config"] = to_dict(prepared.config)
        record["resumed"] = [*record.get("resumed", []), command or "python"]
    else:
        record = rundir.new_record(prepared.name, prepared.source, prepared.config,
                                   prepared.parallel.devices, command)
    rundir.write_record(run_dir, record)


class _Logs:
    """Where the loop's records go: ``metrics.jsonl`` and TensorBoard event files."""

    def __init__(self, run_dir: Path, start: int):
        from lstm_jax.train.report import TensorBoard

        self.jsonl = MetricsLog(run_dir / "metrics.jsonl")
        self.jsonl.truncate_after(start)
        self.board = TensorBoard(run_dir, purge_step=start + 1 if start else None)

    def write(self, record: dict) -> None:
        self.jsonl.write(record)
        self.board.scalars(record["step"], record, prefix=record["split"])

    def __enter__(self) -> "_Logs":
        return self

    def __exit__(self, *exc_info) -> None:
        self.board.close()


# the config fields the loop of runs trained at once reads from the first run's config
LOOP_FIELDS = ("steps", "batch_size", "log_every", "eval_every", "eval_batches", "checkpoint_every",
               "keep_checkpoints")

IN_FLIGHT = 2  # training steps the host may dispatch ahead of the device


def _eval_due(config: Config, step: int) -> bool:
    """Whether the loop evaluates after ``step`` (the final evaluation aside)."""
    return 0 < step < config.steps and step % config.eval_every == 0


class _Stacking(NamedTuple):
    """How the loop holds a group's states and batches: a run alone as it is; several
    stacked on a leading model axis."""

    size: int

    def stack(self, trees: list) -> Any:
        return trees[0] if self.size == 1 else jax.tree.map(lambda *a: jax.numpy.stack(a), *trees)

    def unstack(self, tree: Any) -> list:
        if self.size == 1:
            return [tree]
        return [jax.tree.map(lambda a, k=k: a[k], tree) for k in range(self.size)]


def _loop(group: list[Prepared], states: list[TrainState], start: int,
          checkpoints: list[Checkpoints], logs: list[_Logs], progress: bool,
          elapsed: list[float], evaluate_start: bool = False):
    """Step, log, evaluate and checkpoint the runs of ``group`` (each in the same place of
    every list) from ``start`` to ``config.steps``; ``elapsed`` is each run's training
    time logged before ``start`` (by the runs this one resumes); ``evaluate_start``: the
    evaluation of step ``start`` is due (an interrupt stopped it). Returns the final
    states and evaluations.

    The host never waits on the step it has just dispatched: batch ``s + 1`` is made
    while step ``s`` runs, and the metrics stay on the device until a train line, an
    evaluation or a checkpoint needs them (``_Window``). Interrupted (SIGINT/SIGTERM at a
    safe point), the loop logs the steps since the last train line and checkpoints the
    step reached, unless no step ran or that step is saved, before ``Interrupted`` goes on.
    """
    first = group[0]
    config, task, parallel = first.config, first.task, first.parallel
    runs = _Stacking(len(group))
    many = runs.size > 1
    eval_set = [parallel.place_batch(runs.stack(list(batches))) for batches in zip(
        *(p.task.eval_batches(p.keys.eval, config.batch_size, config.eval_batches) for p in group))]
    mesh = parallel.mesh if many else None  # the model axis over ModelParallel's devices
    train_step = make_train_step(first.model, task, first.optimizer, models=many, mesh=mesh)
    eval_step = make_eval_step(first.model, task, models=many, mesh=mesh)
    state = parallel.place_state(runs.stack(states))
    # runs trained at once take their learning rates and weight decays as inputs
    hyperparams = (parallel.place_state(runs.stack([_hyperparams(p) for p in group]))
                   if many and first.schedule is not None else None)

    def batch_at(step: int):
        return parallel.place_batch(runs.stack(
            [p.task.train_batch(p.keys.data, step, config.batch_size) for p in group]))

    def evaluate_at(step: int, final: bool = False) -> list[dict]:
        head = {"split": "eval", "step": step, **({"final": True} if final else {})}
        return [{**head, **metrics} for metrics in _evaluate(eval_step, state.params, eval_set)]

    def write(records: list[dict]) -> None:
        for log, record in zip(logs, records):
            log.write(record)

    def save(step: int) -> None:
        for c, member in zip(checkpoints, runs.unstack(state)):
            c.save(step, member)

    window = _Window(group, checkpoints, elapsed)
    bar = Progress(config.steps, start, first.name + (f" ×{runs.size}" if many else ""),
                   enabled=progress, every=config.log_every)
    done = start
    with bar:
        try:
            if evaluate_start:
                write(evaluate_at(start))
            batch = batch_at(start) if start < config.steps else None
            for step in range(start, config.steps):
                interrupts.check()
                state, metrics = train_step(state, batch, hyperparams)
                done = step + 1
                if done < config.steps:
                    batch = batch_at(done)  # made while the step runs
                window.add(done, metrics)
                if done % config.log_every == 0 or done == config.steps:
                    records = window.train_records(state, done)
                    write(records)
                    bar.update(1, _shown_loss(records))
                else:
                    bar.update(1)
                if _eval_due(config, done):
                    window.check()
                    write(evaluate_at(done))
                if done % config.checkpoint_every == 0 or done == config.steps:
                    window.check()
                    save(done)
            if checkpoints[0].latest_step() != config.steps:  # resumed after the final checkpoint
                save(config.steps)
            finals = evaluate_at(config.steps, final=True)
        except interrupts.Interrupted as stop:
            stop.step = done
            if window.steps:  # the steps since the last train line, and their last loss shown
                records = window.train_records(state, done)
                write(records)
                bar.update(0, _shown_loss(records))
            if done > start and checkpoints[0].latest_step() != done:
                with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C again: saved anyway
                    save(done)
            raise
    write(finals)
    return runs.unstack(state), finals


def _shown_loss(records: list[dict]) -> dict:
    """The progress bar's loss: the run's, or the mean of the runs trained at once."""
    if len(records) == 1:
        return {"loss": records[0]["loss"]}
    return {"mean loss": float(np.mean([r["loss"] for r in records]))}


class _Window:
    """The training steps since the last train line of ``metrics.jsonl``.

    Their metrics stay on the device until ``check`` fetches them all at once (the host
    never waits on each step); ``check`` raises ``TrainingDiverged`` at the first step
    whose loss or parameter norm is not finite. ``add`` lets at most ``IN_FLIGHT`` steps
    run ahead of the host, so an interrupt or a check waits for few. The metrics of a
    group trained at once carry a leading model axis; each run has its own values.
    """

    def __init__(self, group: list[Prepared], checkpoints: list[Checkpoints], elapsed: list[float]):
        self.group, self.checkpoints = group, checkpoints
        self.unchecked: list[tuple[int, dict]] = []  # (step, its metrics on the device)
        self.values: list[list[tuple[float, float]]] = [[] for _ in group]  # per run: (loss,
        #   grad_norm) of checked steps
        self.elapsed, self.clock = list(elapsed), time.perf_counter()

    @property
    def steps(self) -> int:
        return len(self.unchecked) + len(self.values[0])

    def add(self, step: int, metrics: dict) -> None:
        self.unchecked.append((step, metrics))
        if len(self.unchecked) > IN_FLIGHT:
            jax.block_until_ready(self.unchecked[-IN_FLIGHT - 1][1])

    def check(self) -> None:
        steps = [step for step, _ in self.unchecked]
        fetched = jax.device_get([metrics for _, metrics in self.unchecked])
        self.unchecked = []
        for step, metrics in zip(steps, fetched):
            per_run = {name: np.ravel(value) for name, value in metrics.items()}  # (runs,)
            for k, values in enumerate(self.values):
                loss, param_norm = float(per_run["loss"][k]), float(per_run["param_norm"][k])
                if not (math.isfinite(loss) and math.isfinite(param_norm)):
                    run_dir = self.checkpoints[k].directory.parent
                    which = f"{run_dir.name}: " if len(self.group) > 1 else ""
                    raise TrainingDiverged(
                        f"{which}non-finite values at step {step} (loss {loss}, parameter norm "
                        f"{param_norm}); training stopped. Last good: "
                        f"{_last_checkpoint(self.checkpoints[k])}")
                values.append((loss, float(per_run["grad_norm"][k])))

    def train_records(self, state: TrainState, done: int) -> list[dict]:
        """Each run's train line of the window, which ends at step ``done``; a new one begins."""
        self.check()
        seconds = time.perf_counter() - self.clock
        records = []
        for k, prepared in enumerate(self.group):
            self.elapsed[k] += seconds
            records.append(_train_record(prepared, state, k, done, self.values[k], seconds,
                                         self.elapsed[k], len(self.group)))
        self.values, self.clock = [[] for _ in self.group], time.perf_counter()
        return records


def _last_checkpoint(checkpoints: Checkpoints) -> str:
    last = checkpoints.latest_step()
    return "no checkpoint yet" if last is None else f"checkpoint {checkpoints.path(last)}"


def _train_record(prepared: Prepared, state: TrainState, run: int, done: int, window: list,
                  seconds: float, elapsed: float, at_once: int = 1) -> dict:
    """A train line of metrics.jsonl: means over the window of steps since the last one.
    ``run``: the run's place on the model axis of a group's ``state`` of ``at_once`` runs."""
    mean_loss, mean_norm = np.mean(window, axis=0)
    record = {"split": "train", "step": done, "loss": float(mean_loss),
              "grad_norm": float(mean_norm),
              "learning_rate": _learning_rate(prepared.schedule, state, run, done - 1),
              "steps_per_s": round(len(window) / seconds, 2),
              "elapsed_s": round(elapsed, 3), "time": round(time.time(), 3)}
    if at_once > 1:  # elapsed_s is the time of the runs trained together
        record["at_once"] = at_once
    if prepared.task.train_size is not None:
        record["epoch"] = round(epochs(prepared.task, done, prepared.config.batch_size), 4)
    return {k: v for k, v in record.items() if v is not None}


def _learning_rate(schedule, state: TrainState, run: int, step: int) -> float | None:
    """The learning rate used at ``step``: the default schedule's, or one injected with
    ``optax.inject_hyperparams`` into a custom optimizer (of run ``run`` of a group);
    else None (not logged)."""
    if schedule is not None:
        return float(schedule(step))
    for node in jax.tree.leaves(state.opt_state, is_leaf=lambda n: hasattr(n, "hyperparams")):
        if hasattr(node, "hyperparams") and "learning_rate" in node.hyperparams:
            return float(np.ravel(node.hyperparams["learning_rate"])[run])
    return None


def _evaluate(eval_step, params, batches) -> list[dict[str, float]]:
    """Each metric's mean over the evaluation set, weighted by the examples in each batch:
    one dict per run (of a group's params and batches, stacked on a model axis)."""
    totals: list[dict[str, float]] = []
    weights = None
    for batch in batches:
        interrupts.check()
        metrics = {name: np.ravel(value) for name, value in jax.device_get(eval_step(params, batch)).items()}
        batch_weights = metrics.pop("weight")
        weights = batch_weights if weights is None else weights + batch_weights
        if not totals:
            totals = [{} for _ in batch_weights]
        for name, values in metrics.items():
            for total, value, weight in zip(totals, values, batch_weights):
                total[name] = total.get(name, 0.0) + float(value) * float(weight)
    return [{name: value / float(weight) for name, value in total.items()}
            for total, weight in zip(totals, weights)]


# ---- finished runs --------------------------------------------------------------------

SAMPLE_CHUNK = 4096  # tokens per compiled draw of Trained.sample: 0.1 s on 2 CPU cores (charlm)


class Trained(NamedTuple):
    """A trained run, ready for inference: ``predict(xs, seq_lengths=None)``."""

    experiment: str  # the name config.json records
    config: Config
    task: Task
    model: Model
    params: Any
    step: int

    def predict(self, xs, seq_lengths=None) -> jax.Array:
        """The model's predictions for xs (B, T, I) or (B, T) token ids: (B, O) or (B, T, O).

        ``seq_lengths`` (B,) marks each sequence's padding, as in training. A model
        trained on sequences of different lengths (``task.variable_lengths``) requires
        it: without it every step counts, padding included, and the predictions are
        silently wrong. Compiled once per input shape.
        """
        if seq_lengths is None and self.task.variable_lengths:
            raise ValueError(
                f"`seq_lengths` is required: the model of {self.experiment!r} was trained on "
                f"padded sequences of different lengths, and without them the padding is "
                f"read as data; pass the (B,) valid lengths (T for a sequence without padding)")
        if seq_lengths is not None and np.ndim(xs) >= 2:  # the layers' check, before jit
            _checks.lengths(seq_lengths, np.shape(xs)[:1], np.shape(xs)[1])
        return _compiled(self.model.apply)(self.params, xs, seq_lengths)

    def sample(self, prompt, length: int, *, temperature: float = 1.0, seed: int = 0):
        """Continue ``prompt`` with ``length`` tokens drawn from the model (``lj.sample``).

        The model reads the prompt, then each drawn token is fed back. A text task
        (``task.decode``) takes and returns strings; another token task takes and
        returns int ids. The result is the continuation alone, without the prompt.
        The tokens are drawn ``SAMPLE_CHUNK`` at a time (one compiled program, the
        carry passed on), the same tokens as one draw of ``length``; between chunks
        ``interrupts.check()``, so a signal under ``lstm-jax`` stops a long sample
        within a chunk.

        Raises:
          ConfigError: the model cannot be stepped (not a token model with a per-step
            readout, or bidirectional), the prompt is empty or holds unknown
            characters, ``length`` is not a positive int, or ``temperature`` not a
            finite number >= 0.
          interrupts.Interrupted: a signal under ``interrupts.deferred()``.
        """
        if self.model.step is None or not self.task.tokens:
            raise ConfigError(f"the model of {self.experiment!r} cannot be sampled: that needs "
                              f"token inputs, a per-step readout and no bidirectional layer")
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise ConfigError(f"`length` must be a positive int, got {length!r}")
        try:
            temperature = check_temperature(temperature)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        try:
            ids = self.task.encode(prompt) if self.task.encode else np.asarray(prompt, np.int32)
        except ValueError as error:
            raise ConfigError(f"prompt: {error}") from None
        if ids.ndim != 1 or len(ids) == 0:
            raise ConfigError("the prompt must hold at least one token")
        chunk = min(length, SAMPLE_CHUNK)  # shorter: drawn at its own length, as one chunk
        read, draw = _sampler(self.model.step, chunk, temperature)
        carry, token = read(self.params, ids[None, :])
        key, chunks = jax.random.key(seed), []
        for start in range(0, length, chunk):  # the last chunk drawn whole, then cut
            interrupts.check()
            tokens, carry, token = draw(self.params, carry, token, key, start)
            chunks.append(np.asarray(tokens))  # waits for it: one chunk runs at a time
        tokens = np.concatenate(chunks)[:length]
        return self.task.decode(tokens) if self.task.decode else tokens


@functools.lru_cache(maxsize=16)
def _compiled(apply):
    return jax.jit(apply)


@functools.lru_cache(maxsize=16)
def _sampler(step, chunk: int, temperature: float):
    """``Trained.sample``'s jitted functions for a model's ``step``, built once per model,
    chunk and temperature: ``read(params, ids (1, T)) -> (carry, ids[:, -1])``, the
    carry after all but the prompt's last token, compiled once per prompt length; and
    ``draw(params, carry, token (1,), key, start) -> (tokens (chunk,), carry, token (1,))``,
    the tokens of steps ``start ... start + chunk - 1`` (``lj.sample``), the carry and
    the last token to go on from, compiled once."""
    from lstm_jax.sampling import sample

    @jax.jit
    def read(params, ids):
        carry, _ = step(params, None, ids[:, :1])
        carry = jax.tree.map(jax.numpy.zeros_like, carry)  # the initial carry is zeros
        if ids.shape[1] > 1:
            carry, _ = step(params, carry, ids[:, :-1])
        return carry, ids[:, -1]

    @jax.jit
    def draw(params, carry, token, key, start):
        def one(carry, token):
            carry, logits = step(params, carry, token[:, None])
            return carry, logits[:, 0]

        tokens, carry = sample(one, carry, token, key, length=chunk, temperature=temperature,
                               start=start)
        return tokens[0], carry, tokens[:, -1]

    return read, draw


def load(run_dir: str | Path, *, task: Task | None = None, model: Model | None = None) -> Trained:
    """The trained model of ``run_dir`` at its latest checkpoint that restores.

    The task and model are rebuilt from ``config.json`` (a shipped experiment, the
    user's experiment file, or the config alone); a run made in Python with ``task=``
    or ``model=`` needs the same ones again. Only the parameters are restored, so the
    optimizer the run used does not matter.
    """
    run_dir = Path(run_dir)
    record, config = rundir.read_record(run_dir)
    source = record["source"]
    if source == FROM_PYTHON and task is None and model is None:
        raise ConfigError(f"{run_dir} was trained with a task or model given in Python; pass "
                          f"the same task= (and model=) to load or evaluate it")
    experiment = None
    if source not in (FROM_CONFIG, FROM_PYTHON):
        if not source.startswith(PACKAGE + ".") and not Path(source).is_file():
            raise ConfigError(f"the experiment file {source} of {run_dir} no longer exists")
        experiment = load_experiment(source.removeprefix(PACKAGE + "."))
    prepared = prepare(config, experiment=experiment, task=task, model=model)
    like = jax.eval_shape(prepared.model.init, jax.random.key(0))  # shapes and dtypes only
    with Checkpoints(run_dir / "checkpoints", keep=config.keep_checkpoints) as checkpoints:
        params, step = checkpoints.restore_params(like)
    return Trained(record["experiment"], config, prepared.task, prepared.model, params, int(step))


def evaluate(run_dir: str | Path, *, task: Task | None = None,
             model: Model | None = None) -> dict[str, Any]:
    """Evaluate the latest checkpoint of ``run_dir`` that restores, on its evaluation set."""
    trained = load(run_dir, task=task, model=model)
    config = trained.config
    keys = run_keys(config.seed)
    batches = trained.task.eval_batches(keys.eval, config.batch_size, config.eval_batches)
    metrics = _evaluate(make_eval_step(trained.model, trained.task), trained.params, batches)[0]
    return {"experiment": trained.experiment, "step": trained.step, "metrics": metrics,
            "baselines": trained.task.baselines, "baseline_note": trained.task.baseline_note}

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
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from lstm_jax.tasks import Task, get_task
from lstm_jax.tasks.arrays import epochs
from lstm_jax.train import interrupts, rundir
from lstm_jax.train.arguments import named
from lstm_jax.train.checkpoint import CheckpointError, Checkpoints
from lstm_jax.train.config import Config, ConfigError, to_dict
from lstm_jax.train.experiments import PACKAGE, Experiment, load as load_experiment
from lstm_jax.train.model import Model, build_model
from lstm_jax.train.report import MetricsLog, Progress, plot_losses
from lstm_jax.train.sharding import DataParallel
from lstm_jax.train.steps import (TrainState, default_optimizer, init_state, learning_rate_schedule,
                                  make_eval_step, make_train_step)

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
    parallel: DataParallel


def prepare(
    config: Config,
    *,
    experiment: Experiment | str | None = None,
    task: Task | None = None,
    model: Model | None = None,
    optimizer: optax.GradientTransformation | None = None,
    devices=None,
) -> Prepared:
    """Build the run's task, model and optimizer and check that one step can run.

    ``experiment`` (an ``Experiment`` or a name/path for ``experiments.load``) supplies
    the task and model its module defines; ``task=``/``model=`` give them directly.
    Every mistake in the config (an unknown task, cell or option, a bad task option,
    a batch size the data or the devices cannot take, shapes that do not fit) raises
    ``ConfigError``. Nothing is compiled and nothing is written. A task of the
    experiment's own ``get_task`` or given as ``task=`` becomes the config's ``task``
    (its ``name``), so ``config.json`` records the task that ran.
    """
    if isinstance(experiment, str):
        experiment = load_experiment(experiment)
    name = experiment.name if experiment else (task.name if task else config.task)
    if task is not None or model is not None:
        source = FROM_PYTHON  # nothing on disk can rebuild them
    else:
        source = experiment.source if experiment else FROM_CONFIG
    parallel = DataParallel(devices)
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
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` and return the final evaluation.

    ``run_dir`` receives ``config.json`` (the config, where the task came from, the
    command, versions, devices), ``metrics.jsonl`` (a train line every ``log_every``
    steps with loss, gradient norm, learning rate, steps/s and elapsed time; eval
    lines; the last line is the final evaluation), ``loss.png``, TensorBoard event
    files and ``checkpoints/``. With ``resume`` the run continues from its latest
    checkpoint that restores and ends exactly as an uninterrupted run would; a larger
    ``config.steps`` extends it. Batch ``s`` is a pure function of (seed, s); dropout
    at step ``s`` uses ``fold_in(rng, s)``.

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
    prepared = prepare(config, experiment=experiment, task=task, model=model,
                       optimizer=optimizer, devices=devices)
    run_dir = rundir.make(Path(run_dir)) if resume else rundir.create(run_dir, prepared.name)
    return run(prepared, run_dir, resume=resume, progress=progress)


def run(prepared: Prepared, run_dir: Path, *, resume: bool = False, progress: bool = True,
        command: str | None = None) -> dict[str, Any]:
    """Train a prepared run in ``run_dir`` (see ``train``); ``command`` is the lstm-jax
    command line that asked for it, recorded in ``config.json`` (None from Python)."""
    config, task = prepared.config, prepared.task
    run_dir = Path(run_dir)
    with interrupts.deferred(), \
            Checkpoints(run_dir / "checkpoints", keep=config.keep_checkpoints) as checkpoints:
        state = init_state(prepared.model, prepared.optimizer, prepared.keys.init)
        if resume and checkpoints.latest_step() is not None:
            try:
                state = checkpoints.restore(state)
            except CheckpointError as error:
                raise ConfigError(_cannot_resume(error, checkpoints)) from None
        elif checkpoints.latest_step() is not None:
            raise ConfigError(f"{run_dir} already holds checkpoints; continue it with "
                              f"{named('resume')} or choose another {named('out')}")
        start = int(state.step)
        records = MetricsLog(run_dir / "metrics.jsonl").read()
        if start > config.steps:
            raise ConfigError(f"`steps` {config.steps} is below step {start} that {run_dir} has "
                              f"reached; a larger {named('steps')} extends a run")
        if start == config.steps and records and records[-1].get("final") \
                and records[-1]["step"] == start:
            return {"metrics": records[-1], "baselines": task.baselines, "state": state,
                    "run_dir": run_dir, "already_finished": True}
        _write_record(prepared, run_dir, resume, command)
        logs = _Logs(run_dir, start)
        earlier = [r["elapsed_s"] for r in records if r["step"] <= start and "elapsed_s" in r]
        evaluated = any(r["split"] == "eval" and r["step"] == start for r in records)
        try:
            state, final = _loop(prepared, state, start, checkpoints, logs, progress,
                                 elapsed=earlier[-1] if earlier else 0.0,
                                 evaluate_start=_eval_due(config, start) and not evaluated)
        except interrupts.Interrupted as stop:
            stop.checkpoint = checkpoints.latest_step()
            raise
        finally:
            logs.board.close()
    plot_losses(logs.jsonl.read(), run_dir / "loss.png",
                f"{prepared.name} ({config.cell}, H={config.hidden_size})", task.baselines)
    return {"metrics": final, "baselines": task.baselines, "state": state,
            "run_dir": run_dir, "already_finished": False}


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


IN_FLIGHT = 2  # training steps the host may dispatch ahead of the device


def _eval_due(config: Config, step: int) -> bool:
    """Whether the loop evaluates after ``step`` (the final evaluation aside)."""
    return 0 < step < config.steps and step % config.eval_every == 0


def _loop(prepared: Prepared, state: TrainState, start: int, checkpoints: Checkpoints,
          logs: _Logs, progress: bool, elapsed: float, evaluate_start: bool = False):
    """Step, log, evaluate and checkpoint from ``start`` to ``config.steps``; ``elapsed``
    is the training time logged before ``start`` (by the runs this one resumes);
    ``evaluate_start``: the evaluation of step ``start`` is due (an interrupt stopped it).

    The host never waits on the step it has just dispatched: batch ``s + 1`` is made
    while step ``s`` runs, and the metrics stay on the device until a train line, an
    evaluation or a checkpoint needs them (``_Window``). Interrupted (SIGINT/SIGTERM at a
    safe point), the loop logs the steps since the last train line and checkpoints the
    step reached, unless no step ran or that step is saved, before ``Interrupted`` goes on.
    """
    config, task, keys, parallel = prepared.config, prepared.task, prepared.keys, prepared.parallel
    eval_set = [parallel.shard_batch(b)
                for b in task.eval_batches(keys.eval, config.batch_size, config.eval_batches)]
    train_step = make_train_step(prepared.model, task, prepared.optimizer)
    eval_step = make_eval_step(prepared.model, task)
    state = parallel.replicate(state)

    def batch_at(step: int):
        return parallel.shard_batch(task.train_batch(keys.data, step, config.batch_size))

    def evaluation(step: int) -> dict:
        return {"split": "eval", "step": step, **_evaluate(eval_step, state.params, eval_set)}

    window = _Window(checkpoints, elapsed)
    bar = Progress(config.steps, start, prepared.name, enabled=progress, every=config.log_every)
    done = start
    with bar:
        try:
            if evaluate_start:
                logs.write(evaluation(start))
            batch = batch_at(start) if start < config.steps else None
            for step in range(start, config.steps):
                interrupts.check()
                state, metrics = train_step(state, batch)
                done = step + 1
                if done < config.steps:
                    batch = batch_at(done)  # made while the step runs
                window.add(done, metrics)
                if done % config.log_every == 0 or done == config.steps:
                    record = window.train_record(prepared, state, done)
                    logs.write(record)
                    bar.update(1, {"loss": record["loss"]})
                else:
                    bar.update(1)
                if _eval_due(config, done):
                    window.check()
                    logs.write(evaluation(done))
                if done % config.checkpoint_every == 0 or done == config.steps:
                    window.check()
                    checkpoints.save(done, state)
            if checkpoints.latest_step() != config.steps:  # resumed after the final checkpoint
                checkpoints.save(config.steps, state)
            final = {"split": "eval", "step": config.steps, "final": True,
                     **_evaluate(eval_step, state.params, eval_set)}
        except interrupts.Interrupted as stop:
            stop.step = done
            if window.steps:  # the steps since the last train line, and their last loss shown
                record = window.train_record(prepared, state, done)
                logs.write(record)
                bar.update(0, {"loss": record["loss"]})
            if done > start and checkpoints.latest_step() != done:
                with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C again: saved anyway
                    checkpoints.save(done, state)
            raise
    logs.write(final)
    return state, final


class _Window:
    """The training steps since the last train line of ``metrics.jsonl``.

    Their metrics stay on the device until ``check`` fetches them all at once (the host
    never waits on each step); ``check`` raises ``TrainingDiverged`` at the first step
    whose loss or parameter norm is not finite. ``add`` lets at most ``IN_FLIGHT`` steps
    run ahead of the host, so an interrupt or a check waits for few.
    """

    def __init__(self, checkpoints: Checkpoints, elapsed: float):
        self.checkpoints = checkpoints
        self.unchecked: list[tuple[int, dict]] = []  # (step, its metrics on the device)
        self.values: list[tuple[float, float]] = []  # (loss, grad_norm) of checked steps
        self.elapsed, self.clock = elapsed, time.perf_counter()

    @property
    def steps(self) -> int:
        return len(self.unchecked) + len(self.values)

    def add(self, step: int, metrics: dict) -> None:
        self.unchecked.append((step, metrics))
        if len(self.unchecked) > IN_FLIGHT:
            jax.block_until_ready(self.unchecked[-IN_FLIGHT - 1][1])

    def check(self) -> None:
        steps = [step for step, _ in self.unchecked]
        fetched = jax.device_get([metrics for _, metrics in self.unchecked])
        self.unchecked = []
        for step, metrics in zip(steps, fetched):
            loss, param_norm = float(metrics["loss"]), float(metrics["param_norm"])
            if not (math.isfinite(loss) and math.isfinite(param_norm)):
                raise TrainingDiverged(
                    f"non-finite values at step {step} (loss {loss}, parameter norm "
                    f"{param_norm}); training stopped. Last good: {_last_checkpoint(self.checkpoints)}")
            self.values.append((loss, float(metrics["grad_norm"])))

    def train_record(self, prepared: Prepared, state: TrainState, done: int) -> dict:
        """The train line of the window, which ends at step ``done``; a new one begins."""
        self.check()
        seconds = time.perf_counter() - self.clock
        self.elapsed += seconds
        record = _train_record(prepared, state, done, self.values, seconds, self.elapsed)
        self.values, self.clock = [], time.perf_counter()
        return record


def _last_checkpoint(checkpoints: Checkpoints) -> str:
    last = checkpoints.latest_step()
    return "no checkpoint yet" if last is None else f"checkpoint {checkpoints.path(last)}"


def _train_record(prepared: Prepared, state: TrainState, done: int, window: list,
                  seconds: float, elapsed: float) -> dict:
    """A train line of metrics.jsonl: means over the window of steps since the last one."""
    mean_loss, mean_norm = np.mean(window, axis=0)
    record = {"split": "train", "step": done, "loss": float(mean_loss),
              "grad_norm": float(mean_norm),
              "learning_rate": _learning_rate(prepared.schedule, state, done - 1),
              "steps_per_s": round(len(window) / seconds, 2),
              "elapsed_s": round(elapsed, 3), "time": round(time.time(), 3)}
    if prepared.task.train_size is not None:
        record["epoch"] = round(epochs(prepared.task, done, prepared.config.batch_size), 4)
    return {k: v for k, v in record.items() if v is not None}


def _learning_rate(schedule, state: TrainState, step: int) -> float | None:
    """The learning rate used at ``step``: the default schedule's, or one injected with
    ``optax.inject_hyperparams`` into a custom optimizer; else None (not logged)."""
    if schedule is not None:
        return float(schedule(step))
    for node in jax.tree.leaves(state.opt_state, is_leaf=lambda n: hasattr(n, "hyperparams")):
        if hasattr(node, "hyperparams") and "learning_rate" in node.hyperparams:
            return float(node.hyperparams["learning_rate"])
    return None


def _evaluate(eval_step, params, batches) -> dict[str, float]:
    """Each metric's mean over the evaluation set, weighted by the examples in each batch."""
    totals: dict[str, float] = {}
    weight = 0.0
    for batch in batches:
        interrupts.check()
        metrics = {name: float(value) for name, value in eval_step(params, batch).items()}
        batch_weight = metrics.pop("weight")
        weight += batch_weight
        for name, value in metrics.items():
            totals[name] = totals.get(name, 0.0) + value * batch_weight
    return {name: total / weight for name, total in totals.items()}


# ---- finished runs --------------------------------------------------------------------

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
        return _compiled(self.model.apply)(self.params, xs, seq_lengths)

    def sample(self, prompt, length: int, *, temperature: float = 1.0, seed: int = 0):
        """Continue ``prompt`` with ``length`` tokens drawn from the model (``lj.sample``).

        The model reads the prompt, then each drawn token is fed back. A text task
        (``task.decode``) takes and returns strings; another token task takes and
        returns int ids. The result is the continuation alone, without the prompt.

        Raises:
          ConfigError: the model cannot be stepped (not a token model with a per-step
            readout, or bidirectional), the prompt is empty or holds unknown
            characters, or ``length`` / ``temperature`` are out of range.
        """
        if self.model.step is None or not self.task.tokens:
            raise ConfigError(f"the model of {self.experiment!r} cannot be sampled: that needs "
                              f"token inputs, a per-step readout and no bidirectional layer")
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise ConfigError(f"`length` must be a positive int, got {length!r}")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ConfigError(f"`temperature` must be >= 0, got {temperature!r}")
        try:
            ids = self.task.encode(prompt) if self.task.encode else np.asarray(prompt, np.int32)
        except ValueError as error:
            raise ConfigError(f"prompt: {error}") from None
        if ids.ndim != 1 or len(ids) == 0:
            raise ConfigError("the prompt must hold at least one token")
        draw = _sampler(self.model.step, length, float(temperature))
        tokens = np.asarray(draw(self.params, ids[None, :], jax.random.key(seed)))[0]
        return self.task.decode(tokens) if self.task.decode else tokens


@functools.lru_cache(maxsize=16)
def _compiled(apply):
    return jax.jit(apply)


@functools.lru_cache(maxsize=16)
def _sampler(step, length: int, temperature: float):
    """``Trained.sample``'s jitted draw for a model's ``step``: built once per model,
    length and temperature, and compiled once per prompt length."""
    from lstm_jax.sampling import sample

    @jax.jit
    def draw(params, ids, key):  # ids: (1, T) the prompt
        carry, _ = step(params, None, ids[:, :1])
        carry = jax.tree.map(jax.numpy.zeros_like, carry)  # the initial carry is zeros
        if ids.shape[1] > 1:
            carry, _ = step(params, carry, ids[:, :-1])

        def one(carry, token):
            carry, logits = step(params, carry, token[:, None])
            return carry, logits[:, 0]

        return sample(one, carry, ids[:, -1], key, length=length, temperature=temperature)[0]

    return draw


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
    metrics = _evaluate(make_eval_step(trained.model, trained.task), trained.params, batches)
    return {"experiment": trained.experiment, "step": trained.step, "metrics": metrics,
            "baselines": trained.task.baselines, "baseline_note": trained.task.baseline_note}

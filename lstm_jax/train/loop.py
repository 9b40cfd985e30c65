"""The training loop: data, steps, evaluation, checkpoints, metrics and the plot."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from lstm_jax.tasks import Task, get_task
from lstm_jax.train.checkpoint import Checkpoints
from lstm_jax.train.config import Config, ConfigError, from_json, to_json
from lstm_jax.train.model import Model, build_model
from lstm_jax.train.report import MetricsLog, plot_losses
from lstm_jax.train.sharding import DataParallel
from lstm_jax.train.steps import (TrainState, default_optimizer, init_state, make_eval_step,
                                  make_train_step)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunKeys(NamedTuple):
    """Every random stream of a run, derived from its seed alone."""

    init: int  # seed of the params and of the dropout key
    data: jax.Array  # training batch at step s: fold_in(data, s)
    eval: jax.Array  # evaluation batch i: fold_in(eval, i)


def run_keys(seed: int) -> RunKeys:
    root = jax.random.key(seed)
    return RunKeys(seed, jax.random.fold_in(root, 1), jax.random.fold_in(root, 2))


class Setup(NamedTuple):
    task: Task
    model: Model
    optimizer: optax.GradientTransformation
    keys: RunKeys


def setup(config: Config, optimizer: optax.GradientTransformation | None = None) -> Setup:
    """The task, model, optimizer and keys of ``config``; ConfigError if it names bad parts."""
    try:
        task = get_task(config.task, **config.task_options)
        model = build_model(config, task)
    except (TypeError, ValueError) as error:  # e.g. an unknown task, cell or option
        raise ConfigError(str(error)) from error
    return Setup(task, model, optimizer or default_optimizer(config), run_keys(config.seed))


def _eval_batches(task: Task, keys: RunKeys, config: Config, make_batch) -> list:
    """The run's fixed evaluation set: batch i is ``task.batch(fold_in(keys.eval, i))``."""
    return [make_batch(jax.random.fold_in(keys.eval, i), config.batch_size)
            for i in range(config.eval_batches)]


def _evaluate(eval_step, params, batches) -> dict[str, float]:
    """Mean of each metric over the evaluation batches."""
    totals: dict[str, float] = {}
    for batch in batches:
        for name, value in eval_step(params, batch).items():
            totals[name] = totals.get(name, 0.0) + float(value)
    return {name: total / len(batches) for name, total in totals.items()}


def train(
    config: Config,
    run_dir: Path,
    *,
    experiment: str,
    resume: bool = False,
    optimizer: optax.GradientTransformation | None = None,
    devices=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` and return the final evaluation.

    ``run_dir`` receives ``config.json``, ``metrics.jsonl`` (train lines every
    ``log_every`` steps, eval lines; the last line is the final evaluation),
    ``loss.png`` and ``checkpoints/``. With ``resume`` the run continues from its latest
    checkpoint and ends exactly as an uninterrupted run would. Batch ``s`` is a pure
    function of (seed, s); dropout at step ``s`` uses ``fold_in(rng, s)``.

    Raises:
      TrainingDiverged: on a NaN or infinite loss (no checkpoint is written after it).
      CheckpointError: when ``resume`` finds a truncated or foreign checkpoint.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    parallel = DataParallel(devices)
    parallel.check_batch_size(config.batch_size)
    parts = setup(config, optimizer)
    log = MetricsLog(run_dir / "metrics.jsonl")
    with Checkpoints(run_dir / "checkpoints", keep=config.keep_checkpoints) as checkpoints:
        state, final = _run(config, parts, run_dir, experiment, parallel, checkpoints, log,
                            resume=resume, progress=progress)
    plot_losses(log.read(), run_dir / "loss.png", f"{experiment} ({config.cell}, H={config.hidden_size})")
    return {"metrics": final, "baselines": parts.task.baselines, "state": state}


def _run(config: Config, parts: Setup, run_dir: Path, experiment: str, parallel: DataParallel,
         checkpoints: Checkpoints, log: MetricsLog, *, resume: bool, progress: bool):
    """The loop of ``train``: init or restore, then step, log, evaluate and checkpoint."""
    from tqdm.auto import tqdm

    task, model, optimizer, keys = parts
    state = init_state(model, optimizer, keys.init)
    if resume and checkpoints.latest_step() is not None:
        state = checkpoints.restore(state)
    elif checkpoints.latest_step() is not None:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints; continue it with --resume or choose a new --out"
        )
    start = int(state.step)
    log.truncate_after(start)
    (run_dir / "config.json").write_text(to_json(config, experiment))

    make_batch = jax.jit(task.batch, static_argnums=1)
    eval_batches = [parallel.shard_batch(b) for b in _eval_batches(task, keys, config, make_batch)]
    train_step = make_train_step(model, task, optimizer)
    eval_step = make_eval_step(model, task)
    state = parallel.replicate(state)

    window: list[tuple[float, float]] = []
    clock = time.perf_counter()
    with tqdm(total=config.steps, initial=start, desc=experiment, unit="step",
              disable=not progress, dynamic_ncols=True) as bar:
        for step in range(start, config.steps):
            batch = parallel.shard_batch(make_batch(jax.random.fold_in(keys.data, step), config.batch_size))
            state, metrics = train_step(state, batch)
            done = step + 1
            loss, param_norm = float(metrics["loss"]), float(metrics["param_norm"])
            if not (math.isfinite(loss) and math.isfinite(param_norm)):
                last = checkpoints.latest_step()
                kept = "no checkpoint yet" if last is None else f"checkpoint {checkpoints.directory / str(last)}"
                raise TrainingDiverged(
                    f"non-finite values at step {done} (loss {loss}, parameter norm {param_norm}); "
                    f"training stopped. Last good: {kept}"
                )
            window.append((loss, float(metrics["grad_norm"])))
            bar.update(1)
            if done % config.log_every == 0 or done == config.steps:
                rate = len(window) / (time.perf_counter() - clock)
                mean_loss, mean_norm = np.mean(window, axis=0)
                log.write({"split": "train", "step": done, "loss": float(mean_loss),
                           "grad_norm": float(mean_norm), "steps_per_s": round(rate, 2)})
                bar.set_postfix(loss=f"{mean_loss:.4g}", steps_per_s=f"{rate:.1f}")
                window, clock = [], time.perf_counter()
            if done % config.eval_every == 0 and done < config.steps:
                log.write({"split": "eval", "step": done, **_evaluate(eval_step, state.params, eval_batches)})
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpoints.save(done, state)

    if checkpoints.latest_step() != config.steps:  # resumed after the final checkpoint
        checkpoints.save(config.steps, state)
    final = {"split": "eval", "step": config.steps, "final": True,
             **_evaluate(eval_step, state.params, eval_batches)}
    log.write(final)
    return state, final


def evaluate(run_dir: Path) -> dict[str, Any]:
    """Evaluate the latest checkpoint of ``run_dir`` on its evaluation set."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: is {run_dir} a run directory?")
    experiment, config = from_json(config_path.read_text())
    task, model, optimizer, keys = setup(config)
    with Checkpoints(run_dir / "checkpoints", keep=config.keep_checkpoints) as checkpoints:
        state: TrainState = checkpoints.restore(init_state(model, optimizer, keys.init))
    batches = _eval_batches(task, keys, config, jax.jit(task.batch, static_argnums=1))
    metrics = _evaluate(make_eval_step(model, task), state.params, batches)
    return {"experiment": experiment, "step": int(state.step), "metrics": metrics,
            "baselines": task.baselines}



"""Training: an optax loop with orbax checkpoints, JSONL metrics and data parallelism.

The names below load on first use, so ``lstm-jax`` can take over Ctrl-C before the
heavy imports (jax, orbax) begin.

>>> from lstm_jax.train import Config
>>> Config(hidden_size=32).cell
'lstm'
"""

from typing import TYPE_CHECKING

from lstm_jax import _lazy

# name -> (module, attribute), loaded on first use; type checkers and IDEs read the same
# names from the imports under TYPE_CHECKING below (tests/test_namespace.py checks both)
_EXPORTS = {
    "CheckpointError": ("lstm_jax.train.checkpoint", "CheckpointError"),
    "Checkpoints": ("lstm_jax.train.checkpoint", "Checkpoints"),
    "Config": ("lstm_jax.train.config", "Config"),
    "ConfigError": ("lstm_jax.train.config", "ConfigError"),
    "DataParallel": ("lstm_jax.train.sharding", "DataParallel"),
    "Experiment": ("lstm_jax.train.experiments", "Experiment"),
    "Hyperparams": ("lstm_jax.train.steps", "Hyperparams"),
    "Interrupted": ("lstm_jax.train.interrupts", "Interrupted"),
    "Model": ("lstm_jax.train.model", "Model"),
    "ModelParallel": ("lstm_jax.train.sharding", "ModelParallel"),
    "Prepared": ("lstm_jax.train.loop", "Prepared"),
    "TrainState": ("lstm_jax.train.steps", "TrainState"),
    "Trained": ("lstm_jax.train.loop", "Trained"),
    "TrainingDiverged": ("lstm_jax.train.loop", "TrainingDiverged"),
    "build_layer": ("lstm_jax.train.model", "build_layer"),
    "build_model": ("lstm_jax.train.model", "build_model"),
    "default_optimizer": ("lstm_jax.train.steps", "default_optimizer"),
    "evaluate": ("lstm_jax.train.loop", "evaluate"),
    "init_state": ("lstm_jax.train.steps", "init_state"),
    "learning_rate_schedule": ("lstm_jax.train.steps", "learning_rate_schedule"),
    "list_experiments": ("lstm_jax.train.experiments", "list_experiments"),
    "load": ("lstm_jax.train.loop", "load"),
    "load_experiment": ("lstm_jax.train.experiments", "load"),
    "make_eval_step": ("lstm_jax.train.steps", "make_eval_step"),
    "make_train_step": ("lstm_jax.train.steps", "make_train_step"),
    "over_models": ("lstm_jax.train.steps", "over_models"),
    "prepare": ("lstm_jax.train.loop", "prepare"),
    "prepare_group": ("lstm_jax.train.loop", "prepare_group"),
    "prepare_seeds": ("lstm_jax.train.loop", "prepare_seeds"),
    "run": ("lstm_jax.train.loop", "run"),
    "run_keys": ("lstm_jax.train.loop", "run_keys"),
    "run_many": ("lstm_jax.train.loop", "run_many"),
    "seed_dirs": ("lstm_jax.train.loop", "seed_dirs"),
    "train": ("lstm_jax.train.loop", "train"),
    # the modules whose own names are used as lt.config.cli(...), lt.rundir.RECORD, ...
    "config": ("lstm_jax.train.config", None),
    "experiments": ("lstm_jax.train.experiments", None),
    "rundir": ("lstm_jax.train.rundir", None),
}

if TYPE_CHECKING:
    from lstm_jax.train import config, experiments, rundir
    from lstm_jax.train.checkpoint import CheckpointError, Checkpoints
    from lstm_jax.train.config import Config, ConfigError
    from lstm_jax.train.experiments import Experiment, list_experiments
    from lstm_jax.train.experiments import load as load_experiment
    from lstm_jax.train.interrupts import Interrupted
    from lstm_jax.train.loop import (
        Prepared,
        Trained,
        TrainingDiverged,
        evaluate,
        load,
        prepare,
        prepare_group,
        prepare_seeds,
        run,
        run_keys,
        run_many,
        seed_dirs,
        train,
    )
    from lstm_jax.train.model import Model, build_layer, build_model
    from lstm_jax.train.sharding import DataParallel, ModelParallel
    from lstm_jax.train.steps import (
        Hyperparams,
        TrainState,
        default_optimizer,
        init_state,
        learning_rate_schedule,
        make_eval_step,
        make_train_step,
        over_models,
    )

__all__ = sorted(name for name, (_, attr) in _EXPORTS.items() if attr)


__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

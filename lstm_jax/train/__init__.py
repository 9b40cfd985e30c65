"""Training: an optax loop with orbax checkpoints, JSONL metrics and data parallelism.

The names below load on first use, so ``lstm-jax`` can take over Ctrl-C before the
heavy imports (jax, orbax) begin.

>>> from lstm_jax.train import Config
>>> Config(hidden_size=32).cell
'lstm'
"""

import importlib

# name -> (module, attribute): each public name is written once, here
_EXPORTS = {
    "CheckpointError": ("checkpoint", "CheckpointError"),
    "Checkpoints": ("checkpoint", "Checkpoints"),
    "Config": ("config", "Config"),
    "ConfigError": ("config", "ConfigError"),
    "DataParallel": ("sharding", "DataParallel"),
    "Experiment": ("experiments", "Experiment"),
    "Interrupted": ("interrupts", "Interrupted"),
    "Model": ("model", "Model"),
    "Prepared": ("loop", "Prepared"),
    "TrainState": ("steps", "TrainState"),
    "Trained": ("loop", "Trained"),
    "TrainingDiverged": ("loop", "TrainingDiverged"),
    "build_layer": ("model", "build_layer"),
    "build_model": ("model", "build_model"),
    "default_optimizer": ("steps", "default_optimizer"),
    "evaluate": ("loop", "evaluate"),
    "init_state": ("steps", "init_state"),
    "learning_rate_schedule": ("steps", "learning_rate_schedule"),
    "list_experiments": ("experiments", "list_experiments"),
    "load": ("loop", "load"),
    "load_experiment": ("experiments", "load"),
    "make_eval_step": ("steps", "make_eval_step"),
    "make_train_step": ("steps", "make_train_step"),
    "prepare": ("loop", "prepare"),
    "run": ("loop", "run"),
    "run_keys": ("loop", "run_keys"),
    "train": ("loop", "train"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lstm_jax.train' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"lstm_jax.train.{module}"), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])

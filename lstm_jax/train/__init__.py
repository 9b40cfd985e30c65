"""Training: an optax loop with orbax checkpoints, JSONL metrics and data parallelism.

>>> from lstm_jax.train import Config
>>> Config(hidden_size=32).cell
'lstm'
"""

from lstm_jax.train.checkpoint import CheckpointError, Checkpoints
from lstm_jax.train.config import (Config, ConfigError, apply_overrides, list_experiments,
                                   load_experiment)
from lstm_jax.train.loop import TrainingDiverged, evaluate, run_keys, setup, train
from lstm_jax.train.model import Model, ModelParams, build_model
from lstm_jax.train.sharding import DataParallel
from lstm_jax.train.steps import (TrainState, default_optimizer, init_state, make_eval_step,
                                  make_train_step)

__all__ = [
    "CheckpointError",
    "Checkpoints",
    "Config",
    "ConfigError",
    "DataParallel",
    "Model",
    "ModelParams",
    "TrainState",
    "TrainingDiverged",
    "apply_overrides",
    "build_model",
    "default_optimizer",
    "evaluate",
    "init_state",
    "list_experiments",
    "load_experiment",
    "make_eval_step",
    "make_train_step",
    "run_keys",
    "setup",
    "train",
]

"""Training: an optax loop with orbax checkpoints, JSONL metrics and data parallelism.

>>> from lstm_jax.train import Config
>>> Config(hidden_size=32).cell
'lstm'
"""

from lstm_jax.train.checkpoint import CheckpointError, Checkpoints
from lstm_jax.train.config import Config, ConfigError
from lstm_jax.train.experiments import Experiment, list_experiments
from lstm_jax.train.experiments import load as load_experiment
from lstm_jax.train.interrupts import Interrupted
from lstm_jax.train.loop import (Prepared, Trained, TrainingDiverged, evaluate, load, prepare,
                                 run, run_keys, train)
from lstm_jax.train.model import Model, build_layer, build_model
from lstm_jax.train.sharding import DataParallel
from lstm_jax.train.steps import (TrainState, default_optimizer, init_state, learning_rate_schedule,
                                  make_eval_step, make_train_step)

__all__ = [
    "CheckpointError",
    "Checkpoints",
    "Config",
    "ConfigError",
    "DataParallel",
    "Experiment",
    "Interrupted",
    "Model",
    "Prepared",
    "TrainState",
    "Trained",
    "TrainingDiverged",
    "build_layer",
    "build_model",
    "default_optimizer",
    "evaluate",
    "init_state",
    "learning_rate_schedule",
    "list_experiments",
    "load",
    "load_experiment",
    "make_eval_step",
    "make_train_step",
    "prepare",
    "run",
    "run_keys",
    "train",
]

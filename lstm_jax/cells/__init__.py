"""Cells: parameter init and one time step, as pure functions, per cell kind."""

from lstm_jax.cells.base import Cell, LayerNormParams
from lstm_jax.cells.gru import GRUConfig, GRUGates, GRUParams, gru
from lstm_jax.cells.lstm import (
    LSTMConfig,
    LSTMGates,
    LSTMLayerNorm,
    LSTMParams,
    LSTMState,
    Peephole,
    lstm,
)
from lstm_jax.cells.simple import SimpleConfig, SimpleGates, SimpleParams, simple

__all__ = [
    "Cell",
    "GRUConfig",
    "GRUGates",
    "GRUParams",
    "LSTMConfig",
    "LSTMGates",
    "LSTMLayerNorm",
    "LSTMParams",
    "LSTMState",
    "LayerNormParams",
    "Peephole",
    "SimpleConfig",
    "SimpleGates",
    "SimpleParams",
    "gru",
    "lstm",
    "simple",
]

"""Cells: parameter init and one time step, as pure functions, per cell kind."""

from typing import Callable, NamedTuple

from lstm_jax.cells import protocol
from lstm_jax.cells.base import Cell, Layer, LayerNormParams
from lstm_jax.cells.conv_lstm import ConvLSTMConfig, ConvLSTMParams, conv_lstm
from lstm_jax.cells.gru import GRUConfig, GRUGates, GRUParams, gru
from lstm_jax.cells.indrnn import IndRNNConfig, IndRNNGates, IndRNNParams, indrnn
from lstm_jax.cells.lstm import (
    LSTMConfig,
    LSTMGates,
    LSTMLayerNorm,
    LSTMParams,
    LSTMGateState,
    LSTMState,
    Peephole,
    lstm,
)
from lstm_jax.cells.min_rnn import (
    MinGRUGates,
    MinGRUParams,
    MinLSTMGates,
    MinLSTMParams,
    min_gru,
    min_lstm,
)
from lstm_jax.cells.mgu import MGUConfig, MGUGates, MGUParams, mgu
from lstm_jax.cells.protocol import Cudnn, ParallelScan, Projections, RecurrentCell
from lstm_jax.cells.simple import SimpleConfig, SimpleGates, SimpleParams, simple
from lstm_jax.cells.slstm import SLSTMConfig, SLSTMGates, SLSTMParams, SLSTMState, slstm


class CellKind(NamedTuple):
    """What the library knows about one kind of cell, found by ``cell.config.kind``."""

    factory: Callable[..., Cell]  # e.g. lj.lstm(hidden_size, **options)
    params: type  # the NamedTuple its init returns


# The one table of cell kinds: interop, the training configs and the benchmarks read it.
KINDS: dict[str, CellKind] = {
    "lstm": CellKind(lstm, LSTMParams),
    "gru": CellKind(gru, GRUParams),
    "simple": CellKind(simple, SimpleParams),
    "mgu": CellKind(mgu, MGUParams),
    "indrnn": CellKind(indrnn, IndRNNParams),
    "min_gru": CellKind(min_gru, MinGRUParams),
    "min_lstm": CellKind(min_lstm, MinLSTMParams),
    "slstm": CellKind(slstm, SLSTMParams),
    "conv_lstm": CellKind(conv_lstm, ConvLSTMParams),
}

__all__ = [
    "KINDS",
    "Cell",
    "Cudnn",
    "CellKind",
    "ConvLSTMConfig",
    "ConvLSTMParams",
    "GRUConfig",
    "GRUGates",
    "GRUParams",
    "IndRNNConfig",
    "IndRNNGates",
    "IndRNNParams",
    "LSTMConfig",
    "LSTMGates",
    "LSTMLayerNorm",
    "LSTMParams",
    "LSTMGateState",
    "LSTMState",
    "Layer",
    "MGUConfig",
    "MGUGates",
    "MGUParams",
    "MinGRUGates",
    "MinGRUParams",
    "MinLSTMGates",
    "MinLSTMParams",
    "LayerNormParams",
    "ParallelScan",
    "Peephole",
    "Projections",
    "RecurrentCell",
    "SimpleConfig",
    "SimpleGates",
    "SimpleParams",
    "SLSTMConfig",
    "SLSTMGates",
    "SLSTMParams",
    "SLSTMState",
    "conv_lstm",
    "gru",
    "indrnn",
    "lstm",
    "mgu",
    "min_gru",
    "min_lstm",
    "simple",
    "slstm",
    "protocol",
]

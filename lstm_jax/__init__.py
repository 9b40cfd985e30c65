"""lstm_jax: LSTM, GRU and Elman recurrent networks as pure JAX functions.

Shape letters used in every docstring:

- B: batch. Cells accept any leading batch shape (written ``*batch``), or none.
- T: time steps.
- I: input features (channels for ``conv_lstm``).
- S: spatial axes of a ``conv_lstm``'s inputs and carry (one to three).
- H: hidden units, the size of the cell state.
- P: output size of a cell: the projection size of an LSTM with ``proj_size``, else H.
- G: gate pre-activations: 4H for an LSTM (3H when coupled) or ConvLSTM, 3H for a GRU,
  2H for an MGU or minGRU, H for an Elman or IndRNN cell.

The layers, each depending only on those above it: ``cells`` (init and one step),
``initializers``, ``runner`` (``lax.scan`` over time), ``layers`` (bidirectional, stack),
``interop`` (PyTorch and flax weights), ``nn`` (flax linen and nnx modules), ``exporting``
(StableHLO and ONNX programs), ``tasks`` (data), ``train`` (the optax loop and checkpoints).
"""

from typing import TYPE_CHECKING

from lstm_jax import _lazy

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself). Everything loads on first
# use, so ``import lstm_jax`` is quick and ``lstm-jax`` takes over Ctrl-C before jax loads.
# Type checkers and IDEs do not run ``__getattr__``: they read the same names from the
# imports under TYPE_CHECKING below (tests/test_namespace.py checks that the two agree).
_EXPORTS = {
    "KINDS": ("lstm_jax.cells", "KINDS"),
    "Cell": ("lstm_jax.cells", "Cell"),
    "ConvLSTMParams": ("lstm_jax.cells", "ConvLSTMParams"),
    "Directions": ("lstm_jax.layers", "Directions"),
    "GRUGates": ("lstm_jax.cells", "GRUGates"),
    "GRUParams": ("lstm_jax.cells", "GRUParams"),
    "IndRNNGates": ("lstm_jax.cells", "IndRNNGates"),
    "IndRNNParams": ("lstm_jax.cells", "IndRNNParams"),
    "LSTMGates": ("lstm_jax.cells", "LSTMGates"),
    "LSTMParams": ("lstm_jax.cells", "LSTMParams"),
    "LSTMState": ("lstm_jax.cells", "LSTMState"),
    "LSTMGateState": ("lstm_jax.cells", "LSTMGateState"),
    "Layer": ("lstm_jax.cells", "Layer"),
    "MGUGates": ("lstm_jax.cells", "MGUGates"),
    "MGUParams": ("lstm_jax.cells", "MGUParams"),
    "MinGRUGates": ("lstm_jax.cells", "MinGRUGates"),
    "MinGRUParams": ("lstm_jax.cells", "MinGRUParams"),
    "MinLSTMGates": ("lstm_jax.cells", "MinLSTMGates"),
    "MinLSTMParams": ("lstm_jax.cells", "MinLSTMParams"),
    "RNNParams": ("lstm_jax.runner", "RNNParams"),
    "RecurrentCell": ("lstm_jax.cells", "RecurrentCell"),
    "SimpleGates": ("lstm_jax.cells", "SimpleGates"),
    "SimpleParams": ("lstm_jax.cells", "SimpleParams"),
    "SLSTMGates": ("lstm_jax.cells", "SLSTMGates"),
    "SLSTMParams": ("lstm_jax.cells", "SLSTMParams"),
    "SLSTMState": ("lstm_jax.cells", "SLSTMState"),
    "bidirectional": ("lstm_jax.layers", "bidirectional"),
    "conv_lstm": ("lstm_jax.cells", "conv_lstm"),
    "export": ("lstm_jax.exporting", "export"),
    "export_onnx": ("lstm_jax.exporting", "export_onnx"),
    "export_step": ("lstm_jax.exporting", "export_step"),
    "gru": ("lstm_jax.cells", "gru"),
    "indrnn": ("lstm_jax.cells", "indrnn"),
    "lstm": ("lstm_jax.cells", "lstm"),
    "mgu": ("lstm_jax.cells", "mgu"),
    "min_gru": ("lstm_jax.cells", "min_gru"),
    "min_lstm": ("lstm_jax.cells", "min_lstm"),
    "rnn": ("lstm_jax.runner", "rnn"),
    "sample": ("lstm_jax.sampling", "sample"),
    "simple": ("lstm_jax.cells", "simple"),
    "slstm": ("lstm_jax.cells", "slstm"),
    "stack": ("lstm_jax.layers", "stack"),
    "truncated_bptt": ("lstm_jax.truncated", "truncated_bptt"),
    "cells": ("lstm_jax.cells", None),
    "exporting": ("lstm_jax.exporting", None),
    "initializers": ("lstm_jax.initializers", None),
    "interop": ("lstm_jax.interop", None),
    "layers": ("lstm_jax.layers", None),
    "nn": ("lstm_jax.nn", None),
    "tasks": ("lstm_jax.tasks", None),
    "train": ("lstm_jax.train", None),
    "viz": ("lstm_jax.viz", None),
}

if TYPE_CHECKING:
    from lstm_jax import cells, exporting, initializers, interop, layers, nn, tasks, train, viz
    from lstm_jax.cells import (
        KINDS,
        Cell,
        ConvLSTMParams,
        GRUGates,
        GRUParams,
        IndRNNGates,
        IndRNNParams,
        Layer,
        LSTMGates,
        LSTMGateState,
        LSTMParams,
        LSTMState,
        MGUGates,
        MGUParams,
        MinGRUGates,
        MinGRUParams,
        MinLSTMGates,
        MinLSTMParams,
        RecurrentCell,
        SimpleGates,
        SimpleParams,
        SLSTMGates,
        SLSTMParams,
        SLSTMState,
        conv_lstm,
        gru,
        indrnn,
        lstm,
        mgu,
        min_gru,
        min_lstm,
        simple,
        slstm,
    )
    from lstm_jax.exporting import export, export_onnx, export_step
    from lstm_jax.layers import Directions, bidirectional, stack
    from lstm_jax.runner import RNNParams, rnn
    from lstm_jax.sampling import sample
    from lstm_jax.truncated import truncated_bptt

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

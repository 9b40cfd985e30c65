"""lstm_jax: LSTM, GRU and Elman recurrent networks as pure JAX functions.

Shape letters used in every docstring:

- B: batch. Cells accept any leading batch shape (written ``*batch``), or none.
- T: time steps.
- I: input features.
- H: hidden units, the size of the cell state.
- P: output size of a cell: the projection size of an LSTM with ``proj_size``, else H.
- G: gate pre-activations: 4H for an LSTM (3H when coupled), 3H for a GRU, H for an
  Elman cell.

The layers, each depending only on those above it: ``cells`` (init and one step),
``initializers``, ``rnn`` (``lax.scan`` over time), ``layers`` (bidirectional, stack),
``interop`` (PyTorch and flax weights), ``nn`` (flax linen and nnx modules), ``tasks``
(data), ``train`` (the optax loop and checkpoints).
"""

from lstm_jax import initializers
from lstm_jax.cells import (
    KINDS,
    Cell,
    GRUGates,
    GRUParams,
    LSTMGates,
    LSTMParams,
    LSTMState,
    SimpleGates,
    SimpleParams,
    Layer,
    gru,
    lstm,
    simple,
)
from lstm_jax.layers import Directions, bidirectional, stack
from lstm_jax.rnn import rnn
from lstm_jax import interop  # noqa: E402  (imports torch/flax lazily)

__version__ = "0.1.0"


def __getattr__(name: str):
    """``lj.nn`` (flax modules) and ``lj.train`` (the training loop) load on first use."""
    if name in ("nn", "train", "tasks"):
        import importlib

        return importlib.import_module(f"lstm_jax.{name}")
    raise AttributeError(f"module 'lstm_jax' has no attribute {name!r}")

__all__ = [
    "KINDS",
    "Cell",
    "Directions",
    "GRUGates",
    "GRUParams",
    "LSTMGates",
    "LSTMParams",
    "LSTMState",
    "Layer",
    "SimpleGates",
    "SimpleParams",
    "bidirectional",
    "gru",
    "initializers",
    "interop",
    "lstm",
    "rnn",
    "simple",
    "stack",
]

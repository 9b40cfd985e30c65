"""Weight import and export: PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and flax cells;
``flax_cell`` runs any ``flax.linen`` cell module as a cell.

torch and flax are imported only when these functions run, so the core never needs them.
"""

from lstm_jax.interop.flax_linen import (
    FlaxCell, carry_from_flax, carry_to_flax, flax_cell, from_flax, to_flax,
)
from lstm_jax.interop.pytorch import carry_from_torch, carry_to_torch, from_torch, to_torch

__all__ = [
    "FlaxCell",
    "carry_from_flax",
    "carry_from_torch",
    "carry_to_flax",
    "carry_to_torch",
    "flax_cell",
    "from_flax",
    "from_torch",
    "to_flax",
    "to_torch",
]

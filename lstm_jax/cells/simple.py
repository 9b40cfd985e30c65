"""The Elman RNN: one tanh or ReLU layer fed back on itself."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import base

Array = jax.Array


class SimpleParams(NamedTuple):
    w_ih: Array  # (I, H)
    w_hh: Array  # (H, H)
    b: Array | None  # (H,) PyTorch's b_ih + b_hh


class SimpleGates(NamedTuple):
    h: Array  # (*batch, H) new hidden state / output


@dataclasses.dataclass(frozen=True)
class SimpleConfig(base.CellConfig):
    """Options of an Elman cell; see ``simple`` for their meaning."""

    kind = "simple"

    @property
    def sums_projections(self) -> bool:
        return True


@base.cell_factory
def simple(hidden_size: int, **common) -> base.Cell:
    r"""An Elman RNN cell, as ``torch.nn.RNN``: :math:`h_t = φ(x_t W_{ih} + h_{t-1} W_{hh} + b)`.

    Args:
      hidden_size: H.
      activation: φ, ``"tanh"`` (default), ``"relu"`` or any callable.
      bias, init, kernel_init, recurrent_init, bias_init, param_dtype, dtype: as for
        ``lstm``.

    Returns:
      A ``Cell`` whose carry is h (*batch, H).

    The IRNN of Le et al. (2015) is a ReLU cell whose recurrent matrix starts as the
    identity and whose bias starts at zero:

    >>> import jax, lstm_jax as lj
    >>> irnn = lj.simple(4, activation="relu", init="flax",
    ...                  recurrent_init=lj.initializers.identity())
    >>> params = irnn.init(jax.random.key(0), input_size=2)
    >>> params.w_hh.diagonal()
    Array([1., 1., 1., 1.], dtype=float32)
    """
    config = SimpleConfig(
        **base.common_options(hidden_size, **common),
    )
    return _build(config)


def _build(config: SimpleConfig) -> base.Cell:
    H = config.hidden_size
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, 1)
    pdt, dtype, phi = config.param_dtype, config.dtype, config.activation

    def init(key, input_size):
        k = jax.random.split(key, 3)
        return SimpleParams(
            w_ih=kernel_init(k[0], (input_size, H), pdt),
            w_hh=recurrent_init(k[1], (H, H), pdt),
            b=bias_init(k[2], (H,), pdt) if config.bias else None,
        )

    def combine(params, h_prev, gx_t, gh):
        h = phi(gx_t + gh)
        y_t = h.astype(base.output_dtype(dtype, h_prev.dtype))
        return h.astype(h_prev.dtype), y_t, SimpleGates(h=h)

    return base.build_cell(config, init, combine)

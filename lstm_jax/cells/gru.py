"""The GRU cell in the PyTorch/cuDNN convention."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import base

Array = jax.Array


class GRUParams(NamedTuple):
    """GRU parameters, gates in PyTorch's order (r, z, n)."""

    w_ih: Array  # (I, 3H)
    w_hh: Array  # (H, 3H)
    b: Array | None  # (3H,) = (b_ir + b_hr, b_iz + b_hz, b_in)
    b_hn: Array | None  # (H,) the recurrent bias of n, inside the reset product


class GRUGates(NamedTuple):
    """One step's activations, each (*batch, H)."""

    r: Array  # reset gate: how much of h_{t-1} the candidate sees
    z: Array  # update gate: how much of h_{t-1} to keep
    n: Array  # candidate state (tanh)
    h: Array  # new hidden state / output


@dataclasses.dataclass(frozen=True)
class GRUConfig(base.CellConfig):
    """Options of a GRU cell; see ``gru`` for their meaning."""

    gate_activation: Callable = jax.nn.sigmoid
    kind = "gru"


@base.cell_factory
def gru(
    hidden_size: int,
    *,
    gate_activation: str | Callable = "sigmoid",
    **common,
) -> base.Cell:
    r"""A gated recurrent unit (Cho et al., 2014) as PyTorch and cuDNN compute it.

    .. math::

        r_t &= σ(x_t W_{ir} + b_{ir} + h_{t-1} W_{hr} + b_{hr}) \quad\text{reset gate} \\
        z_t &= σ(x_t W_{iz} + b_{iz} + h_{t-1} W_{hz} + b_{hz}) \quad\text{update gate} \\
        n_t &= \tanh(x_t W_{in} + b_{in} + r_t \odot (h_{t-1} W_{hn} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    ``b_hn`` sits inside the reset product, so it is kept apart from the other
    biases; ``b`` (3H,) holds the rest, summed. Flax's ``GRUCell`` computes the same.

    Args:
      hidden_size: H.
      bias: learn ``b`` and ``b_hn``; False matches ``torch.nn.GRU(bias=False)``.
      init, kernel_init, recurrent_init, bias_init, activation, gate_activation,
        param_dtype, dtype: as for ``lstm``.

    Returns:
      A ``Cell`` whose carry is h (*batch, H).

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.gru(6)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> h, y = cell.step(params, cell.initial_carry(params, (3,)), jnp.ones((3, 5)))
    >>> h.shape
    (3, 6)
    """
    config = GRUConfig(
        gate_activation=base.resolve_activation("gate_activation", gate_activation),
        **base.common_options(hidden_size, **common),
    )
    return _build(config)


def _build(config: GRUConfig) -> base.Cell:
    H = config.hidden_size
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, 3)
    pdt, dtype = config.param_dtype, config.dtype
    sigma, tanh = config.gate_activation, config.activation

    def init(key, input_size):
        k = jax.random.split(key, 4)
        return GRUParams(
            w_ih=kernel_init(k[0], (input_size, 3 * H), pdt),
            w_hh=recurrent_init(k[1], (H, 3 * H), pdt),
            b=bias_init(k[2], (3 * H,), pdt) if config.bias else None,
            b_hn=bias_init(k[3], (H,), pdt) if config.bias else None,
        )

    def combine(params, h_prev, gx_t, gh):
        xr, xz, xn = jnp.split(gx_t, 3, axis=-1)
        hr, hz, hn = jnp.split(gh, 3, axis=-1)
        r = sigma(xr + hr)
        z = sigma(xz + hz)
        n = tanh(xn + r * base.add_bias(hn, params.b_hn))
        h = (1.0 - z) * n + z * h_prev
        y_t = h.astype(base.output_dtype(dtype, h_prev.dtype))
        return h.astype(h_prev.dtype), y_t, GRUGates(r=r, z=z, n=n, h=h)

    return base.build_cell(config, init, combine)

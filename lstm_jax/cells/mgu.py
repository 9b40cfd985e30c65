"""The minimal gated unit: a GRU whose one forget gate also does the reset gate's work."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.cells import base

Array = jax.Array


class MGUParams(NamedTuple):
    """MGU parameters, gates in flax's order (f, n)."""

    w_ih: Array  # (I, 2H)
    w_hh: Array  # (H, 2H)
    b: Array | None  # (2H,) = (b_if, b_in)
    b_hn: Array | None  # (H,) the recurrent bias of n, inside the forget product (reset_gate)


class MGUGates(NamedTuple):
    """One step's activations, each (*batch, H)."""

    f: Array  # forget gate: how much of h_{t-1} to keep (and, with reset_gate, to show n)
    n: Array  # candidate state (tanh)
    h: Array  # new hidden state / output


@dataclasses.dataclass(frozen=True)
class MGUConfig(base.CellConfig):
    """Options of an MGU cell; see ``mgu`` for their meaning."""

    reset_gate: bool = True
    forget_bias: float = 1.0
    gate_activation: Callable = jax.nn.sigmoid
    kind = "mgu"

    @property
    def sums_projections(self) -> bool:
        return not self.reset_gate


@base.cell_factory
def mgu(
    hidden_size: int,
    *,
    reset_gate: bool = True,
    forget_bias: float = 1.0,
    gate_activation: str | Callable = "sigmoid",
    **common,
) -> base.Cell:
    r"""A minimal gated unit (Zhou et al., 2016) as flax's ``MGUCell`` computes it.

    .. math::

        f_t &= σ(x_t W_{if} + b_{if} + h_{t-1} W_{hf}) \quad\text{forget gate} \\
        n_t &= \tanh(x_t W_{in} + b_{in} + f_t \odot (h_{t-1} W_{hn} + b_{hn})) \\
        h_t &= (1 - f_t) \odot n_t + f_t \odot h_{t-1}

    With ``reset_gate=False`` the candidate sees h_{t-1} ungated,
    :math:`n_t = \tanh(x_t W_{in} + b_{in} + h_{t-1} W_{hn})`, and there is no ``b_hn``.

    Args:
      hidden_size: H.
      reset_gate: multiply the candidate's recurrent part by f_t (the paper's MGU and
        flax's default).
      forget_bias: added to the forget-gate bias b_if at init; 1.0 is flax's
        ``forget_bias_init`` (ones).
      bias: learn ``b`` and ``b_hn``.
      init, kernel_init, recurrent_init, bias_init, activation, gate_activation,
        param_dtype, dtype: as for ``lstm``.

    Returns:
      A ``Cell`` whose carry is h (*batch, H); params ``MGUParams``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.mgu(6)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> params.w_ih.shape, params.w_hh.shape, params.b_hn.shape
    ((5, 12), (6, 12), (6,))
    >>> h, y = cell.step(params, cell.initial_carry(params, (3,)), jnp.ones((3, 5)))
    >>> h.shape
    (3, 6)
    """
    config = MGUConfig(
        reset_gate=_checks.flag("reset_gate", reset_gate),
        forget_bias=_checks.finite_float("forget_bias", forget_bias),
        gate_activation=base.resolve_activation("gate_activation", gate_activation),
        **base.common_options(hidden_size, **common),
    )
    return _build(config)


def _build(config: MGUConfig) -> base.Cell:
    H = config.hidden_size
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, 2)
    pdt, dtype = config.param_dtype, config.dtype
    sigma, tanh = config.gate_activation, config.activation

    def init(key, input_size):
        k = jax.random.split(key, 4)
        b = b_hn = None
        if config.bias:
            b = bias_init(k[2], (2 * H,), pdt).at[:H].add(jnp.asarray(config.forget_bias, pdt))
            b_hn = bias_init(k[3], (H,), pdt) if config.reset_gate else None
        return MGUParams(
            w_ih=kernel_init(k[0], (input_size, 2 * H), pdt),
            w_hh=recurrent_init(k[1], (H, 2 * H), pdt),
            b=b,
            b_hn=b_hn,
        )

    def combine(params, h_prev, gx_t, gh):
        if config.reset_gate:
            xf, xn = jnp.split(gx_t, 2, axis=-1)
            hf, hn = jnp.split(gh, 2, axis=-1)
            f = sigma(xf + hf)
            n = tanh(xn + f * base.add_bias(hn, params.b_hn))
        else:  # the sum first: the fused backward pass then saves only gx_t + gh_t
            zf, zn = jnp.split(gx_t + gh, 2, axis=-1)
            f, n = sigma(zf), tanh(zn)
        h = (1.0 - f) * n + f * h_prev
        y_t = h.astype(base.output_dtype(dtype, h_prev.dtype))
        return h.astype(h_prev.dtype), y_t, MGUGates(f=f, n=n, h=h)

    return base.build_cell(config, init, combine)

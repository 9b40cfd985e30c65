"""The independently recurrent network: each unit feeds back only to itself."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import initializers as inits
from lstm_jax.cells import base

Array = jax.Array


class IndRNNParams(NamedTuple):
    w_ih: Array  # (I, H)
    w_hh: Array  # (H,) u, the element-wise recurrent weights (a vector, not a matrix)
    b: Array | None  # (H,)


class IndRNNGates(NamedTuple):
    h: Array  # (*batch, H) new hidden state / output


@dataclasses.dataclass(frozen=True)
class IndRNNConfig(base.CellConfig):
    """Options of an IndRNN cell; see ``indrnn`` for their meaning."""

    recurrent_min_abs: float | None = None
    recurrent_max_abs: float | None = None
    kind = "indrnn"

    @property
    def sums_projections(self) -> bool:
        return True


def _bound(name: str, value, *, zero_ok: bool) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a float or None, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"`{name}` must be {'>= 0' if zero_ok else '> 0'}, got {value}")
    return float(value)


@base.cell_factory
def indrnn(
    hidden_size: int,
    *,
    activation: str | Callable = "relu",
    recurrent_min_abs: float | None = None,
    recurrent_max_abs: float | None = None,
    **common,
) -> base.Cell:
    r"""An IndRNN cell (Li et al., 2018): :math:`h_t = φ(x_t W_{ih} + b + u \odot h_{t-1})`.

    Each unit sees only its own past, through one recurrent weight u (``w_hh``, shape
    (H,)); depth, not recurrence, mixes the units. With a ReLU the gradient through
    T steps scales as u^T, so bounding |u| bounds it: the paper keeps
    :math:`|u| \le 2^{1/T}` (``recurrent_max_abs=2 ** (1 / T)``) against explosion and,
    for long memory, |u| away from 0 (``recurrent_min_abs``). The bounds are applied in
    every step (the weights themselves are not changed), so gradients of a weight
    beyond a bound are 0.

    Args:
      hidden_size: H.
      activation: φ, ``"relu"`` (default, the paper's) or ``"tanh"`` or any callable.
      recurrent_min_abs: the step uses u with |u| raised to at least this (sign kept;
        0 counts as positive), or None.
      recurrent_max_abs: the step uses u clipped to [-max, max], or None.
      recurrent_init: initializer of u (H,); default uniform on [-b, b] with
        b = min(1, ``recurrent_max_abs``) whatever the preset (as the reference
        TensorFlow cell, batzner/indrnn).
      bias, init, kernel_init, bias_init, param_dtype, dtype: as for ``lstm``.

    Returns:
      A ``Cell`` whose carry is h (*batch, H); params ``IndRNNParams``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.indrnn(6, recurrent_max_abs=2 ** (1 / 100))
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> params.w_ih.shape, params.w_hh.shape
    ((5, 6), (6,))
    >>> carry, ys = lj.rnn(cell).apply(params, jnp.ones((3, 100, 5)))
    >>> ys.shape
    (3, 100, 6)
    """
    low = _bound("recurrent_min_abs", recurrent_min_abs, zero_ok=True)
    high = _bound("recurrent_max_abs", recurrent_max_abs, zero_ok=False)
    if low is not None and high is not None and low > high:
        raise ValueError(f"`recurrent_min_abs` ({low}) must not exceed "
                         f"`recurrent_max_abs` ({high})")
    config = IndRNNConfig(
        recurrent_min_abs=low,
        recurrent_max_abs=high,
        **base.common_options(hidden_size, activation=activation, **common),
    )
    return _build(config)


def _build(config: IndRNNConfig) -> base.Cell:
    H = config.hidden_size
    kernel_init, _, bias_init = base.initializers_of(config, 1)
    u_bound = min(1.0, config.recurrent_max_abs or 1.0)
    recurrent_init = config.recurrent_init or inits.uniform(u_bound)
    pdt, dtype, phi = config.param_dtype, config.dtype, config.activation
    low, high = config.recurrent_min_abs, config.recurrent_max_abs

    def init(key, input_size):
        k = jax.random.split(key, 3)
        return IndRNNParams(
            w_ih=kernel_init(k[0], (input_size, H), pdt),
            w_hh=recurrent_init(k[1], (H,), pdt),
            b=bias_init(k[2], (H,), pdt) if config.bias else None,
        )

    def bounded(u):
        """u as the step uses it: |u| within [recurrent_min_abs, recurrent_max_abs]."""
        if low is not None:
            u = jnp.where(u < 0, -1, 1).astype(u.dtype) * jnp.maximum(jnp.abs(u), low)
        if high is not None:
            u = jnp.clip(u, -high, high)
        return u

    def project_hidden(params, carry, h_mask=None):
        h = carry if h_mask is None else carry * h_mask
        u = bounded(params.w_hh)
        return h.astype(u.dtype) * base.broadcast_like(u, h)

    def combine(params, h_prev, gx_t, gh):
        h = phi(gx_t + gh)
        y_t = h.astype(base.output_dtype(dtype, h_prev.dtype))
        return h.astype(h_prev.dtype), y_t, IndRNNGates(h=h)

    return base.build_cell(config, init, combine,
                           project_hidden=project_hidden)

"""The sLSTM of xLSTM: exponential gating, a normaliser state and per-head recurrence."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax.cells import base

Array = jax.Array

FORGET_GATES = ("sigmoid", "exp")


class SLSTMParams(NamedTuple):
    """sLSTM parameters, gates in the paper's order (i, f, z, o), as ``lj.lstm``'s (i, f, g, o).

    With K heads of D = H / K units, ``w_hh[k, :, j*D:(j+1)*D]`` maps head k of
    h_{t-1} to gate j of the same head: the recurrence is block-diagonal.
    """

    w_ih: Array  # (I, 4H), gates in blocks of H
    w_hh: Array  # (K, D, 4D): per head, D units of h_{t-1} -> its 4 gates of D
    b: Array | None  # (4H,)


class SLSTMState(NamedTuple):
    """The sLSTM carry, each field (*batch, H); all zeros at first."""

    h: Array  # hidden state / output, o ⊙ c / n
    c: Array  # cell state, scaled by exp(-m)
    n: Array  # normaliser state, scaled by exp(-m); 0 only before the first step
    m: Array  # stabiliser state: the log of the scale of c and n


class SLSTMGates(NamedTuple):
    """One step's activations, each (*batch, H)."""

    f: Array  # stabilised forget gate f'_t = exp(log f_t + m_{t-1} - m_t), in (0, 1]
    i: Array  # stabilised input gate i'_t = exp(log i_t - m_t), in (0, 1]
    g: Array  # candidate z_t (tanh)
    o: Array  # output gate (sigmoid)
    c: Array  # new cell state
    n: Array  # new normaliser state
    m: Array  # new stabiliser state
    h: Array  # new hidden state / output


@dataclasses.dataclass(frozen=True)
class SLSTMConfig(base.CellConfig):
    """Options of an sLSTM cell; see ``slstm`` for their meaning."""

    num_heads: int = 1
    forget_gate: str = "sigmoid"
    forget_bias: float | str = "powerlaw"
    kind = "slstm"

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def sums_projections(self) -> bool:
        return True


@base.cell_factory
def slstm(
    hidden_size: int,
    *,
    num_heads: int = 1,
    forget_gate: str = "sigmoid",
    forget_bias: float | str = "powerlaw",
    **common,
) -> base.Cell:
    r"""An sLSTM cell (Beck et al., 2024, "xLSTM: Extended Long Short-Term Memory").

    One step, in the stabilised form of the paper and of NX-AI's ``xlstm`` code, with
    pre-activations ĩ, f̃, z̃, õ = x_t W_ih + h_{t-1} R + b (R block-diagonal per head):

    .. math::

        \log i_t &= ĩ_t \quad \log f_t = \log σ(f̃_t) \text{ (or } f̃_t
                    \text{ with exp)} \quad z_t = \tanh(z̃_t) \quad o_t = σ(õ_t) \\
        m_t &= \max(\log f_t + m_{t-1}, \log i_t) \quad\text{stabiliser} \\
        i'_t &= \exp(\log i_t - m_t) \qquad f'_t = \exp(\log f_t + m_{t-1} - m_t) \\
        c_t &= f'_t \odot c_{t-1} + i'_t \odot z_t \quad\text{cell state} \\
        n_t &= f'_t \odot n_{t-1} + i'_t          \quad\text{normaliser} \\
        h_t &= o_t \odot c_t / n_t

    c_t and n_t are the paper's unstabilised states times exp(-m_t), so h_t is the
    same as without the stabiliser, and i'_t, f'_t <= 1 keep every number finite. As
    NX-AI's kernels, a unit whose n_{t-1} is 0 (the zero initial carry) starts with
    m_t = log i_t (m_{t-1} taken as -inf); then n_t >= 1 at every later step.

    c, n and m are one memory in three fields, scaled together: ``lj.rnn``'s zoneout
    draws a mask per field, so give it rates for h alone, e.g.
    ``zoneout=lj.SLSTMState(h=0.1, c=0.0, n=0.0, m=0.0)``.

    Args:
      hidden_size: H, the size of h, c, n and m.
      num_heads: K; H must be divisible by it. h_{t-1} reaches the gates of its own
        head only (``w_hh`` (K, H/K, 4H/K)): the paper's memory mixing within heads.
        1 (default) is one dense recurrence; NX-AI's xLSTM blocks use 4.
      forget_gate: ``"sigmoid"`` (log f_t = log σ(f̃_t), the default of NX-AI's code)
        or ``"exp"`` (log f_t = f̃_t); the paper allows both.
      forget_bias: the forget-gate bias at init: ``"powerlaw"`` sets unit j of each
        head to 5 - 12 (j / (D - 1))^0.3, D = H/K, spreading the time scales as NX-AI's
        default (``powerlaw_blockdependent`` of a first block), or a float added to
        the ``bias_init`` values (as ``lj.lstm``'s ``forget_bias``).
      bias: learn the bias b (4H,).
      init: ``"flax"`` (lecun-normal input kernel, orthogonal recurrent blocks per head
        and gate, zero bias) or ``"pytorch"`` (uniform ±1/sqrt(H), NX-AI's
        ``"standard"``). NX-AI's default recurrent init is
        ``recurrent_init=lj.initializers.zeros()``.
      kernel_init, bias_init: as for ``lstm``.
      recurrent_init: called once per head with shape (H/K, 4H/K).
      activation: of the candidate z_t, tanh by default.
      param_dtype: dtype of the parameters and of the carry.
      dtype: compute dtype of the matmuls (e.g. ``jnp.bfloat16``) and of y_t; the gates
        and states stay in ``param_dtype``.

    Returns:
      A ``Cell`` whose carry is ``SLSTMState(h, c, n, m)``, each (*batch, H); params
      ``SLSTMParams``; gates ``SLSTMGates``. ``lj.rnn`` runs it with plain autodiff (its
      fused backward pass assumes a dense ``w_hh``).

    Raises:
      ValueError: ``hidden_size`` not divisible by ``num_heads``, or an unknown
        ``forget_gate`` or ``forget_bias``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.slstm(8, num_heads=2)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> params.w_ih.shape, params.w_hh.shape
    ((5, 32), (2, 4, 16))
    >>> carry, y = cell.step(params, cell.initial_carry(params, (3,)), jnp.ones((3, 5)))
    >>> y.shape, carry.n.shape
    ((3, 8), (3, 8))
    """
    common = base.common_options(hidden_size, **common)
    num_heads = _checks.positive_int("num_heads", num_heads)
    if common["hidden_size"] % num_heads:
        raise ValueError(f"`hidden_size` ({common['hidden_size']}) must be divisible by "
                         f"`num_heads` ({num_heads})")
    if isinstance(forget_bias, str):
        _checks.one_of("forget_bias", forget_bias, {"powerlaw"})
    elif isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)):
        raise TypeError(f"`forget_bias` must be a float or 'powerlaw', got {forget_bias!r}")
    config = SLSTMConfig(
        num_heads=num_heads,
        forget_gate=_checks.one_of("forget_gate", forget_gate, FORGET_GATES),
        forget_bias=(forget_bias if isinstance(forget_bias, str)
                     else _checks.finite_float("forget_bias", forget_bias)),
        **common,
    )
    return _build(config)


def _forget_bias(config: SLSTMConfig, b_f: Array) -> Array:
    """The forget-gate block of the bias (H,) at init, see ``slstm``'s ``forget_bias``."""
    if config.forget_bias != "powerlaw":
        return b_f + jnp.asarray(config.forget_bias, b_f.dtype)
    D = config.head_size
    per_head = 5.0 - 12.0 * (np.arange(D) / max(D - 1, 1)) ** 0.3  # a constant: NumPy
    return jnp.asarray(np.tile(per_head, config.num_heads), b_f.dtype)


def _per_head_matmul(h: Array, w_hh: Array, dtype) -> Array:
    """h (*batch, H) times block-diagonal w_hh (K, D, 4D) -> (*batch, 4H), gates in blocks
    of H (i, f, z, o), each block heads in order; the mixed-precision policy of
    ``base.matmul``."""
    K, D, G = w_hh.shape
    compute = w_hh.dtype if dtype is None else dtype
    h_heads = h.reshape(*h.shape[:-1], K, D).astype(compute)
    gh = jnp.einsum("...kd,kdg->...kg", h_heads, w_hh.astype(compute),
                    preferred_element_type=w_hh.dtype)
    gh = gh.reshape(*h.shape[:-1], K, 4, G // 4)  # (*batch, head, gate, unit)
    return jnp.swapaxes(gh, -3, -2).reshape(*h.shape[:-1], K * G)


def _build(config: SLSTMConfig) -> base.Cell:
    H, K, D = config.hidden_size, config.num_heads, config.head_size
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, 4)
    pdt, dtype, phi = config.param_dtype, config.dtype, config.activation
    exp_forget = config.forget_gate == "exp"

    def init(key, input_size):
        k = jax.random.split(key, 3)
        b = None
        if config.bias:
            b = bias_init(k[2], (4 * H,), pdt)
            b = b.at[H : 2 * H].set(_forget_bias(config, b[H : 2 * H]))
        heads = jax.random.split(k[1], K)
        return SLSTMParams(
            w_ih=kernel_init(k[0], (input_size, 4 * H), pdt),
            w_hh=jnp.stack([recurrent_init(kk, (D, 4 * D), pdt) for kk in heads]),
            b=b,
        )

    def initial_carry(params, batch_shape):
        zeros = jnp.zeros((*batch_shape, H), params.w_hh.dtype)
        return SLSTMState(zeros, zeros, zeros, zeros)

    def project_hidden(params, carry, h_mask=None):
        h = carry.h if h_mask is None else carry.h * h_mask
        return _per_head_matmul(h, params.w_hh, dtype)

    def combine(params, state, gx_t, gh):
        c_prev, n_prev, m_prev = state.c, state.n, state.m
        z_i, z_f, z_z, z_o = jnp.split((gx_t + gh).astype(c_prev.dtype), 4, axis=-1)
        log_i = z_i
        log_f = z_f if exp_forget else jax.nn.log_sigmoid(z_f)
        # a unit not yet written (n = 0) has no past: m_{t-1} = -inf, so f'_t = 0
        past = jnp.where(n_prev == 0, -jnp.inf, log_f + m_prev)
        m = jnp.maximum(past, log_i)
        i, f = jnp.exp(log_i - m), jnp.exp(past - m)
        g, o = phi(z_z), jax.nn.sigmoid(z_o)
        c = f * c_prev + i * g
        n = f * n_prev + i
        h = o * (c / n)
        new_state = SLSTMState(h=h, c=c, n=n, m=m)
        y_t = h.astype(base.output_dtype(dtype, state.h.dtype))
        return new_state, y_t, SLSTMGates(f=f, i=i, g=g, o=o, c=c, n=n, m=m, h=h)

    return base.build_cell(config, init, combine,
                           initial_carry=initial_carry, project_hidden=project_hidden)

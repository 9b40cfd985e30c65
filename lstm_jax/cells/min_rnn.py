r"""minGRU and minLSTM (Feng et al., 2024, "Were RNNs All We Needed?").

Their gates read x_t only, so a step is linear in h_{t-1}:
:math:`h_t = a_t \odot h_{t-1} + b_t` with a_t in (0, 1) and b_t > 0 functions of x_t.
Each cell gives (log a_t, log b_t) as ``Cell.log_coefficients``; its ``step`` is
:math:`h_t = e^{\log a_t} h_{t-1} + e^{\log b_t}`, and ``lj.rnn(cell, parallel=True)``
runs all T steps at once as an associative scan over (log a, log b), in log space as
the paper's appendix (the default on GPU/TPU; on CPU stepping measured faster).

The candidate goes through the paper's g (x + 1/2 for x >= 0, σ(x) below), which keeps
it positive, so log b_t exists.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax.cells import base

Array = jax.Array


class MinGRUParams(NamedTuple):
    w_ih: Array  # (I, 2H), gates (z, n)
    b: Array | None  # (2H,)


class MinGRUGates(NamedTuple):
    """One step's activations, each (*batch, H)."""

    z: Array  # update gate: how much of the candidate to take
    n: Array  # candidate g(x_t W_n + b_n), positive
    h: Array  # new hidden state / output


class MinLSTMParams(NamedTuple):
    w_ih: Array  # (I, 3H), gates (f, i, n)
    b: Array | None  # (3H,)


class MinLSTMGates(NamedTuple):
    """One step's activations, each (*batch, H)."""

    f: Array  # forget gate, normalised: f / (f + i)
    i: Array  # input gate, normalised: i / (f + i)
    n: Array  # candidate g(x_t W_n + b_n), positive
    h: Array  # new hidden state / output


@dataclasses.dataclass(frozen=True)
class MinGRUConfig(base.CellConfig):
    """Options of a minGRU cell; see ``min_gru``."""

    kind = "min_gru"
    num_gates = 2


@dataclasses.dataclass(frozen=True)
class MinLSTMConfig(MinGRUConfig):
    """Options of a minLSTM cell; see ``min_lstm``."""

    kind = "min_lstm"
    num_gates = 3


def log_g(x: Array) -> Array:
    """log g(x), g(x) = x + 1/2 for x >= 0 and σ(x) below: continuous and positive."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))


def _min_gru_coefficients(gx):
    """(log a, log b, gates) of h_t = (1 - z) ⊙ h_{t-1} + z ⊙ n from gx (..., 2H)."""
    kz, kn = jnp.split(gx, 2, axis=-1)
    log_z, log_n = -jax.nn.softplus(-kz), log_g(kn)
    return -jax.nn.softplus(kz), log_z + log_n, dict(z=jnp.exp(log_z), n=jnp.exp(log_n))


def _min_lstm_coefficients(gx):
    """(log a, log b, gates) of h_t = f' ⊙ h_{t-1} + i' ⊙ n from gx (..., 3H)."""
    kf, ki, kn = jnp.split(gx, 3, axis=-1)
    diff = jax.nn.softplus(-kf) - jax.nn.softplus(-ki)  # log i - log f
    log_f, log_i, log_n = -jax.nn.softplus(diff), -jax.nn.softplus(-diff), log_g(kn)
    return log_f, log_i + log_n, dict(f=jnp.exp(log_f), i=jnp.exp(log_i), n=jnp.exp(log_n))


def _options(name: str, hidden_size: int, common: dict) -> dict:
    """``common_options`` less the two that have nothing to act on here."""
    if common.get("recurrent_init") is not None:
        raise ValueError(f"{name} has no recurrent weights: `recurrent_init` does not apply")
    if common.get("activation", "tanh") not in ("tanh", jnp.tanh):
        raise ValueError(f"{name}'s candidate goes through the paper's g (positive, for the "
                         f"log-space scan): `activation` does not apply")
    return base.common_options(hidden_size, **common)


@base.cell_factory
def min_gru(hidden_size: int, **common) -> base.Cell:
    r"""A minGRU cell (Feng et al., 2024): a GRU whose gates read only x_t.

    .. math::

        z_t &= σ(x_t W_z + b_z) \quad\text{update gate} \\
        n_t &= g(x_t W_n + b_n) \quad\text{candidate, } g(x) = x + ½ \text{ if } x \ge 0
              \text{ else } σ(x) \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot n_t

    ``lj.rnn`` runs it in parallel over time (an associative scan in log space; see its
    ``parallel``); ``cell.step`` is the sequential form, for inference one step at a time.

    Args:
      hidden_size: H.
      bias, init, kernel_init, bias_init, param_dtype, dtype: as for ``lstm``.
        There is no recurrent weight and no choice of activation.

    Returns:
      A ``Cell`` whose carry is h (*batch, H); params ``MinGRUParams`` (``w_ih``
      (I, 2H), ``b`` (2H,)).

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.min_gru(6)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> xs = jax.random.normal(jax.random.key(1), (3, 4, 5))
    >>> h, ys = lj.rnn(cell, parallel=True).apply(params, xs)  # all 4 steps at once
    >>> h1, _ = cell.step(params, cell.initial_carry(params, (3,)), xs[:, 0])
    >>> bool(jnp.allclose(ys[:, 0], h1, atol=1e-6))
    True
    """
    config = MinGRUConfig(**_options("min_gru", hidden_size, common))
    return _build(config, MinGRUParams, _min_gru_coefficients, MinGRUGates)


@base.cell_factory
def min_lstm(hidden_size: int, **common) -> base.Cell:
    r"""A minLSTM cell (Feng et al., 2024): an LSTM whose gates read only x_t and whose
    forget and input gates are normalised to sum to 1.

    .. math::

        f_t &= σ(x_t W_f + b_f), \quad i_t = σ(x_t W_i + b_i) \\
        n_t &= g(x_t W_n + b_n) \quad\text{as in } \texttt{min\_gru} \\
        h_t &= \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot n_t

    Args:
      hidden_size: H.
      bias, init, kernel_init, bias_init, param_dtype, dtype: as for ``lstm``.

    Returns:
      A ``Cell`` whose carry is h (*batch, H); params ``MinLSTMParams`` (``w_ih``
      (I, 3H), ``b`` (3H,)); gates report the normalised f and i.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> layer = lj.rnn(lj.min_lstm(6))
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> h, ys = layer.apply(params, jnp.ones((3, 4, 5)), seq_lengths=jnp.array([4, 2, 0]))
    >>> ys.shape, bool(jnp.all(ys[1, 2:] == 0))
    ((3, 4, 6), True)
    """
    config = MinLSTMConfig(**_options("min_lstm", hidden_size, common))
    return _build(config, MinLSTMParams, _min_lstm_coefficients, MinLSTMGates)


def _build(config, params_type, coefficients, gates_type) -> base.Cell:
    H, G = config.hidden_size, config.num_gates * config.hidden_size
    kernel_init, _, bias_init = base.initializers_of(config, config.num_gates)
    pdt, dtype = config.param_dtype, config.dtype

    def init(key, input_size):
        k = jax.random.split(key, 2)
        return params_type(
            w_ih=kernel_init(k[0], (input_size, G), pdt),
            b=bias_init(k[1], (G,), pdt) if config.bias else None,
        )

    def project_hidden(params, carry, h_mask=None):
        return jnp.zeros((*carry.shape[:-1], G), carry.dtype)  # h_{t-1} enters no gate

    def log_coefficients(params, gx):
        log_a, log_b, _ = coefficients(gx)
        return log_a, log_b

    def combine(params, h_prev, gx_t, gh):
        log_a, log_b, gates = coefficients(gx_t)
        h = jnp.exp(log_a) * h_prev + jnp.exp(log_b)
        y_t = h.astype(base.output_dtype(dtype, h_prev.dtype))
        return h.astype(h_prev.dtype), y_t, gates_type(**gates, h=h)

    return base.build_cell(config, init, combine, project_hidden=project_hidden,
                           log_coefficients=log_coefficients)

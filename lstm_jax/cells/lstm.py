"""The LSTM cell and its well-known variants, with the gate math in one function."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.cells import base

Array = jax.Array


class LSTMState(NamedTuple):
    """The LSTM carry."""

    h: Array  # (*batch, P) hidden state: short-term memory, also the output
    c: Array  # (*batch, H) cell state: long-term memory


class Peephole(NamedTuple):
    """Diagonal peephole weights (Gers & Schmidhuber, 2000)."""

    i: Array  # (H,) c_{t-1} into the input gate
    f: Array  # (H,) c_{t-1} into the forget gate
    o: Array  # (H,) c_t into the output gate


class LSTMLayerNorm(NamedTuple):
    """Layer-norm parameters of a layer-normalised LSTM (Ba et al., 2016)."""

    inputs: base.LayerNormParams  # scale (G,): normalises x_t @ w_ih
    recurrent: base.LayerNormParams  # scale (G,): normalises h_{t-1} @ w_hh
    cell: base.LayerNormParams  # scale, bias (H,): normalises c_t before tanh


class LSTMParams(NamedTuple):
    """LSTM parameters; G = 4H in PyTorch's gate order (i, f, g, o), or 3H (f, g, o)
    when ``coupled``. Optional parts are None when their option is off."""

    w_ih: Array  # (I, G)
    w_hh: Array  # (P, G)
    b: Array | None  # (G,) PyTorch's b_ih + b_hh
    w_hr: Array | None  # (H, P) output projection (LSTMP)
    peephole: Peephole | None
    layer_norm: LSTMLayerNorm | None


class LSTMGates(NamedTuple):
    """One step's activations, each (*batch, H) except h (*batch, P)."""

    f: Array  # forget gate: how much of c_{t-1} to keep
    i: Array  # input gate: how much of the candidate to write
    g: Array  # candidate values (tanh)
    o: Array  # output gate: how much of tanh(c_t) to show
    c: Array  # new cell state
    h: Array  # new hidden state / output


@dataclasses.dataclass(frozen=True)
class LSTMConfig(base.CellConfig):
    """Options of an LSTM cell; see ``lstm`` for their meaning."""

    proj_size: int | None = None
    peephole: bool = False
    layer_norm: bool = False
    coupled: bool = False
    forget_bias: float = 1.0
    gate_activation: Callable = jax.nn.sigmoid
    kind = "lstm"

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def num_gates(self) -> int:
        return 3 if self.coupled else 4

    @property
    def sums_projections(self) -> bool:
        return not self.layer_norm  # layer norm normalises gh_t on its own


@base.cell_factory
def lstm(
    hidden_size: int,
    *,
    proj_size: int | None = None,
    peephole: bool = False,
    layer_norm: bool = False,
    coupled: bool = False,
    forget_bias: float = 1.0,
    gate_activation: str | Callable = "sigmoid",
    **common,
) -> base.Cell:
    r"""A long short-term memory cell (Hochreiter & Schmidhuber, 1997).

    One step, with σ the ``gate_activation`` and tanh the ``activation``:

    .. math::

        f_t &= σ(x_t W_{if} + h_{t-1} W_{hf} + b_f)   \quad\text{forget gate} \\
        i_t &= σ(x_t W_{ii} + h_{t-1} W_{hi} + b_i)   \quad\text{input gate} \\
        g_t &= \tanh(x_t W_{ig} + h_{t-1} W_{hg} + b_g) \quad\text{candidate} \\
        o_t &= σ(x_t W_{io} + h_{t-1} W_{ho} + b_o)   \quad\text{output gate} \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t      \quad\text{long-term memory} \\
        h_t &= o_t \odot \tanh(c_t)                    \quad\text{short-term memory}

    Weights are stored PyTorch's way round for ``x @ w``: ``w_ih`` (I, 4H) and
    ``w_hh`` (P, 4H) hold the gates in the order (i, f, g, o).

    Args:
      hidden_size: H, the size of the cell state c.
      proj_size: P; when set, h_t = (o_t ⊙ tanh(c_t)) @ w_hr with w_hr (H, P), exactly
        as ``torch.nn.LSTM(proj_size=P)`` (Sak et al., 2014).
      peephole: add diagonal peepholes: c_{t-1} into f and i, c_t into o.
      layer_norm: normalise x_t W_ih, h_{t-1} W_hh and c_t (Ba et al., 2016).
      coupled: CIFG: no input gate, i_t = 1 - f_t (Greff et al., 2017); G = 3H (f, g, o).
      bias: learn the bias b (G,); False matches ``torch.nn.LSTM(bias=False)``.
      forget_bias: added to the forget-gate bias at init (Jozefowicz et al., 2015
        recommend 1.0); it is an initial value, not a constant in the math, so
        imported weights run unchanged.
      init: initializer preset, ``"flax"`` (lecun-normal input kernel, orthogonal
        recurrent blocks, zero bias) or ``"pytorch"`` (uniform ±1/sqrt(H)).
      kernel_init, recurrent_init, bias_init: override the preset's initializers
        (``init(key, shape, dtype)``, see ``lstm_jax.initializers``).
      activation: tanh by default; the candidate and cell-output nonlinearity.
      gate_activation: sigmoid by default; the nonlinearity of f, i and o.
      param_dtype: dtype of the parameters and of the carry.
      dtype: compute dtype of the matmuls (e.g. ``jnp.bfloat16``) and of y_t; gates and
        the cell state stay in ``param_dtype``. None computes in ``param_dtype``.

    Returns:
      A ``Cell``. Its carry is ``LSTMState(h (*batch, P), c (*batch, H))``.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.lstm(6)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> carry = cell.initial_carry(params, batch_shape=(3,))
    >>> carry, y = cell.step(params, carry, jnp.ones((3, 5)))
    >>> y.shape, carry.c.shape
    ((3, 6), (3, 6))
    """
    config = LSTMConfig(
        proj_size=None if proj_size is None else _checks.positive_int("proj_size", proj_size),
        peephole=bool(peephole),
        layer_norm=bool(layer_norm),
        coupled=bool(coupled),
        forget_bias=float(forget_bias),
        gate_activation=base.resolve_activation("gate_activation", gate_activation),
        **base.common_options(hidden_size, **common),
    )
    return _build(config)


def _build(config: LSTMConfig) -> base.Cell:
    H, P, G = config.hidden_size, config.output_size, config.num_gates * config.hidden_size
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, config.num_gates)
    pdt, dtype = config.param_dtype, config.dtype
    sigma, tanh = config.gate_activation, config.activation
    forget = 0 if config.coupled else 1  # index of the forget block in the gates

    def init(key, input_size):
        k = jax.random.split(key, 7)
        b = None
        if config.bias:
            b = bias_init(k[2], (G,), pdt)
            b = b.at[forget * H : (forget + 1) * H].add(jnp.asarray(config.forget_bias, pdt))
        peephole = None
        if config.peephole:
            peephole = Peephole(*(bias_init(kk, (H,), pdt) for kk in jax.random.split(k[4], 3)))
        norm = None
        if config.layer_norm:
            norm = LSTMLayerNorm(
                inputs=base.LayerNormParams(jnp.ones((G,), pdt), None),
                recurrent=base.LayerNormParams(jnp.ones((G,), pdt), None),
                cell=base.LayerNormParams(jnp.ones((H,), pdt), jnp.zeros((H,), pdt)),
            )
        return LSTMParams(
            w_ih=kernel_init(k[0], (input_size, G), pdt),
            w_hh=recurrent_init(k[1], (P, G), pdt),
            b=b,
            w_hr=kernel_init(k[3], (H, P), pdt) if config.proj_size else None,
            peephole=peephole,
            layer_norm=norm,
        )

    def initial_carry(params, batch_shape):
        dt = params.w_hh.dtype
        return LSTMState(h=jnp.zeros((*batch_shape, P), dt), c=jnp.zeros((*batch_shape, H), dt))

    def project_inputs(params, xs):
        gx = base.matmul(xs, params.w_ih, dtype)
        if params.layer_norm is not None:
            gx = base.layer_norm(gx, params.layer_norm.inputs)
        return base.add_bias(gx, params.b)

    def combine(params, state, gx_t, gh):
        if params.layer_norm is not None:
            gh = base.layer_norm(gh, params.layer_norm.recurrent)
        z = gx_t + gh
        if config.coupled:
            zf, zg, zo = jnp.split(z, 3, axis=-1)
        else:
            zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
        c_prev = state.c
        peep = params.peephole
        if peep is not None:
            zf = zf + base.broadcast_like(peep.f, c_prev) * c_prev
        f = sigma(zf)
        if config.coupled:
            i = 1.0 - f
        else:
            if peep is not None:
                zi = zi + base.broadcast_like(peep.i, c_prev) * c_prev
            i = sigma(zi)
        g = tanh(zg)
        c = f * c_prev + i * g
        if peep is not None:
            zo = zo + base.broadcast_like(peep.o, c) * c
        o = sigma(zo)
        c_shown = c if params.layer_norm is None else base.layer_norm(c, params.layer_norm.cell)
        h = o * tanh(c_shown)
        if params.w_hr is not None:
            h = base.matmul(h, params.w_hr, dtype)
        new_state = LSTMState(h=h.astype(state.h.dtype), c=c.astype(state.c.dtype))
        y_t = h.astype(base.output_dtype(dtype, state.h.dtype))
        return new_state, y_t, LSTMGates(f=f, i=i, g=g, o=o, c=c, h=h)

    return base.build_cell(config, LSTMParams, init, initial_carry, project_inputs, combine)

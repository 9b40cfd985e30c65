"""The convolutional LSTM: the LSTM's gate math, with convolutions for its matmuls."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax.cells import base
from lstm_jax.cells.lstm import LSTMParams, LSTMState, lstm

Array = jax.Array

# lax's layout letters for x (N, *S, C), kernel (*K, I, O) and output, per spatial rank
_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}

# What the LSTM's combine reads besides the carry and projections: nothing here (no
# projection, peephole, layer norm or gate recurrence), and never w_ih, w_hh or b.
_GATES_ONLY = LSTMParams(w_ih=None, w_hh=None, b=None, w_hr=None, peephole=None,
                         layer_norm=None)


class ConvLSTMParams(NamedTuple):
    """ConvLSTM parameters: kernels in flax's layout (*K, in, out), K the kernel size,
    gates in PyTorch's order (i, f, g, o), G = 4H."""

    w_ih: Array  # (*K, I, G) the input convolution
    w_hh: Array  # (*K, H, G) the recurrent convolution
    b: Array | None  # (G,)


@dataclasses.dataclass(frozen=True)
class ConvLSTMConfig(base.CellConfig):
    """Options of a ConvLSTM cell; see ``conv_lstm`` for their meaning."""

    kernel_size: tuple[int, ...] = (3, 3)
    forget_bias: float = 1.0
    gate_activation: Callable = jax.nn.sigmoid
    kind = "conv_lstm"

    @property
    def spatial_dims(self) -> int:
        """N, the number of spatial axes S of x_t and of the carry."""
        return len(self.kernel_size)

    @property
    def feature_axes(self) -> int:
        return self.spatial_dims + 1  # (*S, I)

    def input_size(self, params) -> int:
        return params.w_ih.shape[-2]  # (*K, I, G)


def _kernel_size(kernel_size: Any, spatial_dims: int | None) -> tuple[int, ...]:
    """``kernel_size`` as a tuple of N positive ints, N in 1..3 (2 for an int alone)."""
    is_int = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)  # noqa: E731
    if spatial_dims is not None and not (is_int(spatial_dims) and spatial_dims in _LAYOUTS):
        raise ValueError(f"`spatial_dims` must be 1, 2 or 3, got {spatial_dims!r}")
    if is_int(kernel_size):
        kernel_size = (kernel_size,) * (spatial_dims or 2)
    if not isinstance(kernel_size, (tuple, list)) or not all(
            is_int(k) and k > 0 for k in kernel_size):
        raise TypeError(f"`kernel_size` must be a positive int or a tuple of 1 to 3 of them, "
                        f"got {kernel_size!r}")
    if len(kernel_size) not in _LAYOUTS:
        raise ValueError(f"`kernel_size` must have 1, 2 or 3 entries (one per spatial axis), "
                         f"got {tuple(kernel_size)}")
    if spatial_dims is not None and len(kernel_size) != spatial_dims:
        raise ValueError(f"`kernel_size` {tuple(kernel_size)} has {len(kernel_size)} entries "
                         f"but `spatial_dims={spatial_dims}`")
    return tuple(int(k) for k in kernel_size)


@base.cell_factory
def conv_lstm(
    hidden_size: int,
    kernel_size: int | tuple[int, ...] = 3,
    *,
    spatial_dims: int | None = None,
    forget_bias: float = 1.0,
    gate_activation: str | Callable = "sigmoid",
    **common,
) -> base.Cell:
    r"""A convolutional LSTM cell (Shi et al., 2015) over 1-, 2- or 3-D inputs.

    The LSTM of ``lj.lstm`` with each matmul replaced by a convolution ``*`` ('SAME'
    padding, stride 1, as flax's ``ConvLSTMCell``), so every position of the
    spatial axes S has its own h and c:

    .. math::

        f_t &= σ(W_{if} * x_t + W_{hf} * h_{t-1} + b_f) \quad\text{forget gate} \\
        i_t &= σ(W_{ii} * x_t + W_{hi} * h_{t-1} + b_i) \\
        g_t &= \tanh(W_{ig} * x_t + W_{hg} * h_{t-1} + b_g) \\
        o_t &= σ(W_{io} * x_t + W_{ho} * h_{t-1} + b_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)

    The gate math is the LSTM's own ``combine``. Shi et al.'s peepholes are left out,
    as in flax. With 'SAME' padding an even kernel size k pads (k - 1) // 2 before and
    k // 2 after (``lax.conv_general_dilated``'s and flax's convention).

    Shapes: x_t (*batch, *S, I) with N spatial axes S; the carry is
    ``LSTMState(h, c)``, each (*batch, *S, H). ``initial_carry(params, batch_shape)``
    takes every axis but the features, ``batch_shape = (*batch, *S)``, as flax's
    cells treat all leading axes as batch axes; ``()`` gives an (H,) carry, which
    ``lj.rnn(..., learn_initial_carry=True)`` learns per channel and broadcasts over
    batch and space. ``lj.rnn`` runs xs (B, T, *S, I) (or (T, B, *S, I) time-major)
    to ys (B, T, *S, H), one ``seq_lengths`` entry per sequence.

    Args:
      hidden_size: H, the channels of h and c.
      kernel_size: the kernel size K: a tuple with one entry per spatial axis (its
        length sets N, 1 to 3), or an int k for (k,) * N.
      spatial_dims: N; None takes the length of a tuple ``kernel_size``, and 2 (images)
        for an int. The default, ``conv_lstm(H)``, is 3 x 3 over two spatial axes.
      forget_bias: added to the forget-gate bias at init; flax's ``ConvLSTMCell`` adds
        1.0 inside every step instead (``from_flax`` folds it into ``b``).
      gate_activation: σ, sigmoid by default.
      activation: tanh by default, the candidate's and the cell state's.
      bias: learn b (G,), G = 4H, in gate order (i, f, g, o).
      init: ``"flax"`` (lecun-normal input kernel, orthogonal recurrent kernel per
        gate over its (K·H, H) reshape, zero bias) or ``"pytorch"`` (uniform
        ±1/sqrt(H)); ``kernel_init``, ``recurrent_init``, ``bias_init`` override them.
      param_dtype, dtype: as for ``lstm``: ``dtype`` is the compute dtype of the
        convolutions (accumulated in ``param_dtype``) and of y_t.

    Returns:
      A ``Cell`` whose params are ``ConvLSTMParams`` (``w_ih`` (*K, I, 4H), ``w_hh``
      (*K, H, 4H), ``b`` (4H,)) and whose ``return_gates`` are ``LSTMGates``.

    Raises:
      ValueError: a ``kernel_size`` of other than 1 to 3 entries or not matching
        ``spatial_dims``; x_t or xs without its N spatial axes.
      TypeError: a ``kernel_size`` that is not positive ints.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.conv_lstm(6, kernel_size=(3, 3))
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> params.w_ih.shape, params.w_hh.shape
    ((3, 3, 5, 24), (3, 3, 6, 24))
    >>> carry = cell.initial_carry(params, batch_shape=(2, 8, 8))  # (B, *S)
    >>> carry, y = cell.step(params, carry, jnp.ones((2, 8, 8, 5)))
    >>> y.shape
    (2, 8, 8, 6)
    >>> _, ys = lj.rnn(cell).apply(params, jnp.ones((2, 4, 8, 8, 5)))  # (B, T, *S, I)
    >>> ys.shape
    (2, 4, 8, 8, 6)
    """
    common = base.common_options(hidden_size, **common)
    config = ConvLSTMConfig(
        kernel_size=_kernel_size(kernel_size, spatial_dims),
        forget_bias=_checks.finite_float("forget_bias", forget_bias),
        gate_activation=base.resolve_activation("gate_activation", gate_activation),
        **common,
    )
    return _build(config)


def conv(x: Array, w: Array, dtype: Any) -> Array:
    """'SAME' convolution with stride 1 under the mixed-precision policy of ``base.matmul``.

    x (..., *S, I) with any leading axes, w (*K, I, G) -> (..., *S, G).
    """
    n = w.ndim - 2
    lead, step = x.shape[: x.ndim - n - 1], x.shape[x.ndim - n - 1 :]
    compute = w.dtype if dtype is None else dtype
    y = jax.lax.conv_general_dilated(
        x.reshape((math.prod(lead), *step)).astype(compute), w.astype(compute),
        window_strides=(1,) * n, padding="SAME", dimension_numbers=_LAYOUTS[n],
        preferred_element_type=w.dtype)
    return y.reshape((*lead, *y.shape[1:]))


def _build(config: ConvLSTMConfig) -> base.Cell:
    H, G, K = config.hidden_size, 4 * config.hidden_size, config.kernel_size
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, 4)
    pdt, dtype = config.param_dtype, config.dtype
    gate_math = lstm(H, gate_activation=config.gate_activation, activation=config.activation,
                     dtype=dtype).combine

    def init(key, input_size):
        k = jax.random.split(key, 3)
        b = None
        if config.bias:  # the forget gate is the second block of (i, f, g, o)
            b = bias_init(k[2], (G,), pdt).at[H : 2 * H].add(jnp.asarray(config.forget_bias, pdt))
        return ConvLSTMParams(
            w_ih=kernel_init(k[0], (*K, input_size, G), pdt),
            w_hh=recurrent_init(k[1], (*K, H, G), pdt),
            b=b,
        )

    def initial_carry(params, batch_shape):  # batch_shape (*batch, *S), or () for (H,)
        zeros = jnp.zeros((*batch_shape, H), params.w_hh.dtype)
        return LSTMState(h=zeros, c=zeros)

    def project_inputs(params, xs):
        return base.add_bias(conv(xs, params.w_ih, dtype), params.b)

    def project_hidden(params, state, h_mask=None):
        h = state.h if h_mask is None else state.h * h_mask
        return conv(h, params.w_hh, dtype)

    def combine(params, state, gx_t, gh_t):
        del params  # the weights live in the projections
        return gate_math(_GATES_ONLY, state, gx_t, gh_t)

    return base.build_cell(config, init, combine,
                           project_inputs=project_inputs, initial_carry=initial_carry,
                           project_hidden=project_hidden)

"""What every cell shares: the ``Cell`` tuple, the dtype policy and small math helpers."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax import initializers as inits

Array = jax.Array


class Cell(NamedTuple):
    """A built-in cell (``lj.lstm``, ``lj.gru``, ...): a cell of the protocol in
    ``lstm_jax.cells.protocol`` with every capability that fits its kind.

    Attributes:
      init: ``(key, input_size) -> params``, a pytree of arrays.
      initial_carry: ``(params, batch_shape=()) -> carry``, zeros; draws no randomness.
      step: ``(params, carry, x_t) -> (carry, y_t)`` with x_t (*batch, I) and
        y_t (*batch, P): the signature of a ``jax.lax.scan`` body.
      project_inputs, project_hidden, combine: the step split at its matmuls (the
        ``Projections`` capability): x @ w_ih (+ bias) over any leading axes; h_{t-1} @
        w_hh (*batch, G), with ``h_mask`` multiplying h_{t-1} first; and all of the
        gate math, ``(params, carry, gx_t, gh_t) -> (carry, y_t, gates)``, ``gates``
        holding the step's activations for analysis.
      config: the frozen options the cell was built with.
      log_coefficients: None, or for a cell whose step is linear in h_{t-1}
        (``lj.min_gru``, ``lj.min_lstm``), ``(params, gx) -> (log_a, log_b)``, each
        (..., H), such that h_t = exp(log_a) ⊙ h_{t-1} + exp(log_b) (``ParallelScan``).
      cudnn_weights: None, or for the plain float32 LSTM, ``params -> `` cuDNN's flat
        weight vector (``Cudnn``).

    ``step(params, carry, x_t)`` is ``combine(params, carry, project_inputs(params, x_t),
    project_hidden(params, carry))[:2]``. The carry is h itself or a NamedTuple whose
    first field is h (``LSTMState(h, c)``), and y_t equals the new h.
    """

    init: Callable[..., Any]
    initial_carry: Callable[..., Any]
    step: Callable[..., Any]
    project_inputs: Callable[..., Any]
    project_hidden: Callable[..., Any]
    combine: Callable[..., Any]
    config: Any
    log_coefficients: Callable[..., Any] | None = None
    cudnn_weights: Callable[..., Any] | None = None

    @property
    def hidden_size(self) -> int:
        """H, the size of the cell state."""
        return self.config.hidden_size

    @property
    def output_size(self) -> int:
        """P, the size of y_t and of the carried output (H unless projected)."""
        return self.config.output_size

    @property
    def feature_axes(self) -> int:
        """How many trailing axes of x_t are features: 1, or 1 + N for N spatial axes."""
        return self.config.feature_axes

    @property
    def sums_projections(self) -> bool:
        """Whether ``combine`` reads gx_t and gh_t only through their sum."""
        return self.config.sums_projections

    def input_size(self, params) -> int:
        """I, the number of input features ``params`` expect, once ``params`` are checked
        to be this cell's (``checked_input_size``)."""
        return checked_input_size(self.init, self.config, params)


class Layer(NamedTuple):
    """A sequence layer as pure functions, built by ``rnn``, ``bidirectional``, ``stack``.

    Attributes:
      init: ``(key, input_size) -> params``.
      apply: ``(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
        return_gates=False, resets=None, return_all_states=False) -> (carry, ys)``,
        then the gates with ``return_gates`` and every step's carry with
        ``return_all_states`` (see ``lj.rnn``). xs is (B, T, I) (or (T, B, I) when
        time-major, (T, I) unbatched, or (*batch, T, I) with several batch axes) and
        ys (B, T, output_size).
      initial_carry: ``(params, batch_shape=()) -> carry``: zeros, or the learned
        carry broadcast (``lj.rnn(..., learn_initial_carry=True)``).
      output_size: the last dimension of ys; None for a layer over a cell that does not
        say its output size before ``init`` (``lj.layers.output_size`` derives it).
      config: the frozen options the layer was built with.

    The layer describes itself through its config (``uses_key``, ``sublayers``,
    ``cell`` below); wrappers and interop read these (``lj.layers.levels`` walks
    them), never the name of its kind. A config of your own may define them too.
    """

    init: Callable[..., Any]
    apply: Callable[..., Any]
    initial_carry: Callable[..., Any]
    output_size: int
    config: Any

    @property
    def time_major(self) -> bool:
        return self.config.time_major

    @property
    def uses_key(self) -> bool:
        """Whether ``apply`` does anything with its ``key`` (dropout or zoneout inside);
        True unless the config says otherwise."""
        return getattr(self.config, "uses_key", True)

    @property
    def sublayers(self) -> tuple[Layer, ...]:
        """The layers it is built from, in the order of its params and carry: a stack's
        layers, a bidirectional layer's (forward, backward); () for ``rnn``."""
        return tuple(getattr(self.config, "sublayers", ()))

    @property
    def cell(self) -> Any:
        """The cell an ``rnn`` layer runs (any cell of the protocol); None for the others."""
        return getattr(self.config, "cell", None)

    @property
    def cells(self) -> tuple[Any, ...]:
        """Every cell inside the layer, in the order of its params."""
        if self.cell is not None:
            return (self.cell,)
        return tuple(cell for sub in self.sublayers for cell in sub.cells)


@dataclasses.dataclass(frozen=True)
class CellConfig:
    """Options every cell has; each cell kind's config adds its own."""

    hidden_size: int
    bias: bool = True
    init: str = "flax"
    kernel_init: inits.Initializer | None = None
    recurrent_init: inits.Initializer | None = None
    bias_init: inits.Initializer | None = None
    activation: Callable = jnp.tanh
    param_dtype: Any = jnp.float32
    dtype: Any = None

    @property
    def output_size(self) -> int:
        return self.hidden_size

    @property
    def sums_projections(self) -> bool:
        """Whether ``combine`` reads gx_t and gh_t only through gx_t + gh_t; the fused
        backward pass then saves that sum instead of both."""
        return False

    @property
    def feature_axes(self) -> int:
        """How many trailing axes of x_t are not batch axes: 1, the features (I,); 1 + N
        for a cell over N spatial axes (``lj.conv_lstm``: x_t (*batch, *S, I))."""
        return 1

    def input_size(self, params) -> int:
        """I, the number of input features ``params`` expect: every cell's w_ih is (I, G)."""
        return params.w_ih.shape[0]


def identity(x: Array) -> Array:
    """The identity: a linear activation ("identity" or "linear")."""
    return x


ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
               "identity": identity, "linear": identity}


def resolve_activation(name: str, value: str | Callable) -> Callable:
    """Accept an activation as a callable or one of the names in ``ACTIVATIONS``."""
    if callable(value):
        return value
    return ACTIVATIONS[_checks.one_of(name, value, ACTIVATIONS)]


def default_initializers(preset: str, hidden_size: int, num_gates: int):
    """(kernel_init, recurrent_init, bias_init) of a named preset.

    ``"flax"``: lecun-normal input kernel, orthogonal recurrent blocks (one per gate),
    zero biases, as flax's and Keras' cells. ``"pytorch"``: everything uniform on
    ±1/sqrt(H), as ``torch.nn.LSTM``/``GRU``/``RNN``.
    """
    if preset == "pytorch":
        u = inits.uniform(hidden_size**-0.5)
        return u, u, u
    return inits.lecun_normal(), inits.per_gate(inits.orthogonal(), num_gates), inits.zeros()


def common_options(
    hidden_size: int,
    *,
    bias: bool = True,
    init: str = "flax",
    kernel_init: inits.Initializer | None = None,
    recurrent_init: inits.Initializer | None = None,
    bias_init: inits.Initializer | None = None,
    activation: str | Callable = "tanh",
    param_dtype: Any = jnp.float32,
    dtype: Any = None,
) -> dict:
    """The options every cell has, declared once (see ``lstm`` for their meaning), and
    checked: the fields of ``CellConfig``. ``cell_factory`` adds them to each factory."""
    return dict(
        hidden_size=_checks.positive_int("hidden_size", hidden_size),
        bias=_checks.flag("bias", bias),
        init=_checks.one_of("init", init, {"flax", "pytorch"}),
        kernel_init=_checks.initializer("kernel_init", kernel_init),
        recurrent_init=_checks.initializer("recurrent_init", recurrent_init),
        bias_init=_checks.initializer("bias_init", bias_init),
        activation=resolve_activation("activation", activation),
        param_dtype=_checks.float_dtype("param_dtype", param_dtype),
        dtype=_checks.float_dtype("dtype", dtype, optional=True),
    )


def cell_factory(factory: Callable[..., Cell]) -> Callable[..., Cell]:
    """``factory(hidden_size, *, its own options, **common)`` with the signature of its
    own options followed by those of ``common_options``, which ``**common`` receives.

    A new option every cell has is written once, in ``common_options`` (and
    ``CellConfig``); wrappers read the full signature (``inspect.signature``). A
    factory that declares one of them itself (IndRNN's ``activation="relu"``) changes
    its default and passes it on to ``common_options``.
    """
    own = [p for p in inspect.signature(factory).parameters.values()
           if p.kind is not p.VAR_KEYWORD]
    common = [p for p in inspect.signature(common_options).parameters.values()
              if p.kind is p.KEYWORD_ONLY and p.name not in {q.name for q in own}]
    signature = inspect.Signature(own + common, return_annotation="Cell")

    @functools.wraps(factory)
    def checked(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:  # e.g. an unknown option: name the factory
            raise TypeError(f"{factory.__name__}() {error}") from None
        return factory(*args, **kwargs)

    checked.__signature__ = signature
    return checked


def initializers_of(config, num_gates: int):
    """(kernel_init, recurrent_init, bias_init) of a config: its own, else its preset's."""
    preset = default_initializers(config.init, config.hidden_size, num_gates)
    return (
        config.kernel_init or preset[0],
        config.recurrent_init or preset[1],
        config.bias_init or preset[2],
    )


def broadcast_like(v: Array, x: Array) -> Array:
    """Reshape ``v`` (trailing dims of ``x``) to ``x``'s rank without copying."""
    return jnp.reshape(v, (1,) * (x.ndim - v.ndim) + v.shape)


def matmul(x: Array, w: Array, dtype: Any) -> Array:
    """``x @ w`` under the mixed-precision policy.

    Both operands are cast to the compute ``dtype`` (the params' dtype when None) and
    the product is accumulated in the params' dtype, so float32 params with
    ``dtype=jnp.bfloat16`` give bfloat16 matmuls with a float32 result.
    """
    compute = w.dtype if dtype is None else dtype
    return jnp.matmul(x.astype(compute), w.astype(compute), preferred_element_type=w.dtype)


class LayerNormParams(NamedTuple):
    scale: Array  # (F,)
    bias: Array | None  # (F,) or None for a scale-only norm


def layer_norm(x: Array, p: LayerNormParams, eps: float = 1e-5) -> Array:
    """Normalise the last axis of ``x`` to zero mean and unit variance, then scale/shift.

    The statistics are computed in at least float32 (as flax's ``LayerNorm`` does):
    in float16 the gradient of 1/sqrt(var + eps) overflows for a constant input such
    as the zero h_0.
    """
    x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype) * broadcast_like(p.scale, x)
    return y if p.bias is None else y + broadcast_like(p.bias, x)


def add_bias(x: Array, b: Array | None) -> Array:
    return x if b is None else x + broadcast_like(b, x)


def output_dtype(dtype: Any, carry_dtype: Any):
    """Outputs come out in the compute dtype when one is set, else in the carry's."""
    return carry_dtype if dtype is None else dtype


def check_step_inputs(params, carry, x_t, initial_carry, input_size: int, feature_axes: int = 1):
    """Trace-time checks for a public ``step`` call."""
    x_t = _checks.float_array("x_t", x_t)
    if x_t.ndim < feature_axes:
        raise ValueError(f"`x_t` must have shape (*batch, *S, I) with {feature_axes - 1} "
                         f"spatial axes S, got shape {tuple(x_t.shape)}")
    _checks.input_size("x_t", x_t, input_size)
    _checks.carry_like(carry, initial_carry(params, x_t.shape[:-1]))
    return x_t


def hidden(carry) -> Array:
    """h, the carried output: the carry itself or its first field."""
    return jax.tree.leaves(carry)[0]


@functools.lru_cache(maxsize=256)
def _params_like(init: Callable, input_size: int) -> Any:
    """What a cell's ``init`` makes for ``input_size`` features, as shapes and dtypes;
    cached, so that a step called in a Python loop traces ``init`` once."""
    return jax.eval_shape(lambda: init(jax.random.key(0), input_size))


def checked_input_size(init: Callable, config, params) -> int:
    """I, the number of input features ``params`` expect, once they are checked to be
    what the cell's ``init`` makes for I: its params type, the parts it was built with
    (a peephole, a layer norm, a bias: none more, none fewer) and every shape, so that
    params of another cell fail here, naming what differs, not deep inside the step."""
    _checks.params_type(params, type(_params_like(init, 1)), config.kind)
    input_size = config.input_size(params)
    _checks.tree_like("params", params, _params_like(init, input_size), dtypes=False,
                      by_path=True)
    return input_size


def build_cell(config, init, combine, *, project_inputs=None,
               initial_carry=None, project_hidden=None, log_coefficients=None,
               cudnn_weights=None) -> Cell:
    """Assemble a ``Cell`` from its kind's init and gate math (``combine``).

    What a kind leaves out is the common case: the input projection is
    ``x @ w_ih + b``, the initial carry is h = 0 (*batch, H), and the recurrent part is
    h_{t-1} @ w_hh (with the dropout mask on h_{t-1}).
    """
    name, dtype, H = config.kind, config.dtype, config.hidden_size

    def input_matmul(params, xs):
        return add_bias(matmul(xs, params.w_ih, dtype), params.b)

    def zero_hidden(params, batch_shape):
        return jnp.zeros((*batch_shape, H), params.w_ih.dtype)

    def recurrent_matmul(params, carry, h_mask=None):
        h = hidden(carry)
        return matmul(h if h_mask is None else h * h_mask, params.w_hh, dtype)

    project_inputs = project_inputs or input_matmul
    initial_carry = initial_carry or zero_hidden
    project_hidden = project_hidden or recurrent_matmul

    def step(params, carry, x_t):
        """One time step, ``(params, carry, x_t (*batch, I)) -> (carry, y_t (*batch, P))``:
        the body of a ``jax.lax.scan`` (see ``lj.Cell``)."""
        x_t = check_step_inputs(params, carry, x_t, initial_carry,
                                checked_input_size(checked_init, config, params),
                                config.feature_axes)
        with jax.named_scope(f"{name}_step"):
            gx_t, gh_t = project_inputs(params, x_t), project_hidden(params, carry)
            carry, y_t, _ = combine(params, carry, gx_t, gh_t)
        return carry, y_t

    def checked_init(key, input_size):
        """This cell's params for inputs of ``input_size`` features."""
        return init(key, _checks.positive_int("input_size", input_size))

    def checked_initial_carry(params, batch_shape=()):
        """Zeros of the carry, (*batch_shape, H) per field; ``batch_shape`` a tuple, or
        one int B for (B,)."""
        checked_input_size(checked_init, config, params)
        return initial_carry(params, _checks.batch_shape(batch_shape))

    return Cell(checked_init, checked_initial_carry, step, project_inputs, project_hidden,
                combine, config, log_coefficients, cudnn_weights)

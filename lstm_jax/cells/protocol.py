"""The cell protocol: what ``lj.rnn`` needs of a cell, and the capabilities it can use.

A cell is any object with three callables (a class instance, a NamedTuple, a
``types.SimpleNamespace``), ``RecurrentCell`` below. Everything else is optional and
found by presence: each capability is one ``Protocol`` here, and ``OPTIONS`` says which
runner option needs which methods. The runner reads these, never the name of a cell's
kind; an option that needs a method the cell lacks raises one ``ValueError`` naming both
(``require``). ``lj.lstm``, ``lj.gru`` and the other built-in cells have every
capability that fits them.

>>> import jax, jax.numpy as jnp, lstm_jax as lj
>>> class Leaky:  # h_t = (1 - a) h_{t-1} + a tanh(x_t W): init, initial_carry, step
...     def __init__(self, size, a=0.5):
...         self.size, self.a = size, a
...     def init(self, key, input_size):
...         return jax.random.normal(key, (input_size, self.size)) / input_size**0.5
...     def initial_carry(self, params, batch_shape):
...         return jnp.zeros((*batch_shape, self.size))
...     def step(self, params, h, x_t):
...         h = (1 - self.a) * h + self.a * jnp.tanh(x_t @ params)
...         return h, h
>>> lj.cells.protocol.capabilities(Leaky(4)), lj.cells.protocol.capabilities(lj.lstm(4))
((), ('projections', 'cudnn'))
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

Array = jax.Array


@runtime_checkable
class RecurrentCell(Protocol):
    """What every cell has: the three callables a ``jax.lax.scan`` loop needs.

    - ``init(key, input_size) -> params``: any pytree.
    - ``initial_carry(params, batch_shape) -> carry``: any pytree of arrays, each with
      leading axes ``batch_shape``; the carry a sequence starts from (zeros for ours).
      ``batch_shape`` () gives the carry of one sequence, which
      ``lj.rnn(..., learn_initial_carry=True)`` learns and broadcasts.
    - ``step(params, carry, x_t) -> (carry, y_t)``: one time step, x_t (*batch, I) ->
      y_t (*batch, P). P need not be the carry's size; y_t is what the runner stacks
      into ys, always as ``step`` returned it.

    Optional plain attributes the runner reads when present:

    - ``feature_axes``: how many trailing axes of x_t are features, not batch: 1 (the
      default) for (I,), 1 + N for N spatial axes (*S, I) as ``lj.conv_lstm``'s.
    - ``output_size``: P, known before ``init`` (``Layer.output_size``; without it the
      layer's is None and ``lj.layers.output_size`` derives it from an input size).
    - ``input_size(params)``: I, to check xs against params before tracing ``step``.
    """

    def init(self, key: Array, input_size: int) -> Any: ...

    def initial_carry(self, params: Any, batch_shape: tuple[int, ...]) -> Any: ...

    def step(self, params: Any, carry: Any, x_t: Array) -> tuple[Any, Array]: ...


@runtime_checkable
class Projections(Protocol):
    """The step split at its matmuls: ``step(params, carry, x_t)`` equals
    ``combine(params, carry, project_inputs(params, x_t), project_hidden(params, carry))[:2]``.

    - ``project_inputs(params, xs) -> gx``: the part of the gate pre-activations that
      depends on the inputs only, (..., I) -> (..., G) over any leading axes, so the
      runner can project all T steps as one GEMM (``hoist``).
    - ``project_hidden(params, carry, h_mask=None) -> gh`` (*batch, G): the part that
      depends on the carry, with ``h_mask`` (the shape of the carry's first leaf, h)
      multiplying h_{t-1} first (``recurrent_dropout``). It must work over any leading
      axes too: the fused backward pass calls it once on every step's carry stacked,
      the (T, *batch) axes flattened into one, (T·B, ...), with h_mask likewise, to
      form the weight gradients as one GEMM. A recurrent weight in
      params under ``w_hh`` can be weight-dropped (``weight_drop``).
    - ``combine(params, carry, gx_t, gh_t) -> (carry, y_t, gates)``: all the rest, the
      gate math; ``gates`` is any pytree of the step's activations (``return_gates``).

    Optional attribute ``sums_projections`` (default False): ``combine`` reads gx_t and
    gh_t only through gx_t + gh_t, so the fused pass saves their sum alone.
    """

    def project_inputs(self, params: Any, xs: Array) -> Array: ...

    def project_hidden(self, params: Any, carry: Any, h_mask: Array | None = None) -> Array: ...

    def combine(self, params: Any, carry: Any, gx_t: Array, gh_t: Array) -> tuple[Any, Array, Any]: ...


@runtime_checkable
class ParallelScan(Protocol):
    """A step linear in h_{t-1}, h_t = a_t ⊙ h_{t-1} + b_t, with an array carry h:
    ``log_coefficients(params, gx) -> (log_a, log_b)``, each (..., H), from
    ``project_inputs``' gx (..., G). ``lj.rnn(..., parallel=True)`` then runs all T steps
    at once as an associative scan (``lj.min_gru``, ``lj.min_lstm``)."""

    def project_inputs(self, params: Any, xs: Array) -> Array: ...

    def log_coefficients(self, params: Any, gx: Array) -> tuple[Array, Array]: ...


@runtime_checkable
class Cudnn(Protocol):
    """A cell that computes cuDNN's LSTM (PyTorch's gates i, f, g, o; sigmoid, tanh; no
    peephole, projection or layer norm; float32) with an ``LSTMState(h, c)`` carry:
    ``cudnn_weights(params) -> w``, cuDNN's flat weight vector (``backend="cudnn"``)."""

    def cudnn_weights(self, params: Any) -> Array: ...


# The one table of capabilities: name -> the methods that make it up.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "projections": ("project_inputs", "project_hidden", "combine"),
    "parallel": ("project_inputs", "log_coefficients"),
    "cudnn": ("cudnn_weights",),
}

# Which runner option needs which capability (README: "Write your own cell").
OPTIONS: dict[str, str] = {
    "hoist=True": "projections",
    "fused_backward=True": "projections",
    "recurrent_dropout": "projections",
    "weight_drop": "projections",
    "return_gates": "projections",
    "parallel=True": "parallel",
    "backend='cudnn'": "cudnn",
}


def has(cell: Any, capability: str) -> bool:
    """Whether ``cell`` has every method of ``capability`` (a key of ``CAPABILITIES``);
    a method set to None (``lj.Cell``'s empty fields) counts as absent."""
    return not _missing(cell, capability)


def capabilities(cell: Any) -> tuple[str, ...]:
    """The names of the capabilities ``cell`` has, in ``CAPABILITIES``' order."""
    return tuple(name for name in CAPABILITIES if has(cell, name))


def require(cell: Any, option: str) -> None:
    """Raise the one ``ValueError`` for an ``option`` (a key of ``OPTIONS``) whose
    capability ``cell`` lacks, naming the option and the first missing method."""
    missing = _missing(cell, OPTIONS[option])
    if missing:
        raise ValueError(f"`{option}` needs a cell with `{missing[0]}` "
                         f"({OPTIONS[option]} capability); `{name(cell)}` has none")


def _missing(cell: Any, capability: str) -> list[str]:
    return [m for m in CAPABILITIES[capability] if not callable(getattr(cell, m, None))]


def is_cell(value: Any) -> bool:
    """Whether ``value`` has the three callables of ``RecurrentCell``."""
    return all(callable(getattr(value, m, None)) for m in ("init", "initial_carry", "step"))


def check_cell(value: Any) -> Any:
    """``value`` if it is a cell, else the ``TypeError`` that names what it lacks."""
    if not is_cell(value):
        lacking = [m for m in ("init", "initial_carry", "step")
                   if not callable(getattr(value, m, None))]
        raise TypeError(f"`cell` must be a cell: an object with init(key, input_size), "
                        f"initial_carry(params, batch_shape) and step(params, carry, x_t), "
                        f"as lj.lstm(...) is; got {type(value).__name__}, which has no "
                        f"`{lacking[0]}`")
    return value


def name(cell: Any) -> str:
    """A short name for errors and named scopes: the built-in kind, else the class name."""
    return getattr(getattr(cell, "config", None), "kind", None) or type(cell).__name__


def feature_axes(cell: Any) -> int:
    """The cell's ``feature_axes``, 1 when it does not say."""
    return getattr(cell, "feature_axes", 1)


def input_size(cell: Any, params: Any) -> int | None:
    """I as the cell reads it from ``params``, or None for a cell that cannot say."""
    method = getattr(cell, "input_size", None)
    return method(params) if callable(method) else None


def sums_projections(cell: Any) -> bool:
    return bool(getattr(cell, "sums_projections", False))

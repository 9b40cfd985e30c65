"""Weights of ``flax.linen`` recurrent cells, in and out; any linen cell as a cell.

``flax_cell`` (at the end) is the other road: it keeps a linen cell module and its
variables as they are and runs them under lstm_jax's runner, for every cell
``flax.linen.RNN`` accepts. The rest of this page is about converting weights.

flax keeps one ``Dense``-shaped entry per gate; lstm_jax keeps the gates side by side
in one (in, G) matrix, in the same (in, out) orientation, so conversion is only
concatenation and slicing, and a round trip is exact.

=====================================  ======================================
flax ``params``                        lstm_jax params
=====================================  ======================================
``LSTMCell`` / ``OptimizedLSTMCell``   ``LSTMParams``, gates (i, f, g, o)
``ii if ig io`` ``kernel`` (I, H)      ``w_ih`` (I, 4H)
``hi hf hg ho`` ``kernel`` (H, H)      ``w_hh`` (H, 4H)
``hi hf hg ho`` ``bias`` (H,)          ``b`` (4H,)
``GRUCell``                            ``GRUParams``, gates (r, z, n)
``ir iz in`` ``kernel`` (I, H)         ``w_ih`` (I, 3H)
``hr hz hn`` ``kernel`` (H, H)         ``w_hh`` (H, 3H)
``ir iz in`` ``bias`` (H,)             ``b`` (3H,)
``hn`` ``bias`` (H,)                   ``b_hn`` (H,)
``SimpleCell``                         ``SimpleParams``
``i`` ``kernel`` (I, H), ``bias``      ``w_ih`` (I, H), ``b`` (H,)
``h`` ``kernel`` (H, H)                ``w_hh`` (H, H)
``MGUCell``                            ``MGUParams``, gates (f, n)
``if in`` ``kernel`` (I, H)            ``w_ih`` (I, 2H)
``hf hn`` ``kernel`` (H, H)            ``w_hh`` (H, 2H)
``if in`` ``bias`` (H,)                ``b`` (2H,)
``hn`` ``bias`` (H,), if reset_gate    ``b_hn`` (H,), if reset_gate
``ConvLSTMCell``, gates (i, g, f, o)   ``ConvLSTMParams``, gates (i, f, g, o)
``ih`` ``kernel`` (*K, I, 4H)          ``w_ih`` (*K, I, 4H)
``hh`` ``kernel`` (*K, H, 4H)          ``w_hh`` (*K, H, 4H)
``ih`` + ``hh`` ``bias`` (4H,), + 1    ``b`` (4H,)
=====================================  ======================================

flax's ``ConvLSTMCell`` computes its forget gate as σ(z_f + 1), a constant 1 in the
step; lstm_jax has no such constant, so ``from_flax`` folds it into the bias, b_f =
b_f(ih) + b_f(hh) + 1, which gives the same pre-activation (to float rounding), and
``to_flax`` takes it out again. A flax cell without ``use_bias`` imports as a cell with
``bias=True`` whose b is 1 on the forget gate and 0 elsewhere. flax's gate order (i, g,
f, o) is reordered to (i, f, g, o); the kernels keep flax's (*K, in, out) layout.

flax's LSTM carry is the tuple ``(c, h)`` (``ConvLSTMCell``'s too); ours is ``LSTMState(h, c)``:
``carry_from_flax`` and ``carry_to_flax`` convert it (GRU, MGU and Elman carries are
the same array on both sides).

What differs between the two libraries, beyond the carry order:

- ``dtype=None`` means "promote the inputs and params" in flax and "compute in
  ``param_dtype``" here; with a compute ``dtype`` flax runs the whole cell in it, while
  lstm_jax runs only the matmuls in it and keeps gates and c in ``param_dtype``. Results
  agree exactly for float32 and to bfloat16 rounding otherwise.
- flax's ``nn.RNN`` with ``seq_lengths`` keeps running over the padding: its outputs
  there are not zero (ours are), and with a length of 0 its ``return_carry`` is the
  carry after all T steps (ours is the initial carry).
- Initializers are not carried across: ``from_flax`` builds a cell with the ``"flax"``
  preset (flax's own defaults) and ``to_flax`` a flax cell with flax's defaults. Only
  the weights, activations and dtypes travel. A flax ``carry_init`` other than zeros
  has no counterpart: pass the carry explicitly.

flax is imported only when these functions run.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax.cells import KINDS, Cell, ConvLSTMParams, LSTMParams, LSTMState, conv_lstm

__all__ = ["FlaxCell", "carry_from_flax", "carry_to_flax", "flax_cell", "from_flax", "to_flax"]

@dataclasses.dataclass(frozen=True)
class _Entries:
    """How a flax cell of ``Dense`` entries names its params: per gate g, in lstm_jax's
    gate order, an entry ``"i" + g`` reading x and an entry ``"h" + g`` reading h."""

    gates: tuple[str, ...]  # ("",) for the Elman cell's single "i" and "h"
    bias_on: str  # "i" or "h": the entries whose biases make up lstm_jax's b
    b_hn: bool = False  # "hn" has a bias too, lstm_jax's b_hn

    def layout(self) -> tuple:
        """(name, reads "x" or "h", has a bias) per entry, for ``_read_flax_params``."""
        return tuple((side + g, reads, side == self.bias_on or (self.b_hn and side + g == "hn"))
                     for side, reads in (("i", "x"), ("h", "h")) for g in self.gates)


# The one table of flax's entry names per kind, read by from_flax and to_flax
_ENTRIES = {
    "lstm": _Entries(tuple("ifgo"), bias_on="h"),
    "gru": _Entries(tuple("rzn"), bias_on="i", b_hn=True),
    "mgu": _Entries(tuple("fn"), bias_on="i", b_hn=True),
    "simple": _Entries(("",), bias_on="i"),
}
# flax's field names of lstm_jax's options, where a flax cell has the field
_FIELDS = {"activation": "activation_fn", "gate_activation": "gate_fn",
           "reset_gate": "reset_gate", "dtype": "dtype", "param_dtype": "param_dtype"}
# ConvLSTMCell: two Conv entries (reading x, h) of 4H outputs in another gate order
_CONV_ENTRIES = ("ih", "hh")
_CONV_GATES = ("ifgo", "igfo")  # (lstm_jax's, flax's)


def _flax_kinds() -> dict[type, str]:
    """flax's cell classes and their kinds; to_flax builds the last class of a kind."""
    import flax.linen as nn

    return {nn.LSTMCell: "lstm", nn.OptimizedLSTMCell: "lstm", nn.GRUCell: "gru",
            nn.SimpleCell: "simple", nn.MGUCell: "mgu", nn.ConvLSTMCell: "conv_lstm"}


def _entries(kind: str, reset_gate: bool) -> _Entries:
    """A kind's entries; without its reset gate, flax's MGU has no bias on "hn" (it
    would add to "in"'s)."""
    spec = _ENTRIES[kind]
    return spec if reset_gate or kind != "mgu" else dataclasses.replace(spec, b_hn=False)


def _fields(flax_type: type) -> dict[str, str]:
    """lstm_jax's option -> flax's field, for the fields ``flax_type`` has."""
    names = {field.name for field in dataclasses.fields(flax_type)}
    return {ours: theirs for ours, theirs in _FIELDS.items() if theirs in names}


def _shape(a: Any) -> tuple:
    return tuple(np.shape(a))


def _unwrap_variables(variables: Any, cell_name: str) -> Mapping:
    """The ``params`` collection of flax variables given with or without its key."""
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"`flax_params` must be the variables of a {cell_name} (a dict), "
            f"got {type(variables).__name__}"
        )
    if "params" in variables:
        others = sorted(k for k in variables if k != "params")
        if others:
            raise ValueError(
                f"`flax_params` holds collections {others} besides 'params'; a "
                f"{cell_name} has none"
            )
        variables = variables["params"]
        if not isinstance(variables, Mapping):
            raise TypeError(
                f"`flax_params['params']` must be a dict, got {type(variables).__name__}"
            )
    return variables


def _read_flax_params(tree: Mapping, layout: tuple, hidden_size: int, cell_name: str,
                      window: tuple = (), width: int | None = None):
    """Check names, shapes and dtypes; return {name: (kernel, bias or None)}.

    Kernels are (*window, in, width), biases (width,): ``Dense`` entries (in, H) by
    default; a ``Conv`` entry has its kernel size as ``window`` and G as ``width``.
    """
    expected = [name for name, _, _ in layout]
    missing = [name for name in expected if name not in tree]
    if missing:
        raise ValueError(
            f"flax params of a {cell_name} are missing {', '.join(map(repr, missing))} "
            f"(expected entries {expected}, got {sorted(tree)})"
        )
    extra = sorted(str(k) for k in tree if k not in expected)
    if extra:
        raise ValueError(
            f"flax params of a {cell_name} have unexpected entries {extra} "
            f"(expected {expected})"
        )
    H = hidden_size
    G = H if width is None else width
    input_size = None
    out = {}
    for name, reads, has_bias in layout:
        entry = tree[name]
        wanted = ["kernel", "bias"] if has_bias else ["kernel"]
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"flax param {name!r} must be a dict with keys {wanted}, "
                f"got {type(entry).__name__}"
            )
        for leaf in wanted:
            if leaf not in entry:
                raise ValueError(f"flax params of a {cell_name} are missing '{name}/{leaf}'")
        extra = sorted(str(k) for k in entry if k not in wanted)
        if extra:
            raise ValueError(
                f"flax param {name!r} of a {cell_name} has unexpected entries {extra} "
                f"(expected {wanted})"
            )
        kernel = entry["kernel"]
        if reads == "x" and input_size is None:
            if len(_shape(kernel)) != len(window) + 2:
                expected = ", ".join(map(str, (*window, "I", G)))
                raise ValueError(
                    f"flax param '{name}/kernel' has shape {_shape(kernel)}, expected "
                    f"({expected}) for features={H}"
                )
            input_size = _shape(kernel)[-2]
        want = {"kernel": (*window, input_size if reads == "x" else H, G), "bias": (G,)}
        for leaf in wanted:
            value = entry[leaf]
            dtype = getattr(value, "dtype", None) or np.asarray(value).dtype
            if not jnp.issubdtype(dtype, jnp.floating):
                raise TypeError(
                    f"flax param '{name}/{leaf}' must have a floating-point dtype, got {dtype}"
                )
            if _shape(value) != want[leaf]:
                raise ValueError(
                    f"flax param '{name}/{leaf}' has shape {_shape(value)}, expected "
                    f"{want[leaf]} for features={H}"
                    + (f" and {input_size} input features" if reads == "x" else "")
                )
        out[name] = (kernel, entry["bias"] if has_bias else None)
    return out


def _concat(arrays) -> jax.Array:
    return jnp.concatenate([jnp.asarray(a) for a in arrays], axis=-1)


def from_flax(flax_cell: Any, flax_params: Any) -> tuple[Cell, Any]:
    """Convert a ``flax.linen`` recurrent cell and its variables to a cell and params.

    Supported: ``nn.LSTMCell`` and ``nn.OptimizedLSTMCell`` (to ``lj.lstm``),
    ``nn.GRUCell`` (to ``lj.gru``), ``nn.MGUCell`` (to ``lj.mgu``, with its
    ``reset_gate``), ``nn.SimpleCell`` without ``residual`` (to ``lj.simple``) and
    ``nn.ConvLSTMCell`` with 'SAME' padding and stride 1 (to ``lj.conv_lstm``, its
    constant forget-gate +1 folded into ``b``: see the module docstring). The
    returned cell computes what the flax cell computes: its ``features``, ``gate_fn``,
    ``activation_fn``, ``dtype`` and ``param_dtype`` carry over, and it re-initializes
    like flax (``init="flax"``; ``forget_bias=0.0`` for an LSTM, 1.0 for an MGU or
    ConvLSTM).

    Args:
      flax_cell: the flax module, e.g. ``nn.LSTMCell(features=H)``.
      flax_params: its variables, ``{"params": {...}}`` as returned by ``init``, or the
        inner ``{...}``. Kernels are (I, H) for the input and (H, H) for the recurrent
        entries, biases (H,); a ``ConvLSTMCell``'s are (*K, I, 4H), (*K, H, 4H), (4H,).

    Returns:
      ``(cell, params)``: ``LSTMParams`` with ``w_ih`` (I, 4H), ``w_hh`` (H, 4H),
      ``b`` (4H,) in gate order (i, f, g, o); ``GRUParams`` with ``w_ih`` (I, 3H),
      ``w_hh`` (H, 3H), ``b`` (3H,), ``b_hn`` (H,) in gate order (r, z, n);
      ``MGUParams`` with ``w_ih`` (I, 2H), ``w_hh`` (H, 2H), ``b`` (2H,), ``b_hn`` (H,)
      or None without reset gate, in gate order (f, n); ``SimpleParams`` with
      ``w_ih`` (I, H), ``w_hh`` (H, H), ``b`` (H,); or ``ConvLSTMParams`` with
      ``w_ih`` (*K, I, 4H), ``w_hh`` (*K, H, 4H), ``b`` (4H,) in gate order (i, f, g, o).

    Raises:
      TypeError: ``flax_cell`` is not one of the supported modules, or a param is not
        a floating-point array.
      ValueError: ``SimpleCell(residual=True)``, a ``ConvLSTMCell`` with other padding
        or strides, or params missing, unexpected or of the wrong shape.

    >>> import jax, jax.numpy as jnp, flax.linen as nn, lstm_jax as lj
    >>> flax_cell = nn.LSTMCell(features=6)
    >>> x = jnp.ones((3, 5))
    >>> flax_carry = flax_cell.initialize_carry(jax.random.key(0), x.shape)
    >>> variables = flax_cell.init(jax.random.key(1), flax_carry, x)
    >>> cell, params = lj.interop.from_flax(flax_cell, variables)
    >>> params.w_ih.shape, params.w_hh.shape, params.b.shape
    ((5, 24), (6, 24), (24,))
    >>> (c, h), y_flax = flax_cell.apply(variables, flax_carry, x)
    >>> carry, y = cell.step(params, cell.initial_carry(params, (3,)), x)
    >>> bool(jnp.allclose(y, y_flax, atol=1e-6)), bool(jnp.allclose(carry.c, c, atol=1e-6))
    (True, True)
    """
    kinds = _flax_kinds()
    if type(flax_cell) not in kinds:
        supported = ", ".join(f"nn.{t.__name__}" for t in kinds)
        raise TypeError(
            f"`flax_cell` must be one of {supported}, got {type(flax_cell).__name__}"
        )
    cell_name = type(flax_cell).__name__
    kind = kinds[type(flax_cell)]
    if kind == "simple" and flax_cell.residual:
        raise ValueError(
            "nn.SimpleCell(residual=True) adds h_{t-1} before the activation; lstm_jax's "
            "simple cell has no residual connection"
        )
    variables = _unwrap_variables(flax_params, cell_name)
    if kind == "conv_lstm":
        return _conv_lstm_from_flax(flax_cell, variables)
    H = flax_cell.features
    spec = _entries(kind, getattr(flax_cell, "reset_gate", True))
    tree = _read_flax_params(variables, spec.layout(), H, cell_name)
    options = {ours: getattr(flax_cell, theirs)
               for ours, theirs in _fields(type(flax_cell)).items()}
    if kind == "lstm":
        options["forget_bias"] = 0.0
    cell = KINDS[kind].factory(H, init="flax", **options)
    params = dict(w_ih=_concat(tree["i" + g][0] for g in spec.gates),
                  w_hh=_concat(tree["h" + g][0] for g in spec.gates),
                  b=_concat(tree[spec.bias_on + g][1] for g in spec.gates))
    if kind == "lstm":
        params.update(w_hr=None, peephole=None, layer_norm=None)
    elif kind != "simple":
        params["b_hn"] = jnp.asarray(tree["hn"][1]) if spec.b_hn else None
    return cell, KINDS[kind].params(**params)


def _check_cell(cell: Any, name: str = "cell") -> str:
    if not isinstance(cell, Cell):
        raise TypeError(f"`{name}` must be a Cell such as lj.lstm(...), got {type(cell).__name__}")
    kind = cell.config.kind
    supported = set(_flax_kinds().values())
    if kind not in supported:
        raise ValueError(
            f"flax has no counterpart of a {kind!r} cell; supported: {sorted(supported)}"
        )
    return kind


def _lstm_unsupported(config, params: LSTMParams) -> list[str]:
    reasons = []
    if config.proj_size or params.w_hr is not None:
        reasons.append(f"proj_size={config.proj_size} (an output projection w_hr)")
    if config.peephole or params.peephole is not None:
        reasons.append("peephole=True (peephole weights)")
    if config.layer_norm or params.layer_norm is not None:
        reasons.append("layer_norm=True (layer-norm parameters)")
    if config.coupled:
        reasons.append("coupled=True (no input gate)")
    reasons.extend(f"{change} (flax's cells have all three gates, no gate recurrence)"
                   for change in config.gate_changes)
    if config.candidate_activation is not config.activation or (
            config.cell_activation is not config.activation):
        reasons.append("candidate_activation or cell_activation other than activation "
                       "(flax's activation_fn is both)")
    if not config.bias or params.b is None:
        reasons.append("bias=False (flax's recurrent entries always have a bias)")
    return reasons


def _check_shape(name: str, value: Any, expected: tuple) -> None:
    if _shape(value) != expected:
        raise ValueError(f"`params.{name}` has shape {_shape(value)}, expected {expected}")


def _blocks(w: Any, n: int, H: int) -> list:
    return [w[..., k * H : (k + 1) * H] for k in range(n)]


def to_flax(cell: Cell, params: Any) -> tuple[Any, dict]:
    """Convert a cell and its params to a ``flax.linen`` cell and its variables.

    The inverse of ``from_flax``: ``lj.lstm`` becomes ``nn.OptimizedLSTMCell`` (whose
    params have the same names as ``nn.LSTMCell``'s, so they load into either),
    ``lj.gru`` becomes ``nn.GRUCell``, ``lj.mgu`` ``nn.MGUCell`` (with its
    ``reset_gate``), ``lj.simple`` ``nn.SimpleCell`` and ``lj.conv_lstm``
    ``nn.ConvLSTMCell`` (its forget-gate bias less the 1 flax adds in the step, on the
    ``ih`` entry; ``hh``'s bias zero). The flax cell gets the cell's
    hidden size, activations, ``dtype`` and ``param_dtype``, and flax's default
    initializers.

    Args:
      cell: a ``Cell`` from ``lj.lstm``, ``lj.gru``, ``lj.mgu``, ``lj.simple`` or
        ``lj.conv_lstm``.
      params: its params: ``ConvLSTMParams`` (``w_ih`` (*K, I, 4H), ``w_hh``
        (*K, H, 4H), ``b`` (4H,)), ``LSTMParams`` (``w_ih`` (I, 4H), ``w_hh`` (H, 4H),
        ``b`` (4H,)), ``GRUParams`` (``w_ih`` (I, 3H), ``w_hh`` (H, 3H), ``b`` (3H,),
        ``b_hn`` (H,)), ``MGUParams`` (``w_ih`` (I, 2H), ``w_hh`` (H, 2H), ``b`` (2H,),
        ``b_hn`` (H,) with a reset gate) or ``SimpleParams`` (``w_ih`` (I, H),
        ``w_hh`` (H, H), ``b`` (H,)).

    Returns:
      ``(flax_cell, variables)`` with ``variables = {"params": {...}}``: kernels
      (I, H) and (H, H), biases (H,), named as in the module docstring.

    Raises:
      TypeError: ``cell`` is not a Cell or ``params`` not of its type.
      ValueError: what flax's cells cannot express (``proj_size``, ``peephole``,
        ``layer_norm``, ``coupled``, a gate switched off, ``gate_recurrence``, other
        candidate or cell activations, ``bias=False``; a ConvLSTM with ``bias=False``
        or other activations), or params whose shapes do not match the cell.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.gru(6)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> flax_cell, variables = lj.interop.to_flax(cell, params)
    >>> type(flax_cell).__name__, sorted(variables["params"])
    ('GRUCell', ['hn', 'hr', 'hz', 'in', 'ir', 'iz'])
    >>> x = jnp.ones((3, 5))
    >>> h_flax, _ = flax_cell.apply(variables, jnp.zeros((3, 6)), x)
    >>> h, _ = cell.step(params, cell.initial_carry(params, (3,)), x)
    >>> bool(jnp.allclose(h, h_flax, atol=1e-6))
    True
    """
    kind = _check_cell(cell)
    _checks.params_type(params, KINDS[kind].params, kind)
    if kind == "conv_lstm":
        return _conv_lstm_to_flax(cell, params)
    config = cell.config
    H = config.hidden_size
    if kind == "lstm":
        reasons = _lstm_unsupported(config, params)
        if reasons:
            raise ValueError(
                "flax's LSTMCell cannot express an LSTM with " + "; ".join(reasons)
            )
    elif kind == "gru":
        if not config.bias or params.b is None or params.b_hn is None:
            raise ValueError(
                "flax's GRUCell cannot express a GRU with bias=False (its 'ir', 'iz', "
                "'in' and 'hn' entries always have a bias)"
            )
    elif kind == "mgu":
        if not config.bias or params.b is None or (config.reset_gate and params.b_hn is None):
            raise ValueError(
                "flax's MGUCell cannot express an MGU with bias=False (its 'if' and 'in' "
                "entries, and 'hn' with reset_gate, always have a bias)"
            )
    elif not config.bias or params.b is None:
        raise ValueError(
            "flax's SimpleCell cannot express an Elman cell with bias=False (its "
            "'i' entry always has a bias)"
        )
    flax_type = {k: t for t, k in _flax_kinds().items()}[kind]
    flax_cell = flax_type(features=H, **{
        theirs: getattr(config, ours) for ours, theirs in _fields(flax_type).items()})

    spec = _entries(kind, getattr(config, "reset_gate", True))
    n, w_ih = len(spec.gates), params.w_ih
    if len(_shape(w_ih)) != 2:
        raise ValueError(f"`params.w_ih` must have shape (I, {n * H}), got {_shape(w_ih)}")
    input_size = _shape(w_ih)[0]
    _check_shape("w_ih", w_ih, (input_size, n * H))
    _check_shape("w_hh", params.w_hh, (H, n * H))
    _check_shape("b", params.b, (n * H,))
    tree = {}
    for g, wi, wh, b in zip(spec.gates, _blocks(w_ih, n, H), _blocks(params.w_hh, n, H),
                            _blocks(params.b, n, H)):
        tree["i" + g], tree["h" + g] = {"kernel": wi}, {"kernel": wh}
        tree[spec.bias_on + g]["bias"] = b
    if spec.b_hn:
        _check_shape("b_hn", params.b_hn, (H,))
        tree["hn"]["bias"] = params.b_hn
    return flax_cell, {"params": tree}


def carry_from_flax(cell: Cell, carry: Any) -> Any:
    """Convert a flax carry to the carry of ``cell``.

    Args:
      cell: a ``Cell`` from ``lj.lstm``, ``lj.gru``, ``lj.mgu``, ``lj.simple`` or
        ``lj.conv_lstm``.
      carry: flax's carry: the tuple ``(c, h)``, each (*batch, H) ((*batch, *S, H) for
        a ConvLSTM), for an LSTM or ConvLSTM; the array h (*batch, H) for a GRU, MGU or
        Elman cell.

    Returns:
      ``LSTMState(h, c)`` for an LSTM or ConvLSTM, else ``carry`` unchanged.

    >>> import jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.interop.flax_linen import carry_from_flax
    >>> state = carry_from_flax(lj.lstm(6), (jnp.zeros((3, 6)), jnp.ones((3, 6))))
    >>> float(state.h[0, 0]), float(state.c[0, 0])
    (1.0, 0.0)
    """
    if _check_cell(cell) not in ("lstm", "conv_lstm"):
        return carry
    if isinstance(carry, LSTMState) or not isinstance(carry, (tuple, list)) or len(carry) != 2:
        raise TypeError(
            f"`carry` must be flax's LSTM carry, the tuple (c, h), got {type(carry).__name__}"
        )
    c, h = carry
    return LSTMState(h=h, c=c)


def carry_to_flax(cell: Cell, carry: Any) -> Any:
    """Convert a carry of ``cell`` to flax's carry, the inverse of ``carry_from_flax``.

    Args:
      cell: a ``Cell`` from ``lj.lstm``, ``lj.gru``, ``lj.mgu``, ``lj.simple`` or
        ``lj.conv_lstm``.
      carry: ``LSTMState(h (*batch, H), c (*batch, H))`` for an LSTM (each
        (*batch, *S, H) for a ConvLSTM); h (*batch, H) for a GRU, MGU or Elman cell.

    Returns:
      The tuple ``(c, h)`` for an LSTM or ConvLSTM, else ``carry`` unchanged.

    >>> import jax.numpy as jnp, lstm_jax as lj
    >>> from lstm_jax.interop.flax_linen import carry_to_flax
    >>> c, h = carry_to_flax(lj.lstm(6), lj.LSTMState(h=jnp.ones(6), c=jnp.zeros(6)))
    >>> float(c[0]), float(h[0])
    (0.0, 1.0)
    """
    if _check_cell(cell) not in ("lstm", "conv_lstm"):
        return carry
    if not isinstance(carry, LSTMState):
        raise TypeError(f"`carry` must be an LSTMState(h, c), got {type(carry).__name__}")
    return (carry.c, carry.h)


# ---- ConvLSTMCell ---------------------------------------------------------------------


def _reorder(w: Any, H: int, *, to_flax: bool) -> jax.Array:
    """The 4 gate blocks of w (..., 4H) from flax's ConvLSTM gate order to ours, or back."""
    ours, flax = _CONV_GATES
    source, target = (ours, flax) if to_flax else (flax, ours)
    blocks = dict(zip(source, _blocks(jnp.asarray(w), 4, H)))
    return _concat(blocks[g] for g in target)


def _forget_one(H: int, dtype: Any) -> jax.Array:
    """flax's constant forget-gate shift as a bias (4H,) in our order (i, f, g, o)."""
    return jnp.zeros((4 * H,), dtype).at[H : 2 * H].set(1)


def _flax_conv_window(flax_cell: Any) -> tuple[int, ...]:
    """The kernel size of a ``nn.ConvLSTMCell``, after checking it runs lj.conv_lstm's
    convolution: 'SAME' padding, stride 1."""
    padding, strides = flax_cell.padding, flax_cell.strides
    if not (isinstance(padding, str) and padding.upper() == "SAME"):
        raise ValueError(f"nn.ConvLSTMCell(padding={padding!r}) pads otherwise than lj.conv_lstm, "
                         "whose convolutions use 'SAME' padding")
    if strides is not None and any(s != 1 for s in np.atleast_1d(strides)):
        raise ValueError(f"nn.ConvLSTMCell(strides={strides!r}) strides otherwise than "
                         "lj.conv_lstm, whose convolutions have stride 1")
    window = flax_cell.kernel_size
    return (window,) if isinstance(window, int) else tuple(window)


def _conv_lstm_from_flax(flax_cell: Any, tree: Mapping) -> tuple[Cell, ConvLSTMParams]:
    H, window = flax_cell.features, _flax_conv_window(flax_cell)
    layout = tuple((name, reads, flax_cell.use_bias) for name, reads in zip(_CONV_ENTRIES, "xh"))
    entries = _read_flax_params(tree, layout, H, "ConvLSTMCell", window=window, width=4 * H)
    (w_ih, b_ih), (w_hh, b_hh) = (entries[name] for name in _CONV_ENTRIES)
    b = _forget_one(H, jnp.result_type(w_ih))
    if flax_cell.use_bias:
        b = b + _reorder(jnp.asarray(b_ih) + jnp.asarray(b_hh), H, to_flax=False)
    cell = conv_lstm(H, window, init="flax", dtype=flax_cell.dtype,
                     param_dtype=flax_cell.param_dtype)
    params = ConvLSTMParams(w_ih=_reorder(w_ih, H, to_flax=False),
                            w_hh=_reorder(w_hh, H, to_flax=False), b=b)
    return cell, params


def _conv_lstm_to_flax(cell: Cell, params: ConvLSTMParams) -> tuple[Any, dict]:
    import flax.linen as nn

    config = cell.config
    H, window = config.hidden_size, config.kernel_size
    if not config.bias or params.b is None:
        raise ValueError("flax's ConvLSTMCell cannot express a ConvLSTM with bias=False: it "
                         "adds 1 to the forget gate's pre-activation in every step")
    if config.gate_activation is not jax.nn.sigmoid or config.activation is not jnp.tanh:
        raise ValueError("flax's ConvLSTMCell cannot express a ConvLSTM with activations "
                         "other than sigmoid gates and tanh")
    w_ih = params.w_ih
    if len(_shape(w_ih)) != len(window) + 2:
        raise ValueError(f"`params.w_ih` must have shape {(*window, 'I', 4 * H)}, got "
                         f"{_shape(w_ih)}")
    _check_shape("w_ih", w_ih, (*window, _shape(w_ih)[-2], 4 * H))
    _check_shape("w_hh", params.w_hh, (*window, H, 4 * H))
    _check_shape("b", params.b, (4 * H,))
    b = params.b - _forget_one(H, params.b.dtype)
    flax_cell = nn.ConvLSTMCell(features=H, kernel_size=window, dtype=config.dtype,
                                param_dtype=config.param_dtype)
    tree = dict(zip(_CONV_ENTRIES, (
        {"kernel": _reorder(w_ih, H, to_flax=True), "bias": _reorder(b, H, to_flax=True)},
        {"kernel": _reorder(params.w_hh, H, to_flax=True), "bias": jnp.zeros_like(b)},
    )))
    return flax_cell, {"params": tree}


# ---- any linen cell under lstm_jax's runner -------------------------------------------


def flax_cell(module: Any, *, feature_shape: tuple[int, ...] | None = None) -> FlaxCell:
    """Wrap a ``flax.linen`` cell module as a cell: flax's own params, lstm_jax's runner.

    Where ``from_flax`` converts the weights of flax's built-in cells into ours, this
    keeps the module and its variables as they are, so it serves every cell that
    ``flax.linen.RNN`` accepts: ``nn.LSTMCell``, ``nn.GRUCell``, ``nn.ConvLSTMCell``
    and a user's own ``nn.RNNCellBase`` subclass. The result has the cell protocol's
    three callables:

    - ``init(key, input_size) -> variables``: ``module.init`` on a zero x_t (1, I),
      or (1, *S, I) for a cell with spatial axes: ``{"params": {...}}`` as flax makes
      them.
    - ``initial_carry(params, batch_shape=()) -> carry``:
      ``module.initialize_carry(jax.random.key(0), (*batch_shape, I))``; the runner's
      ``batch_shape`` is every axis of x_t but the last, (*batch) or (*batch, *S).
    - ``step(params, carry, x_t) -> (carry, y_t)``: ``module.apply(params, carry,
      x_t)``; x_t (*batch, I) or (*batch, *S, I), y_t (*batch, P) or (*batch, *S, P).

    and ``feature_axes = module.num_feature_axes`` (1, or 1 + N for N spatial axes).

    What ``initial_carry`` cannot know and ``feature_shape`` tells it:

    - I: flax's own cells read only the batch (and spatial) axes of ``input_shape``,
      so any I serves and 1 is passed. A module whose carry's shapes depend on I is
      found here (its ``initialize_carry`` is traced for I = 1 and 2) and must be
      given ``feature_shape=(I,)``.
    - S, for ``init``: without ``feature_shape`` the spatial axes are 1 each, right for
      cells whose params do not depend on S (``nn.ConvLSTMCell`` with 'SAME' padding).

    flax's default ``carry_init`` is zeros. A ``carry_init`` that draws randomness
    draws from the fixed key 0: the same initial carry on every call, not a fresh draw
    per batch; pass ``carry=`` to the runner for other draws. A module that needs rngs
    or mutable collections in its call (dropout, batch statistics) is not supported:
    ``step`` calls ``module.apply`` with neither.

    Args:
      module: a ``flax.linen.RNNCellBase`` instance with ``__call__(carry, x)``, e.g.
        ``nn.LSTMCell(features=H)``.
      feature_shape: None, or x_t's axes that are not batch axes, (I,) or (*S, I):
        ``module.num_feature_axes`` entries. ``init`` then checks ``input_size == I``.

    Returns:
      A ``FlaxCell(module, feature_shape)``: frozen, hashable, its params flax's
      variables.

    Raises:
      TypeError: ``module`` is not a linen ``RNNCellBase`` instance, or has no
        ``__call__(carry, x)``.
      ValueError: ``feature_shape`` has the wrong number of entries or one that is not
        positive, or is None while the carry's shapes depend on I.

    >>> import jax, jax.numpy as jnp, flax.linen as nn, lstm_jax as lj
    >>> cell = lj.interop.flax_cell(nn.LSTMCell(features=6))
    >>> cell
    FlaxCell(LSTMCell(features=6))
    >>> params = cell.init(jax.random.key(0), input_size=5)  # flax's own variables
    >>> params["params"]["ii"]["kernel"].shape
    (5, 6)
    >>> xs = jnp.ones((3, 4, 5))  # (B, T, I)
    >>> c, h = cell.initial_carry(params, batch_shape=(3,))  # flax's LSTM carry (c, h)
    >>> (c, h), y = cell.step(params, (c, h), xs[:, 0])
    >>> y.shape, c.shape
    ((3, 6), (3, 6))
    >>> carry, ys = lj.rnn(cell).apply(params, xs, seq_lengths=jnp.array([4, 2, 0]))
    >>> ys.shape, bool(jnp.all(ys[1, 2:] == 0))
    ((3, 4, 6), True)
    """
    import flax.linen as nn

    if isinstance(module, type):
        raise TypeError(f"`module` must be a flax.linen cell module instance, got the class "
                        f"{module.__name__}: pass an instance such as {module.__name__}(...)")
    if not isinstance(module, nn.RNNCellBase):
        raise TypeError(f"`module` must be a flax.linen RNNCellBase such as "
                        f"nn.LSTMCell(features=H), got {type(module).__name__}")
    if not _takes_carry_and_x(module):
        raise TypeError(f"`module` must have a method __call__(carry, x) -> (carry, y), "
                        f"as flax.linen.RNN calls its cell; {type(module).__name__} has none")
    axes = module.num_feature_axes
    if feature_shape is not None:
        feature_shape = tuple(feature_shape)
        if len(feature_shape) != axes or not all(
                isinstance(n, (int, np.integer)) and n > 0 for n in feature_shape):
            what = "(I,)" if axes == 1 else f"(*S, I) with {axes - 1} spatial axes S"
            raise ValueError(f"`feature_shape` must be {what}: {axes} positive ints, as "
                             f"{type(module).__name__}.num_feature_axes = {axes}, got "
                             f"{feature_shape}")
        feature_shape = tuple(int(n) for n in feature_shape)
    elif _carry_reads_input_size(module):
        raise ValueError(f"the carry of {type(module).__name__}.initialize_carry(rng, "
                         f"input_shape) changes shape with the input size I = input_shape[-1]"
                         f", which initial_carry(params, batch_shape) does not know: pass "
                         f"`feature_shape={'(I,)' if axes == 1 else '(*S, I)'}`")
    return FlaxCell(module, feature_shape)


@dataclasses.dataclass(frozen=True, repr=False)
class FlaxCell:
    """A ``flax.linen`` cell module as a cell (built by ``flax_cell``, which documents it).

    Attributes:
      module: the flax module, an ``nn.RNNCellBase``.
      feature_shape: None, or the non-batch axes of x_t, (I,) or (*S, I).
    """

    module: Any
    feature_shape: tuple[int, ...] | None = None

    @property
    def feature_axes(self) -> int:
        """How many trailing axes of x_t are not batch axes: 1, or 1 + N spatial axes."""
        return self.module.num_feature_axes

    def init(self, key: jax.Array, input_size: int) -> dict:
        """``module.init`` on a zero x_t (1, I) or (1, *S, I): flax's variables."""
        input_size = _checks.positive_int("input_size", input_size)
        if self.feature_shape is None:
            spatial = (1,) * (self.feature_axes - 1)
        elif input_size != self.feature_shape[-1]:
            raise ValueError(f"`input_size` is {input_size}, but this cell was built with "
                             f"feature_shape={self.feature_shape}, I = {self.feature_shape[-1]}")
        else:
            spatial = self.feature_shape[:-1]
        x = jnp.zeros((1, *spatial, input_size))
        carry = self.initial_carry(None, x.shape[:-1])
        return self.module.init(key, carry, x)

    def initial_carry(self, params: Any, batch_shape: tuple[int, ...] = ()) -> Any:
        """``module.initialize_carry`` for x_t of shape (*batch_shape, I), key 0;
        ``params`` is not read (flax's carry does not depend on them)."""
        del params
        input_size = 1 if self.feature_shape is None else self.feature_shape[-1]
        return self.module.initialize_carry(jax.random.key(0), (*batch_shape, input_size))

    def step(self, params: Any, carry: Any, x_t: jax.Array) -> tuple[Any, Any]:
        """``module.apply(params, carry, x_t)``: x_t (*batch, I) -> (carry, y_t (*batch, P))."""
        with jax.named_scope(f"flax_{type(self.module).__name__}_step"):
            return self.module.apply(params, carry, x_t)

    def __repr__(self) -> str:
        shape = "" if self.feature_shape is None else f", feature_shape={self.feature_shape}"
        return f"FlaxCell({_module_repr(self.module)}{shape})"


def _takes_carry_and_x(module: Any) -> bool:
    call = getattr(module, "__call__", None)
    if call is None:
        return False
    try:
        inspect.signature(call).bind(None, None)
    except (TypeError, ValueError):
        return False
    return True


def _carry_reads_input_size(module: Any) -> bool:
    """Whether ``module.initialize_carry``'s shapes change with input_shape[-1]."""
    spatial = (1,) * (module.num_feature_axes - 1)
    shapes = [jax.eval_shape(lambda i=i: module.initialize_carry(
        jax.random.key(0), (1, *spatial, i))) for i in (1, 2)]
    return jax.tree.structure(shapes[0]) != jax.tree.structure(shapes[1]) or any(
        (a.shape, a.dtype) != (b.shape, b.dtype)
        for a, b in zip(jax.tree.leaves(shapes[0]), jax.tree.leaves(shapes[1])))


def _module_repr(module: Any) -> str:
    """``LSTMCell(features=6)``: a linen module with the fields set off their defaults."""
    fields = []
    for field in dataclasses.fields(module):
        if field.name in ("parent", "name") or not field.init:
            continue
        value = getattr(module, field.name)
        if field.default is dataclasses.MISSING or not _same(value, field.default):
            fields.append(f"{field.name}={_short(value)}")
    return f"{type(module).__name__}({', '.join(fields)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except (TypeError, ValueError):  # arrays and the like: only identity counts
        return False


def _short(value: Any) -> str:
    return getattr(value, "__name__", None) or repr(value)

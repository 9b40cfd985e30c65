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
from lstm_jax.cells import (
    KINDS, Cell, ConvLSTMParams, GRUParams, LSTMParams, LSTMState, MGUParams, SimpleParams,
    conv_lstm, gru, lstm, mgu, simple,
)

__all__ = ["FlaxCell", "carry_from_flax", "carry_to_flax", "flax_cell", "from_flax", "to_flax"]

# Per flax cell kind: (name, reads "x" or "h", has a bias), in our gate order.
_LSTM_LAYOUT = tuple((f"i{g}", "x", False) for g in "ifgo") + tuple(
    (f"h{g}", "h", True) for g in "ifgo"
)
_GRU_LAYOUT = tuple((f"i{g}", "x", True) for g in "rzn") + (
    ("hr", "h", False),
    ("hz", "h", False),
    ("hn", "h", True),
)
_SIMPLE_LAYOUT = (("i", "x", True), ("h", "h", False))
_MGU_LAYOUT = (("if", "x", True), ("in", "x", True), ("hf", "h", False), ("hn", "h", True))
# without its reset gate, flax's MGU has no bias on "hn" (it would add to "in"'s)
_MGU_NO_RESET_LAYOUT = _MGU_LAYOUT[:3] + (("hn", "h", False),)
# ConvLSTMCell: two Conv entries of 4H outputs each, split as (i, g, f, o); no bias
# without use_bias
_CONV_LSTM_LAYOUT = (("ih", "x", True), ("hh", "h", True))
_CONV_LSTM_NO_BIAS_LAYOUT = (("ih", "x", False), ("hh", "h", False))
_FLAX_CONV_GATES = "igfo"


def _flax_kinds() -> dict[type, tuple[str, tuple]]:
    import flax.linen as nn

    return {
        nn.LSTMCell: ("lstm", _LSTM_LAYOUT),
        nn.OptimizedLSTMCell: ("lstm", _LSTM_LAYOUT),
        nn.GRUCell: ("gru", _GRU_LAYOUT),
        nn.SimpleCell: ("simple", _SIMPLE_LAYOUT),
        nn.MGUCell: ("mgu", _MGU_LAYOUT),
        nn.ConvLSTMCell: ("conv_lstm", _CONV_LSTM_LAYOUT),
    }


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
    kind, layout = kinds[type(flax_cell)]
    if kind == "simple" and flax_cell.residual:
        raise ValueError(
            "nn.SimpleCell(residual=True) adds h_{t-1} before the activation; lstm_jax's "
            "simple cell has no residual connection"
        )
    if kind == "mgu" and not flax_cell.reset_gate:
        layout = _MGU_NO_RESET_LAYOUT
    H = flax_cell.features
    if kind == "conv_lstm":
        return _conv_lstm_from_flax(flax_cell, _unwrap_variables(flax_params, cell_name))
    tree = _read_flax_params(_unwrap_variables(flax_params, cell_name), layout, H, cell_name)
    dtypes = dict(param_dtype=flax_cell.param_dtype, dtype=flax_cell.dtype)
    if kind == "lstm":
        cell = lstm(
            H,
            init="flax",
            forget_bias=0.0,
            activation=flax_cell.activation_fn,
            gate_activation=flax_cell.gate_fn,
            **dtypes,
        )
        params = LSTMParams(
            w_ih=_concat(tree[f"i{g}"][0] for g in "ifgo"),
            w_hh=_concat(tree[f"h{g}"][0] for g in "ifgo"),
            b=_concat(tree[f"h{g}"][1] for g in "ifgo"),
            w_hr=None,
            peephole=None,
            layer_norm=None,
        )
    elif kind == "gru":
        cell = gru(
            H,
            init="flax",
            activation=flax_cell.activation_fn,
            gate_activation=flax_cell.gate_fn,
            **dtypes,
        )
        params = GRUParams(
            w_ih=_concat(tree[f"i{g}"][0] for g in "rzn"),
            w_hh=_concat(tree[f"h{g}"][0] for g in "rzn"),
            b=_concat(tree[f"i{g}"][1] for g in "rzn"),
            b_hn=jnp.asarray(tree["hn"][1]),
        )
    elif kind == "mgu":
        cell = mgu(
            H,
            reset_gate=flax_cell.reset_gate,
            init="flax",
            activation=flax_cell.activation_fn,
            gate_activation=flax_cell.gate_fn,
            **dtypes,
        )
        params = MGUParams(
            w_ih=_concat(tree[f"i{g}"][0] for g in "fn"),
            w_hh=_concat(tree[f"h{g}"][0] for g in "fn"),
            b=_concat(tree[f"i{g}"][1] for g in "fn"),
            b_hn=jnp.asarray(tree["hn"][1]) if flax_cell.reset_gate else None,
        )
    else:
        cell = simple(H, init="flax", activation=flax_cell.activation_fn, **dtypes)
        params = SimpleParams(
            w_ih=jnp.asarray(tree["i"][0]),
            w_hh=jnp.asarray(tree["h"][0]),
            b=jnp.asarray(tree["i"][1]),
        )
    return cell, params


def _check_cell(cell: Any, name: str = "cell") -> str:
    if not isinstance(cell, Cell):
        raise TypeError(f"`{name}` must be a Cell such as lj.lstm(...), got {type(cell).__name__}")
    kind = cell.config.kind
    supported = {kind for kind, _ in _flax_kinds().values()}
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
    import flax.linen as nn

    kind = _check_cell(cell)
    _checks.params_type(params, KINDS[kind].params, kind)
    if kind == "conv_lstm":
        return _conv_lstm_to_flax(cell, params)
    config = cell.config
    H = config.hidden_size
    dtypes = dict(dtype=config.dtype, param_dtype=config.param_dtype)

    if kind == "lstm":
        reasons = _lstm_unsupported(config, params)
        if reasons:
            raise ValueError(
                "flax's LSTMCell cannot express an LSTM with " + "; ".join(reasons)
            )
        flax_cell = nn.OptimizedLSTMCell(
            features=H, gate_fn=config.gate_activation, activation_fn=config.activation, **dtypes
        )
        gates, n = "ifgo", 4
    elif kind == "gru":
        if not config.bias or params.b is None or params.b_hn is None:
            raise ValueError(
                "flax's GRUCell cannot express a GRU with bias=False (its 'ir', 'iz', "
                "'in' and 'hn' entries always have a bias)"
            )
        flax_cell = nn.GRUCell(
            features=H, gate_fn=config.gate_activation, activation_fn=config.activation, **dtypes
        )
        gates, n = "rzn", 3
    elif kind == "mgu":
        if not config.bias or params.b is None or (config.reset_gate and params.b_hn is None):
            raise ValueError(
                "flax's MGUCell cannot express an MGU with bias=False (its 'if' and 'in' "
                "entries, and 'hn' with reset_gate, always have a bias)"
            )
        flax_cell = nn.MGUCell(
            features=H, gate_fn=config.gate_activation, activation_fn=config.activation,
            reset_gate=config.reset_gate, **dtypes
        )
        gates, n = "fn", 2
    else:
        if not config.bias or params.b is None:
            raise ValueError(
                "flax's SimpleCell cannot express an Elman cell with bias=False (its "
                "'i' entry always has a bias)"
            )
        flax_cell = nn.SimpleCell(features=H, activation_fn=config.activation, **dtypes)
        gates, n = "", 1

    w_ih = params.w_ih
    if len(_shape(w_ih)) != 2:
        raise ValueError(f"`params.w_ih` must have shape (I, {n * H}), got {_shape(w_ih)}")
    input_size = _shape(w_ih)[0]
    _check_shape("w_ih", w_ih, (input_size, n * H))
    _check_shape("w_hh", params.w_hh, (H, n * H))
    _check_shape("b", params.b, (n * H,))

    if kind == "simple":
        tree = {"i": {"kernel": w_ih, "bias": params.b}, "h": {"kernel": params.w_hh}}
        return flax_cell, {"params": tree}

    w_ih_blocks = _blocks(w_ih, n, H)
    w_hh_blocks = _blocks(params.w_hh, n, H)
    b_blocks = _blocks(params.b, n, H)
    tree = {}
    for g, wi, wh, b in zip(gates, w_ih_blocks, w_hh_blocks, b_blocks):
        if kind == "lstm":  # the bias sits on the recurrent entries
            tree[f"i{g}"] = {"kernel": wi}
            tree[f"h{g}"] = {"kernel": wh, "bias": b}
        else:  # GRU and MGU: on the input entries, plus b_hn on "hn"
            tree[f"i{g}"] = {"kernel": wi, "bias": b}
            tree[f"h{g}"] = {"kernel": wh}
    if kind == "gru" or (kind == "mgu" and config.reset_gate):
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


def _reorder(w: Any, H: int, source: str, target: str) -> jax.Array:
    """The 4 gate blocks of w (..., 4H) from the order ``source`` to ``target``."""
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
    layout = _CONV_LSTM_LAYOUT if flax_cell.use_bias else _CONV_LSTM_NO_BIAS_LAYOUT
    entries = _read_flax_params(tree, layout, H, "ConvLSTMCell", window=window, width=4 * H)
    (w_ih, b_ih), (w_hh, b_hh) = entries["ih"], entries["hh"]
    b = _forget_one(H, jnp.result_type(w_ih))
    if flax_cell.use_bias:
        b = b + _reorder(jnp.asarray(b_ih) + jnp.asarray(b_hh), H, _FLAX_CONV_GATES, "ifgo")
    cell = conv_lstm(H, window, init="flax", dtype=flax_cell.dtype,
                     param_dtype=flax_cell.param_dtype)
    params = ConvLSTMParams(w_ih=_reorder(w_ih, H, _FLAX_CONV_GATES, "ifgo"),
                            w_hh=_reorder(w_hh, H, _FLAX_CONV_GATES, "ifgo"), b=b)
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
    tree = {
        "ih": {"kernel": _reorder(w_ih, H, "ifgo", _FLAX_CONV_GATES),
               "bias": _reorder(b, H, "ifgo", _FLAX_CONV_GATES)},
        "hh": {"kernel": _reorder(params.w_hh, H, "ifgo", _FLAX_CONV_GATES),
               "bias": jnp.zeros_like(b)},
    }
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

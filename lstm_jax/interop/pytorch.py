"""PyTorch interop: ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and their cells to and from lstm_jax.

One direction of one layer maps as follows (torch keeps weights as (out, in), we keep
them as (in, out) for ``x @ w``; gate order is PyTorch's in both):

=============  ==========================================================
lstm_jax       torch
=============  ==========================================================
``w_ih``       ``weight_ih.T``   (I, G)
``w_hh``       ``weight_hh.T``   (P, G)
``w_hr``       ``weight_hr.T``   (H, P), LSTM with ``proj_size`` only
``b``          ``bias_ih + bias_hh``; GRU: ``bias_ih + (bias_hr, bias_hz, 0)``
``b_hn``       GRU only: ``bias_hh[2H:]``, the bias inside the reset product
=============  ==========================================================

Exported modules hold the whole bias in ``bias_ih`` and zeros in ``bias_hh`` (GRU:
``bias_hh = (0, 0, b_hn)``), so a round trip through torch gives back the same params.
A torch module with L layers and D directions becomes ``lj.stack`` of L layers, each
``lj.rnn`` (D = 1) or ``lj.bidirectional`` (D = 2), with ``time_major = not
batch_first``. Its ``h_0``/``h_n`` of shape (L*D, B, P) are stacked layer-major, then
direction; ``carry_from_torch`` and ``carry_to_torch`` convert them.

torch is imported only when a function here needs it.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks, layers
from lstm_jax.cells import KINDS, Cell, Layer, LSTMState
from lstm_jax.cells.base import ACTIVATIONS
from lstm_jax.layers import bidirectional, stack
from lstm_jax.runner import rnn

__all__ = ["carry_from_torch", "carry_to_torch", "from_torch", "to_torch"]

_LAYER_CLASSES = {"lstm": "LSTM", "gru": "GRU", "simple": "RNN"}
_CELL_CLASSES = {"lstm": "LSTMCell", "gru": "GRUCell", "simple": "RNNCell"}
_SUPPORTED = "torch.nn.LSTM, GRU, RNN, LSTMCell, GRUCell or RNNCell"


def _import_torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - torch is in the test environment
        from lstm_jax._extras import pip_install

        raise ImportError(f"lstm_jax.interop.pytorch needs PyTorch: {pip_install('torch')}") from e
    return torch


# --- arrays ---------------------------------------------------------------------------


def _jax_from_tensor(t) -> jax.Array:
    """A copy of a torch tensor as a jnp array of the same dtype (bfloat16 included)."""
    torch = _import_torch()
    t = t.detach().cpu()
    dtype = jnp.dtype(str(t.dtype).removeprefix("torch."))
    host = t.float() if t.dtype == torch.bfloat16 else t
    return jnp.asarray(np.array(host.numpy()), dtype)


def _tensor_from_jax(a):
    """A copy of a jnp array as a torch tensor of the same dtype."""
    torch = _import_torch()
    a = jnp.asarray(a)
    host_dtype = np.float32 if a.dtype == jnp.bfloat16 else a.dtype
    return torch.from_numpy(np.array(a, host_dtype)).to(getattr(torch, a.dtype.name))


def _as_jax(name: str, x) -> jax.Array:
    """A torch tensor, NumPy or JAX array as a floating jnp array."""
    torch = sys.modules.get("torch")
    x = _jax_from_tensor(x) if torch is not None and isinstance(x, torch.Tensor) else jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating-point dtype, got {x.dtype}")
    return x


# --- one direction of one layer: the weight layout, each way --------------------------


def _params_from_torch(kind: str, tensors: dict) -> Any:
    """torch tensors of one direction, named without suffix, -> our params."""
    torch = _import_torch()
    w_ih, w_hh = _jax_from_tensor(tensors["weight_ih"].T), _jax_from_tensor(tensors["weight_hh"].T)
    b = b_hn = None
    if "bias_ih" in tensors:
        with torch.no_grad():
            b_ih, b_hh = tensors["bias_ih"], tensors["bias_hh"]
            if kind == "gru":  # b_hn stays apart: it sits inside the reset product
                n = 2 * b_hh.shape[0] // 3
                b_hn = _jax_from_tensor(b_hh[n:])
                b_hh = torch.cat([b_hh[:n], torch.zeros_like(b_hh[n:])])
            b = _jax_from_tensor(b_ih + b_hh)
    if kind == "lstm":
        w_hr = _jax_from_tensor(tensors["weight_hr"].T) if "weight_hr" in tensors else None
        return KINDS[kind].params(w_ih, w_hh, b, w_hr, peephole=None, layer_norm=None)
    if kind == "gru":
        return KINDS[kind].params(w_ih, w_hh, b, b_hn)
    return KINDS[kind].params(w_ih, w_hh, b)


def _params_to_torch(kind: str, params) -> dict:
    """Our params of one direction -> torch tensors named without suffix.

    The whole bias goes into ``bias_ih``; ``bias_hh`` is zero but for a GRU's b_hn.
    """
    arrays = {"weight_ih": params.w_ih.T, "weight_hh": params.w_hh.T}
    if kind == "gru" and (params.b is None) != (params.b_hn is None):
        raise ValueError("GRUParams must have both `b` and `b_hn` or neither for torch")
    if params.b is not None:
        arrays["bias_ih"] = params.b
        b_hh = jnp.zeros_like(params.b)
        if kind == "gru":
            b_hh = b_hh.at[2 * b_hh.shape[0] // 3 :].set(params.b_hn)
        arrays["bias_hh"] = b_hh
    if kind == "lstm" and params.w_hr is not None:
        arrays["weight_hr"] = params.w_hr.T
    return {name: _tensor_from_jax(a) for name, a in arrays.items()}


def _torch_tensors(module, suffix: str) -> dict:
    """The parameters of one direction of ``module``, named without ``suffix``."""
    named = dict(module.named_parameters())
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    return {name: named[name + suffix] for name in names if name + suffix in named}


def _load(module, suffix: str, tensors: dict, where: str) -> None:
    """Copy one direction's tensors into ``module``, checking names and shapes."""
    torch = _import_torch()
    targets = _torch_tensors(module, suffix)
    if set(targets) != set(tensors):
        raise ValueError(
            f"params of {where} give torch parameters {sorted(tensors)} but the module "
            f"expects {sorted(targets)}"
        )
    with torch.no_grad():
        for name, value in tensors.items():
            if tuple(value.shape) != tuple(targets[name].shape):
                raise ValueError(
                    f"params of {where}: `{name}` must have shape "
                    f"{tuple(targets[name].shape)} (torch layout), got {tuple(value.shape)}"
                )
            targets[name].copy_(value)


def _suffix(layer_index: int, direction: int) -> str:
    return f"_l{layer_index}" + ("_reverse" if direction else "")


# --- torch modules -> lstm_jax ---------------------------------------------------------


def _torch_kind(module) -> tuple[str, bool]:
    """(cell kind, is a single cell) of a supported torch module, else TypeError."""
    nn = _import_torch().nn
    kinds = [
        (nn.LSTM, "lstm", False), (nn.GRU, "gru", False), (nn.RNN, "simple", False),
        (nn.LSTMCell, "lstm", True), (nn.GRUCell, "gru", True), (nn.RNNCell, "simple", True),
    ]
    for cls, kind, is_cell in kinds:
        if isinstance(module, cls):
            return kind, is_cell
    raise TypeError(f"from_torch supports {_SUPPORTED}, got {type(module).__name__}")


def _module_dtype(module):
    """The dtype of a torch module's parameters, as a NumPy dtype."""
    return jnp.dtype(str(next(module.parameters()).dtype).removeprefix("torch."))


def _cell_for(module, kind: str, dtype) -> Cell:
    """Our cell with ``module``'s options, initialising like torch when re-initialised."""
    options = dict(bias=bool(module.bias), init="pytorch", param_dtype=dtype)
    if kind == "lstm":
        options.update(proj_size=getattr(module, "proj_size", 0) or None, forget_bias=0.0)
    if kind == "simple":
        options.update(activation=module.nonlinearity)
    return KINDS[kind].factory(module.hidden_size, **options)


def from_torch(module) -> tuple[Layer | Cell, Any]:
    """Import a PyTorch recurrent module as an lstm_jax layer (or cell) and its params.

    Args:
      module: ``torch.nn.LSTM``, ``GRU`` or ``RNN`` (tanh or relu), with any
        ``num_layers``, ``bidirectional``, ``proj_size`` (LSTM), ``batch_first``,
        ``bias`` and ``dropout``; or ``torch.nn.LSTMCell``, ``GRUCell``, ``RNNCell``.

    Returns:
      ``(layer, params)`` for a sequence module: ``layer`` is always ``lj.stack`` of
      ``num_layers`` layers, each ``lj.rnn(cell, time_major=not batch_first)`` or
      ``lj.bidirectional`` of it, with ``dropout=module.dropout`` (applied only when
      ``apply`` gets a ``key``, as torch applies it only in training mode); params are
      a tuple with one entry per layer (``Directions`` when bidirectional).
      ``(cell, params)`` for a cell module. Params are copies, in the module's dtype.
      Cells use ``init="pytorch"`` (and ``forget_bias=0.0``), so re-initialising the
      layer draws weights like torch does.

    Raises:
      TypeError: for any other module.

    >>> import numpy as np, torch, jax.numpy as jnp, lstm_jax as lj
    >>> _ = torch.manual_seed(0)
    >>> module = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)
    >>> layer, params = lj.interop.from_torch(module)
    >>> xs = torch.randn(3, 7, 5)
    >>> carry, ys = layer.apply(params, jnp.asarray(xs.numpy()))
    >>> ys_torch, (h_n, c_n) = module(xs)
    >>> ys.shape, bool(np.allclose(ys, ys_torch.detach().numpy(), atol=1e-5))
    ((3, 7, 12), True)
    >>> h, c = lj.interop.carry_to_torch(carry)
    >>> h.shape, bool(np.allclose(c, c_n.detach().numpy(), atol=1e-5))
    ((4, 3, 6), True)
    """
    kind, is_cell = _torch_kind(module)
    cell = _cell_for(module, kind, _module_dtype(module))
    if is_cell:
        return cell, _params_from_torch(kind, _torch_tensors(module, ""))
    one_layer = rnn(cell, time_major=not module.batch_first)
    D = 2 if module.bidirectional else 1
    if D == 2:
        one_layer = bidirectional(one_layer)
    layer = stack([one_layer] * module.num_layers, dropout=float(module.dropout))
    per_layer = [
        [_params_from_torch(kind, _torch_tensors(module, _suffix(n, d))) for d in range(D)]
        for n in range(module.num_layers)
    ]
    return layer, layers.join(layer, per_layer)


# --- the layers of an lstm_jax model, in torch's numbering -----------------------------


def _torch_layers(layer: Layer) -> list[tuple[Layer, ...]]:
    """The ``rnn`` layers of ``layer`` as torch numbers them: per layer, its directions."""
    rows = layers.levels(layer)
    for n, (entry, directions) in enumerate(zip(layers.rows(layer), rows)):
        if any(d.cell is None for d in directions):
            kinds = [getattr(d.config, "kind", type(d.config).__name__) for d in directions]
            raise ValueError(
                f"layer {n} is a {getattr(entry.config, 'kind', '?')!r} layer of {kinds}; "
                "torch layers are lj.rnn or lj.bidirectional of lj.rnn"
            )
    return rows


# --- lstm_jax -> torch modules ---------------------------------------------------------


def _name_of(fn, names: dict) -> str | None:
    """The key of ``fn`` in ``names`` (by identity), or None."""
    return next((name for name, f in names.items() if f is fn), None)


def _cell_options(cell: Cell) -> dict:
    """What torch needs to know about ``cell``; ValueError for what it cannot express."""
    c, kind = cell.config, cell.config.kind
    if kind not in _LAYER_CLASSES:
        raise ValueError(f"torch has no counterpart of a {kind!r} cell; supported: "
                         f"{sorted(_LAYER_CLASSES)}")
    if kind == "lstm":
        for option in ("peephole", "layer_norm", "coupled"):
            if getattr(c, option):
                raise ValueError(f"torch has no LSTM with {option}=True")
        if c.gate_changes:
            raise ValueError(f"torch has no LSTM with {c.gate_changes[0]}")
    if kind in ("lstm", "gru"):
        if c.activation is not jnp.tanh or c.gate_activation is not jax.nn.sigmoid:
            raise ValueError(
                f"torch's {kind.upper()} uses activation=tanh and gate_activation=sigmoid, "
                f"got {c.activation!r} and {c.gate_activation!r}"
            )
        if kind == "lstm" and (c.candidate_activation is not jnp.tanh
                               or c.cell_activation is not jnp.tanh):
            raise ValueError(
                "torch's LSTM uses tanh for the candidate and the cell output, got "
                f"candidate_activation={c.candidate_activation!r} and "
                f"cell_activation={c.cell_activation!r}"
            )
        nonlinearity = None
    else:
        nonlinearity = _name_of(c.activation, {k: ACTIVATIONS[k] for k in ("tanh", "relu")})
        if nonlinearity is None:
            raise ValueError(
                f"torch's RNN supports activation 'tanh' or 'relu', got {c.activation!r}"
            )
    proj_size = getattr(c, "proj_size", None)
    if proj_size is not None and proj_size >= c.hidden_size:
        raise ValueError(f"torch's LSTM needs proj_size < hidden_size, got proj_size={proj_size} "
                         f"and hidden_size={c.hidden_size}")
    return dict(kind=kind, hidden_size=c.hidden_size, proj_size=proj_size, bias=c.bias,
                nonlinearity=nonlinearity)


def _first_difference(a: dict, b: dict) -> str:
    """The first option on which ``a`` and ``b`` disagree, for an error message."""
    key = next(k for k in a if a[k] != b[k])
    return f"{key}={a[key]!r} vs {key}={b[key]!r}"


def _module_options(layer: Layer) -> dict:
    """The torch module options of ``layer``; ValueError for what torch cannot express."""
    rows = _torch_layers(layer)
    first = None
    for n, (entry, directions) in enumerate(zip(layers.rows(layer), rows)):
        merge = getattr(entry.config, "merge", "concat")
        if merge != "concat":
            raise ValueError(
                f"layer {n} merges its directions with merge={merge!r}; "
                "torch concatenates them (merge='concat')"
            )
        for d in directions:
            rc = d.config
            for option in ("input_dropout", "recurrent_dropout", "weight_drop"):
                rate = getattr(rc, option)
                if rate > 0:
                    raise ValueError(f"torch has no {option}; layer {n} has {option}={rate}")
            if any(p > 0 for p in jax.tree.leaves(rc.zoneout)):
                raise ValueError(f"torch has no zoneout; layer {n} has zoneout={rc.zoneout}")
            if rc.learn_initial_carry:
                raise ValueError(f"torch has no learnable initial carry; layer {n} has "
                                 "learn_initial_carry=True (export it with False and pass "
                                 "the learned h_0/c_0 to the module yourself)")
        options = [_cell_options(d.cell) for d in directions]
        if len(options) == 2 and options[0] != options[1]:
            raise ValueError(
                f"the forward and backward directions of layer {n} differ "
                f"({_first_difference(*options)}); torch uses one config for both"
            )
        this = dict(options[0], bidirectional=len(directions) == 2, time_major=entry.time_major)
        if first is None:
            first = this
        elif this != first:
            raise ValueError(
                f"layer {n} differs from layer 0 ({_first_difference(this, first)}); "
                f"a torch module uses one config for all its layers"
            )
    dropout = getattr(layer.config, "dropout", 0.0)  # a stack's, between its layers
    return dict(first, num_layers=len(rows), dropout=dropout)


def _params_dtype(params):
    """The one dtype of all leaves of ``params`` (a torch module has one dtype)."""
    dtypes = {jnp.result_type(a) for a in jax.tree.leaves(params)}
    if len(dtypes) != 1:
        raise ValueError(f"`params` must share one dtype for torch, got {sorted(map(str, dtypes))}")
    return dtypes.pop()


def to_torch(layer_or_cell: Layer | Cell, params):
    """Export an lstm_jax layer (or cell) and its params as a PyTorch module.

    Args:
      layer_or_cell: ``lj.stack`` of layers that are all ``lj.rnn`` or all
        ``lj.bidirectional`` of ``lj.rnn``, with one cell config throughout; or one such
        layer alone (a one-layer module); or a ``Cell``.
      params: the matching params (a tuple per layer for a stack).

    Returns:
      ``torch.nn.LSTM``, ``GRU`` or ``RNN`` with ``batch_first = not time_major`` and
      the stack's ``dropout`` (or ``LSTMCell``/``GRUCell``/``RNNCell`` for a cell),
      in the params' dtype. It is returned in eval mode, so it computes what
      ``apply(..., key=None)`` does; call ``.train()`` to enable its dropout. The
      compute ``dtype`` policy of the cells is not exported: torch computes in the
      params' dtype.

    Raises:
      ValueError: for what torch cannot express: peepholes, layer norm, coupled gates,
        a gate switched off, gate recurrence, other activations, layers or directions with different cell kinds, sizes or
        bias settings, ``merge`` other than ``"concat"``, mixed layouts, input or
        recurrent dropout, zoneout, an LSTM cell with ``proj_size``; params whose
        shapes or dtypes do not fit.
      TypeError: for anything but a Layer or Cell, or params of another cell kind.

    >>> import jax, numpy as np, torch, lstm_jax as lj
    >>> layer = lj.bidirectional(lj.gru(6))
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> module = lj.interop.to_torch(layer, params)
    >>> module
    GRU(5, 6, batch_first=True, bidirectional=True)
    >>> xs = np.ones((3, 7, 5), np.float32)
    >>> ys_torch, h_n = module(torch.from_numpy(xs))
    >>> carry, ys = layer.apply(params, xs)
    >>> bool(np.allclose(ys, ys_torch.detach().numpy(), atol=1e-5))
    True
    """
    torch = _import_torch()
    if isinstance(layer_or_cell, Cell):
        return _cell_to_torch(layer_or_cell, params)
    if not isinstance(layer_or_cell, Layer):
        raise TypeError(
            f"to_torch needs an lstm_jax Layer or Cell, got {type(layer_or_cell).__name__}"
        )
    spec = _module_options(layer_or_cell)
    kind, per_layer = spec["kind"], layers.split(layer_or_cell, params)
    for n, directions in enumerate(per_layer):
        for p in directions:
            _checks.params_type(p, KINDS[kind].params, kind, where=f"layer {n}")
    options = dict(
        num_layers=spec["num_layers"], bias=spec["bias"], batch_first=not spec["time_major"],
        dropout=spec["dropout"], bidirectional=spec["bidirectional"],
        dtype=getattr(torch, _params_dtype(params).name),
    )
    if kind == "lstm":
        options["proj_size"] = spec["proj_size"] or 0
    if kind == "simple":
        options["nonlinearity"] = spec["nonlinearity"]
    cls = getattr(torch.nn, _LAYER_CLASSES[kind])
    module = cls(per_layer[0][0].w_ih.shape[0], spec["hidden_size"], **options)
    for n, directions in enumerate(per_layer):
        for d, p in enumerate(directions):
            where = f"layer {n}" + (f" direction {d}" if len(directions) == 2 else "")
            _load(module, _suffix(n, d), _params_to_torch(kind, p), where)
    return module.eval()


def _cell_to_torch(cell: Cell, params):
    """``to_torch`` for a single cell."""
    torch = _import_torch()
    options = _cell_options(cell)
    kind = options["kind"]
    if options["proj_size"]:
        raise ValueError("torch.nn.LSTMCell has no proj_size; export the cell as lj.rnn(cell)")
    _checks.params_type(params, KINDS[kind].params, kind, where="the cell")
    extra = {"nonlinearity": options["nonlinearity"]} if kind == "simple" else {}
    dtype = getattr(torch, _params_dtype(params).name)
    cls = getattr(torch.nn, _CELL_CLASSES[kind])
    module = cls(params.w_ih.shape[0], options["hidden_size"], bias=options["bias"], dtype=dtype,
                 **extra)
    _load(module, "", _params_to_torch(kind, params), "the cell")
    return module.eval()


# --- carries --------------------------------------------------------------------------


def carry_from_torch(layer: Layer, h0, c0=None):
    """Turn torch's initial state ``h_0`` (and ``c_0``) into the carry ``layer.apply`` takes.

    Args:
      layer: a layer from ``from_torch`` (or any stack of ``lj.rnn`` /
        ``lj.bidirectional`` layers, or one such layer).
      h0: (L*D, B, P) or unbatched (L*D, P) torch tensor or array, rows ordered
        layer-major, then direction, as torch stacks them.
      c0: (L*D, B, H) or (L*D, H), for LSTM layers only.

    Returns:
      A tuple with one carry per layer (for a stack), ``Directions`` for bidirectional
      layers, ``LSTMState(h (B, P), c (B, H))`` for LSTM cells and h (B, H) otherwise.

    Raises:
      ValueError: when a shape does not fit the layer, ``c0`` is missing for an LSTM
        or given for a GRU/RNN.
      TypeError: when ``layer`` is not a Layer or a state is not floating-point.

    >>> import numpy as np, torch, jax.numpy as jnp, lstm_jax as lj
    >>> module = torch.nn.LSTM(5, 6, num_layers=2, proj_size=4)
    >>> layer, params = lj.interop.from_torch(module)
    >>> h0, c0 = torch.randn(2, 3, 4), torch.randn(2, 3, 6)
    >>> carry = lj.interop.carry_from_torch(layer, h0, c0)
    >>> carry[1].h.shape, carry[1].c.shape
    ((3, 4), (3, 6))
    >>> xs = torch.randn(7, 3, 5)
    >>> carry, ys = layer.apply(params, jnp.asarray(xs.numpy()), carry=carry)
    >>> ys_torch, (h_n, c_n) = module(xs, (h0, c0))
    >>> h, c = lj.interop.carry_to_torch(carry)
    >>> bool(np.allclose(h, h_n.detach().numpy(), atol=1e-5))
    True
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"`layer` must be an lstm_jax Layer, got {type(layer).__name__}")
    cells = [[d.cell for d in dirs] for dirs in _torch_layers(layer)]
    flat = [cell for dirs in cells for cell in dirs]
    is_lstm = {cell.config.kind == "lstm" for cell in flat}
    h0 = _as_jax("h0", h0)
    if c0 is None and True in is_lstm:
        raise ValueError("`c0` is required for an LSTM layer, got None")
    if c0 is not None and False in is_lstm:
        raise ValueError("`c0` is only for LSTM layers; GRU and RNN layers take `h0` only")
    _check_state_shape("h0", h0, len(flat), {cell.output_size for cell in flat}, "P")
    if c0 is not None:
        c0 = _as_jax("c0", c0)
        _check_state_shape("c0", c0, len(flat), {cell.hidden_size for cell in flat}, "H")
        if c0.shape[1:-1] != h0.shape[1:-1]:
            raise ValueError(
                f"`c0` has batch shape {c0.shape[1:-1]} but `h0` has {h0.shape[1:-1]}"
            )
    states = [h0[k] if c0 is None else LSTMState(h0[k], c0[k]) for k in range(len(flat))]
    starts = np.cumsum([0] + [len(dirs) for dirs in cells])
    return layers.join(layer, [states[a:b] for a, b in zip(starts[:-1], starts[1:])])


def _check_state_shape(name: str, x, rows: int, sizes: set, letter: str) -> None:
    """``x`` must be (rows, B, size) or (rows, size) for the one size in ``sizes``."""
    if len(sizes) != 1:
        raise ValueError(
            f"`{name}` stacks one size per row, but the layer's directions have sizes "
            f"{sorted(sizes)}"
        )
    size = sizes.pop()
    if x.ndim not in (2, 3) or x.shape[0] != rows or x.shape[-1] != size:
        raise ValueError(
            f"`{name}` must have shape (L*D={rows}, B, {letter}={size}) or "
            f"({rows}, {size}), got {tuple(x.shape)}"
        )


def carry_to_torch(carry):
    """Stack a layer's final carry as torch's ``h_n`` (and ``c_n``).

    Args:
      carry: the carry returned by ``apply`` of a layer built like ``from_torch``'s
        (a tuple per layer, ``Directions`` for bidirectional layers).

    Returns:
      ``(h_n (L*D, B, P), c_n (L*D, B, H))`` for LSTM carries, ``h_n (L*D, B, H)``
      otherwise: jnp arrays, rows layer-major, then direction, as torch orders them.

    Raises:
      ValueError: for an empty carry, one mixing LSTM and other states, or states whose
        shapes differ.

    >>> import jax.numpy as jnp, lstm_jax as lj
    >>> carry = (lj.Directions(jnp.zeros((3, 6)), jnp.ones((3, 6))), jnp.full((3, 6), 2.0))
    >>> h_n = lj.interop.carry_to_torch(carry)
    >>> h_n.shape, h_n[:, 0, 0].tolist()
    ((3, 3, 6), [0.0, 1.0, 2.0])
    """
    states = jax.tree.leaves(carry, is_leaf=lambda x: isinstance(x, LSTMState))
    if not states:
        raise ValueError("`carry` holds no states")
    is_lstm = {isinstance(s, LSTMState) for s in states}
    if len(is_lstm) != 1:
        raise ValueError("`carry` mixes LSTMState and plain hidden states; torch stacks one kind")
    if is_lstm.pop():
        return _stack_rows("h", [s.h for s in states]), _stack_rows("c", [s.c for s in states])
    return _stack_rows("h", states)


def _stack_rows(name: str, rows: list) -> jax.Array:
    shapes = {tuple(np.shape(r)) for r in rows}
    if len(shapes) != 1:
        raise ValueError(f"the {name} states of `carry` must share one shape, got {sorted(shapes)}")
    return jnp.stack([jnp.asarray(r) for r in rows])

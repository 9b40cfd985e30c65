"""Runners: a cell scanned over whole sequences with ``jax.lax.scan``.

``lj.rnn(cell).apply(params, xs)`` replaces this Python loop (batch-major xs)::

    carry = cell.initial_carry(params, xs.shape[:-2])
    ys = []
    for t in range(xs.shape[-2]):
        carry, y_t = cell.step(params, carry, xs[..., t, :])
        ys.append(y_t)
    ys = jnp.stack(ys, axis=-2)

adding what a training loop needs around it: padding masks, reversal within each
sequence, carry in and out, a hoisted input projection, unrolling, rematerialisation,
variational dropout, zoneout and per-step gate activations.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax._fused import fused_scan, scan
from lstm_jax.cells.base import Cell, hidden

Array = jax.Array


class Layer(NamedTuple):
    """A sequence layer as pure functions, built by ``rnn``, ``bidirectional``, ``stack``.

    Attributes:
      init: ``(key, input_size) -> params``.
      apply: ``(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
        return_gates=False) -> (carry, ys)``, or ``(carry, ys, gates)`` with
        ``return_gates=True``. xs is (B, T, I) (or (T, B, I) when time-major, or
        (T, I) unbatched) and ys (B, T, output_size).
      initial_carry: ``(params, batch_shape=()) -> carry`` of zeros.
      output_size: the last dimension of ys.
      config: the frozen options the layer was built with.
    """

    init: Callable[..., Any]
    apply: Callable[..., Any]
    initial_carry: Callable[..., Any]
    output_size: int
    config: Any

    @property
    def time_major(self) -> bool:
        return self.config.time_major


@dataclasses.dataclass(frozen=True)
class RNNConfig:
    """Options of ``rnn``; see its docstring."""

    cell: Cell
    unroll: int = 1
    remat: bool | int = False
    time_major: bool = False
    hoist: bool | None = None
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: Any = 0.0
    fused_backward: bool = True
    kind = "rnn"


def rnn(
    cell: Cell,
    *,
    unroll: int = 1,
    remat: bool | int = False,
    time_major: bool = False,
    hoist: bool | None = None,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: Any = 0.0,
    fused_backward: bool = True,
) -> Layer:
    """Run ``cell`` over whole sequences.

    Args:
      cell: a ``Cell`` from ``lj.lstm``, ``lj.gru``, ``lj.simple``.
      unroll: time steps per iteration of the compiled loop (``lax.scan``'s unroll);
        results are identical for every value.
      remat: bound activation memory for long sequences. True splits the T steps into
        chunks of ceil(sqrt(T)) and rematerialises each chunk in the backward pass, so
        training stores about 2·sqrt(T) steps of activations instead of T; an int
        sets the chunk length.
      time_major: xs is (T, B, I) and ys (T, B, P) instead of (B, T, I), (B, T, P).
      hoist: compute the input projection x_t @ W_ih for all T steps as one GEMM
        before the loop, leaving only h_{t-1} @ W_hh inside it. None chooses per
        backend: on for GPU/TPU, off on CPU, where XLA runs the per-step form faster
        (see benchmarks/). Results agree to float rounding either way.
      input_dropout: variational dropout of x_t (Gal & Ghahramani, 2016): one mask per
        sequence, the same at every step. Active only when ``apply`` gets a ``key``.
      recurrent_dropout: variational dropout of h_{t-1} where it enters the recurrent
        matmul, one mask per sequence.
      zoneout: probability that a carry unit keeps its previous value at a step
        (Krueger et al., 2017). A float for every carry field, or rates shaped like the
        carry, e.g. ``lj.LSTMState(h=0.05, c=0.5)``. Without a key the expectation is
        used: carry = p·old + (1 - p)·new.
      fused_backward: differentiate the loop with a hand-written backward pass that
        forms the weight gradients as one GEMM over all steps after the backward scan
        (cuDNN's scheme) instead of two small GEMMs per step; the gate math itself is
        still differentiated by JAX. It applies without zoneout, ``remat`` and
        ``return_gates``; elsewhere plain autodiff is used. Forward-mode autodiff
        (``jax.jvp``, ``jax.jacfwd``) cannot pass its ``custom_vjp``: set False for it.

    Returns:
      A ``Layer``; ``apply(params, xs, *, seq_lengths=None, carry=None, reverse=False,
      key=None, return_gates=False)``:

      - ``seq_lengths`` (B,) int: positions ``t >= seq_lengths[b]`` are padding. Their
        outputs are 0, they never change the carry, and the returned carry is the one
        after step ``seq_lengths[b] - 1``.
      - ``carry``: the initial carry (zeros when None).
      - ``reverse``: run from the end; with ``seq_lengths`` each sequence is reversed
        within its own length (PyTorch's packed sequences), and ys is returned in the
        original order.
      - ``key``: randomness for dropout and zoneout; None means evaluation.
      - ``return_gates``: also return the cell's per-step activations (e.g.
        ``LSTMGates`` with fields (B, T, H)), zero at padding.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> layer = lj.rnn(lj.lstm(6))
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> xs = jnp.ones((3, 4, 5))
    >>> carry, ys = layer.apply(params, xs, seq_lengths=jnp.array([4, 2, 0]))
    >>> ys.shape, carry.h.shape
    ((3, 4, 6), (3, 6))
    >>> bool(jnp.all(ys[1, 2:] == 0)), bool(jnp.all(carry.h[2] == 0))
    (True, True)
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"`cell` must be a Cell such as lj.lstm(...), got {type(cell).__name__}")
    config = RNNConfig(
        cell=cell,
        unroll=_checks.positive_int("unroll", unroll),
        remat=remat if isinstance(remat, bool) else _checks.positive_int("remat", remat),
        time_major=bool(time_major),
        hoist=hoist,
        input_dropout=_checks.rate("input_dropout", input_dropout),
        recurrent_dropout=_checks.rate("recurrent_dropout", recurrent_dropout),
        zoneout=jax.tree.map(lambda p: _checks.rate("zoneout", p), zoneout),
        fused_backward=bool(fused_backward),
    )

    def apply(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
              return_gates=False):
        xs, batch_shape, lengths = check_sequence(
            xs, seq_lengths, config.time_major, cell_input_size(params)
        )
        if carry is None:
            carry = cell.initial_carry(params, batch_shape)
        else:
            _checks.carry_like(carry, cell.initial_carry(params, batch_shape))
        xs_T = xs if config.time_major else jnp.moveaxis(xs, -2, 0)  # (T, *batch, I)
        if reverse:
            xs_T = reverse_in_time(xs_T, lengths)
        carry, ys_T, gates_T = _scan_cell(config, params, xs_T, carry, lengths, key, return_gates)
        if reverse:
            ys_T, gates_T = jax.tree.map(lambda a: reverse_in_time(a, lengths), (ys_T, gates_T))
        ys, gates = jax.tree.map(
            lambda a: a if config.time_major else jnp.moveaxis(a, 0, -2), (ys_T, gates_T)
        )
        return (carry, ys, gates) if return_gates else (carry, ys)

    return Layer(cell.init, apply, cell.initial_carry, cell.output_size, config)


def cell_input_size(params) -> int:
    """I of a cell's params: every cell keeps its input kernel as ``w_ih`` (I, G)."""
    return params.w_ih.shape[0]


def check_sequence(xs, seq_lengths, time_major: bool, input_size: int):
    """Validate a layer's inputs; return (xs, batch_shape, seq_lengths or None)."""
    xs = _checks.float_array("xs", xs)
    layout = "(T, B, I)" if time_major else "(B, T, I)"
    if xs.ndim < 2:
        raise ValueError(f"`xs` must have shape {layout} or (T, I), got shape {tuple(xs.shape)}")
    _checks.input_size("xs", xs, input_size)
    if time_major:
        T, batch_shape = xs.shape[0], tuple(xs.shape[1:-1])
    else:
        T, batch_shape = xs.shape[-2], tuple(xs.shape[:-2])
    return xs, batch_shape, check_lengths(seq_lengths, batch_shape, T)


def check_lengths(seq_lengths, batch_shape: tuple, T: int):
    if seq_lengths is None:
        return None
    dtype = getattr(seq_lengths, "dtype", None) or np.asarray(seq_lengths).dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"`seq_lengths` must have an integer dtype, got {dtype}")
    shape = tuple(np.shape(seq_lengths))
    if shape != batch_shape:
        raise ValueError(
            f"`seq_lengths` has shape {shape} but `xs` has batch shape {batch_shape}"
        )
    if not isinstance(seq_lengths, jax.core.Tracer):
        values = np.asarray(seq_lengths)
        if values.size and (values.min() < 0 or values.max() > T):
            raise ValueError(
                f"`seq_lengths` must lie in [0, T={T}], got values in "
                f"[{values.min()}, {values.max()}]"
            )
    return jnp.asarray(seq_lengths)


def _time_index(T: int, lengths: Array) -> Array:
    """(T, *batch) array of t, shaped to compare with ``lengths`` (*batch,)."""
    return jnp.arange(T).reshape((T,) + (1,) * lengths.ndim)


def reverse_in_time(xs_T: Array, lengths: Array | None) -> Array:
    """Reverse (T, *batch, F) along time; with lengths, each sequence within its length.

    Positions at or beyond a sequence's length stay where they are, so applying the
    function twice gives back the input.
    """
    if lengths is None:
        return jnp.flip(xs_T, axis=0)
    t = _time_index(xs_T.shape[0], lengths)
    n = lengths[None]
    source = jnp.where(t < n, n - 1 - t, t)  # (T, *batch)
    return jnp.take_along_axis(xs_T, source[..., None], axis=0)


def drop(key: Array, x: Array, rate: float) -> Array:
    """Inverted dropout: zero each entry with probability ``rate``, scale the rest."""
    return x * _dropout_mask(key, rate, x.shape, x.dtype)


def _dropout_mask(key, rate, shape, dtype):
    """Entries 0 with probability ``rate``, else 1 / (1 - rate)."""
    keep = jax.random.bernoulli(key, 1.0 - rate, shape)
    return (keep / (1.0 - rate)).astype(dtype)


def _zoneout(rates, key, old, new):
    """Per unit, keep the old carry with probability p (expectation without a key)."""

    def mix(p, old_leaf, new_leaf, leaf_key):
        if p == 0.0:
            return new_leaf
        if leaf_key is None:
            return (p * old_leaf + (1.0 - p) * new_leaf).astype(new_leaf.dtype)
        keep_old = jax.random.bernoulli(leaf_key, p, new_leaf.shape)
        return jnp.where(keep_old, old_leaf, new_leaf)

    treedef = jax.tree.structure(new)
    if isinstance(rates, float):
        rates = jax.tree.unflatten(treedef, [rates] * treedef.num_leaves)
    elif jax.tree.structure(rates) != treedef:
        raise ValueError(
            f"`zoneout` must be a float or rates shaped like the carry {treedef}, "
            f"got {jax.tree.structure(rates)}"
        )
    keys = [None] * treedef.num_leaves if key is None else list(jax.random.split(key, treedef.num_leaves))
    leaves = [
        mix(p, o, n, k)
        for p, o, n, k in zip(jax.tree.leaves(rates), jax.tree.leaves(old), jax.tree.leaves(new), keys)
    ]
    return jax.tree.unflatten(treedef, leaves)


def _default_hoist() -> bool:
    return jax.default_backend() != "cpu"


def _scan_cell(config: RNNConfig, params, xs_T, carry, lengths, key, return_gates):
    """The time loop. xs_T (T, *batch, I) -> (carry, ys_T (T, *batch, P), gates_T)."""
    cell = config.cell
    T = xs_T.shape[0]
    keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
    if keys[0] is not None and config.input_dropout > 0:
        mask = _dropout_mask(keys[0], config.input_dropout, xs_T.shape[1:], xs_T.dtype)
        xs_T = xs_T * mask[None]
    h_mask = None
    if keys[1] is not None and config.recurrent_dropout > 0:
        h = hidden(carry)
        h_mask = _dropout_mask(keys[1], config.recurrent_dropout, h.shape, h.dtype)
    zone_key = keys[2]
    uses_zoneout = any(p > 0 for p in jax.tree.leaves(config.zoneout))

    hoist = _default_hoist() if config.hoist is None else config.hoist
    fusable = not (uses_zoneout or config.remat or return_gates)
    if fusable and config.fused_backward:
        with jax.named_scope(f"{cell.config.kind}_fused_scan"):
            carry, ys_T = fused_scan(cell, params, carry, xs_T, lengths, h_mask, hoist=hoist,
                                     unroll=config.unroll)
        return carry, ys_T, None
    inputs_T = cell.project_inputs(params, xs_T) if hoist else xs_T

    def body(carry, step_inputs):
        t, x_t = step_inputs
        gx_t = x_t if hoist else cell.project_inputs(params, x_t)
        gh_t = cell.project_hidden(params, carry, h_mask)
        new_carry, y_t, gates = cell.combine(params, carry, gx_t, gh_t)
        if uses_zoneout:
            step_key = None if zone_key is None else jax.random.fold_in(zone_key, t)
            new_carry = _zoneout(config.zoneout, step_key, carry, new_carry)
            y_t = hidden(new_carry).astype(y_t.dtype)  # the output is the zoned-out h
        if lengths is not None:
            valid = (t < lengths)[..., None]  # (*batch, 1)
            new_carry = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new_carry, carry)
            y_t, gates = jax.tree.map(lambda a: jnp.where(valid, a, 0).astype(a.dtype), (y_t, gates))
        return new_carry, ((y_t, gates) if return_gates else (y_t, None))

    with jax.named_scope(f"{cell.config.kind}_scan"):
        carry, (ys_T, gates_T) = _scan(
            body, carry, (jnp.arange(T), inputs_T), config.unroll, config.remat, T
        )
    return carry, ys_T, gates_T


def _scan(body, carry, xs, unroll: int, remat: bool | int, T: int):
    """``lax.scan``; with remat, over checkpointed chunks of ``remat`` (or sqrt(T)) steps."""
    if not remat or T == 0:
        return scan(body, carry, xs, unroll=unroll)
    chunk = max(1, math.isqrt(T - 1) + 1) if remat is True else min(remat, T)
    n_chunks, tail = divmod(T, chunk)

    @jax.checkpoint
    def run_chunk(carry, xs_chunk):
        return scan(body, carry, xs_chunk, unroll=unroll)

    head = jax.tree.map(lambda a: a[: n_chunks * chunk].reshape(n_chunks, chunk, *a.shape[1:]), xs)
    carry, ys = scan(run_chunk, carry, head)
    ys = jax.tree.map(lambda a: a.reshape(n_chunks * chunk, *a.shape[2:]), ys)
    if tail:
        rest = jax.tree.map(lambda a: a[n_chunks * chunk :], xs)
        carry, ys_tail = scan(body, carry, rest, unroll=unroll)
        ys = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ys, ys_tail)
    return carry, ys

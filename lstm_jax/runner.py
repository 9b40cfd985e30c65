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

import contextlib
import dataclasses
from typing import Any, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks, _cudnn, _dropout, _loop
from lstm_jax._fused import fused_scan
from lstm_jax.cells import protocol
from lstm_jax.cells.base import Cell, Layer, hidden

Array = jax.Array


class RNNParams(NamedTuple):
    """The params of ``lj.rnn(cell, learn_initial_carry=True)``."""

    cell: Any  # the cell's params, e.g. LSTMParams
    initial_carry: Any  # the learned carry, unbatched: h (P,), or LSTMState(h (P,), c (H,))


@dataclasses.dataclass(frozen=True)
class RNNConfig:
    """Options of ``rnn``; see its docstring."""

    cell: Any  # any cell of lstm_jax.cells.protocol
    unroll: int = 1
    remat: bool | int = False
    time_major: bool = False
    hoist: bool | None = None
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    zoneout: Any = 0.0
    weight_drop: float = 0.0
    learn_initial_carry: bool = False
    fused_backward: bool | None = None
    backend: str = "auto"
    parallel: bool | None = None
    kind = "rnn"

    @property
    def uses_key(self) -> bool:
        return (self.input_dropout > 0 or self.recurrent_dropout > 0 or self.weight_drop > 0
                or _dropout.uses_zoneout(self.zoneout))


def rnn(
    cell: Any,
    *,
    unroll: int = 1,
    remat: bool | int = False,
    time_major: bool = False,
    hoist: bool | None = None,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: Any = 0.0,
    weight_drop: float = 0.0,
    learn_initial_carry: bool = False,
    fused_backward: bool | None = None,
    backend: str = "auto",
    parallel: bool | None = None,
) -> Layer:
    """Run ``cell`` over whole sequences.

    Args:
      cell: any cell: an object with ``init``, ``initial_carry`` and ``step``
        (``lstm_jax.cells.protocol.RecurrentCell``), such as ``lj.lstm(...)``. Every
        option below works with those three alone, except the ones that need a
        capability (``protocol.OPTIONS``): ``hoist=True``, ``fused_backward=True``,
        ``recurrent_dropout``, ``weight_drop`` and ``return_gates`` need the
        projections (``project_inputs``, ``project_hidden``, ``combine``),
        ``parallel=True`` needs ``log_coefficients`` and ``backend="cudnn"``
        ``cudnn_weights``. Asking for one the cell lacks is a ValueError naming both;
        the defaults (None, "auto") choose what the cell supports.
      unroll: time steps per iteration of the compiled loop (``lax.scan``'s unroll);
        results are identical for every value.
      remat: bound activation memory for long sequences. True splits the T steps into
        chunks of ceil(sqrt(T)) and rematerialises each chunk in the backward pass, so
        training stores about 2·sqrt(T) steps of activations instead of T; an int
        sets the chunk length.
      time_major: xs is (T, B, I) and ys (T, B, P) instead of (B, T, I), (B, T, P).
      hoist: compute the input projection x_t @ W_ih for all T steps as one GEMM
        before the loop, leaving only h_{t-1} @ W_hh inside it. None chooses per
        backend: on for GPU/TPU (for a cell with projections), off on CPU, where XLA
        runs the per-step form faster (see benchmarks/). Results agree to float
        rounding either way.
      input_dropout: variational dropout of x_t (Gal & Ghahramani, 2016): one mask per
        sequence, the same at every step. Active only when ``apply`` gets a ``key``.
      recurrent_dropout: variational dropout of h_{t-1} where it enters the recurrent
        matmul, one mask per sequence.
      zoneout: probability that a carry unit keeps its previous value at a step
        (Krueger et al., 2017). A float for every carry leaf, or rates shaped like the
        carry, e.g. ``lj.LSTMState(h=0.05, c=0.5)``. Without a key the expectation is
        used: carry = p·old + (1 - p)·new. Zoneout acts on the carry only: ys are what
        the cell's step returned (an LSTM's unzoned h_t), the next step reads the
        zoned carry.
      weight_drop: DropConnect on the recurrent weight w_hh (Merity et al., 2017, the
        AWD-LSTM's weight-drop): each entry of w_hh is zeroed with probability p and the
        rest scaled by 1/(1 - p), one mask per ``apply`` call, the same at every step and
        for every sequence of the batch. Active only when ``apply`` gets a ``key``
        (without one w_hh is used as it is). The mask multiplies w_hh before the loop,
        so the fused backward pass runs on the masked weights and the gradient reaches
        w_hh through the mask (PyTorch's weight-drop wrapper fights cuDNN's fused weights
        instead, pytorch/pytorch#40193). With weight_drop > 0 the ``key`` is split first
        (``weight_key, key = jax.random.split(key)``) and dropout and zoneout draw
        from the second half: their masks differ from those the same key gives
        without weight-drop. For cells with a recurrent weight (IndRNN's vector u too);
        ``lj.min_gru`` and ``lj.min_lstm`` have none.
      learn_initial_carry: the initial carry (h_0, and c_0 for an LSTM: every field)
        becomes a parameter, zero at init and broadcast over the batch, as asked of
        flax (google/flax#868) and Keras (keras-team/keras#9797) for years. The params are then
        ``RNNParams(cell=the cell's params, initial_carry=the carry without batch
        axes)``, and ``layer.initial_carry(params, batch_shape)`` is that carry
        broadcast. An explicit ``carry=`` in ``apply`` overrides it. A cell may read
        no gradient into part of a zero carry: ``lj.slstm`` takes n = 0 for "no past",
        so from the zero init only its h_0 learns.
      fused_backward: differentiate the loop with a hand-written backward pass that
        forms the weight gradients as one GEMM over all steps after the backward scan
        (cuDNN's scheme) instead of two small GEMMs per step; the gate math itself is
        still differentiated by JAX. It needs the projections capability and saves
        every step's carry, so it cannot be combined with ``remat``. None (the
        default) takes it for a cell with projections and no ``remat``; True insists
        (a ValueError where it cannot run); False is plain autodiff. ``apply`` with
        ``return_gates`` or ``return_all_states`` runs plain autodiff, as documented
        there. Forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) cannot pass its
        ``custom_vjp``: set False for it.
      backend: ``"xla"`` runs the loop above; ``"cudnn"`` runs cuDNN's LSTM through
        ``jax.experimental.rnn`` (GPU only; the plain float32 LSTM without dropout,
        zoneout or ``return_gates``; same padding and reversal semantics);
        ``"auto"`` takes cuDNN on a GPU for the configurations it runs and XLA
        everywhere else.
      parallel: run a cell whose step is linear in h_{t-1} (``lj.min_gru``,
        ``lj.min_lstm``: the ``log_coefficients`` capability) as an associative scan
        over time, all steps at once, instead of step by step (same results to float
        rounding). It cannot zone out between steps (a ValueError with ``zoneout``);
        ``apply`` with ``return_gates`` runs step by step. None chooses per backend
        for the cells that have it: on for GPU/TPU, off on CPU, where the scan took 2.4-5.8x
        the stepped loop's time forward and 1.2-2.9x in training at T = 256 to 4096
        (benchmarks/RESULTS.md, "Parallel in time").

    Returns:
      A ``Layer``; ``apply(params, xs, *, seq_lengths=None, carry=None, reverse=False,
      key=None, return_gates=False, resets=None, return_all_states=False)`` returns
      ``(carry, ys)``, then the gates if ``return_gates``, then the states if
      ``return_all_states``:

      xs is (B, T, I), or (*batch, T, I) with several batch axes (seq_lengths then
      (*batch)), or (T, I) unbatched.

      - ``seq_lengths`` (B,) int: positions ``t >= seq_lengths[b]`` are padding. Their
        outputs are 0, they never change the carry, and the returned carry is the one
        after step ``seq_lengths[b] - 1``.
      - ``carry``: the initial carry (when None: zeros, or the learned one with
        ``learn_initial_carry``).
      - ``reverse``: run from the end; with ``seq_lengths`` each sequence is reversed
        within its own length (PyTorch's packed sequences), and ys is returned in the
        original order.
      - ``key``: randomness for dropout, zoneout and weight-drop; None means evaluation.
      - ``return_gates``: also return the cell's per-step activations (e.g.
        ``LSTMGates`` with fields (B, T, H)), zero at padding; needs ``combine``, and
        runs the plain loop (not the fused or parallel pass).
      - ``resets`` (B, T) bool ((T, B) when time-major): where ``resets[b, t]`` is set,
        the carry returns to the initial one (``carry``, or the default) before step t,
        so the segments between resets run as separate sequences (episodes in RL,
        documents in a language model). A reset at t = 0 or at padding does nothing.
        With ``reverse`` the positions are given in the original order and split the
        sequence into the same segments, each run from its last step: the reversed
        loop restarts at step t - 1. Runs step by step (or as the parallel scan), not
        on cuDNN.
      - ``return_all_states``: also return the carry after every step t, the carry's
        structure with a T axis in the layout of ys (``LSTMState`` with fields
        (B, T, H)); with ``reverse`` the carry after the loop read step t (so state 0
        is the returned carry). At padding the state is the carry held there, the
        returned one. ``"with_initial"`` puts the initial carry before them, at index
        0 (also with ``reverse``): T + 1 entries. The gradient runs by plain autodiff,
        not the fused backward pass.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> layer = lj.rnn(lj.lstm(6))
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> xs = jnp.ones((3, 4, 5))
    >>> carry, ys = layer.apply(params, xs, seq_lengths=jnp.array([4, 2, 0]))
    >>> ys.shape, carry.h.shape
    ((3, 4, 6), (3, 6))
    >>> bool(jnp.all(ys[1, 2:] == 0)), bool(jnp.all(carry.h[2] == 0))
    (True, True)
    >>> resets = jnp.zeros((3, 4), bool).at[:, 2].set(True)  # new episodes at t = 2
    >>> carry, ys, states = layer.apply(params, xs, resets=resets, return_all_states=True)
    >>> states.c.shape, bool(jnp.allclose(ys[:, 2:], ys[:, :2]))
    ((3, 4, 6), True)
    >>> layer = lj.rnn(lj.lstm(6), learn_initial_carry=True, weight_drop=0.25)
    >>> params = layer.init(jax.random.key(0), input_size=5)
    >>> params.initial_carry.c.shape, layer.initial_carry(params, (3,)).c.shape
    ((6,), (3, 6))
    >>> carry, ys = layer.apply(params, xs, key=jax.random.key(1))  # training
    """
    config = RNNConfig(
        cell=protocol.check_cell(cell),
        unroll=_checks.positive_int("unroll", unroll),
        remat=remat if isinstance(remat, bool) else _checks.positive_int("remat", remat),
        time_major=_checks.flag("time_major", time_major),
        hoist=_checks.flag("hoist", hoist, optional=True),
        input_dropout=_checks.rate("input_dropout", input_dropout),
        recurrent_dropout=_checks.rate("recurrent_dropout", recurrent_dropout),
        zoneout=jax.tree.map(lambda p: _checks.rate("zoneout", p), zoneout),
        weight_drop=_checks.rate("weight_drop", weight_drop),
        learn_initial_carry=_checks.flag("learn_initial_carry", learn_initial_carry),
        fused_backward=_checks.flag("fused_backward", fused_backward, optional=True),
        backend=_checks.one_of("backend", backend, BACKENDS),
        parallel=_checks.flag("parallel", parallel, optional=True),
    )
    _check_options(config)

    def init(key, input_size):
        """This layer's params for inputs of ``input_size`` features (see ``lj.rnn``)."""
        params = cell.init(key, input_size)
        if not config.learn_initial_carry:
            return params
        return RNNParams(params, cell.initial_carry(params, ()))

    def initial_carry(params, batch_shape=()):
        """The carry a sequence starts from, (*batch_shape, F) per field: zeros, or the
        learned one broadcast."""
        return _start(cell, *_unpack(config, params), _checks.batch_shape(batch_shape))

    def apply(params, xs, *, seq_lengths=None, carry=None, reverse=False, key=None,
              return_gates=False, resets=None, return_all_states=False):
        """Run the layer over xs (B, T, I): ``(carry, ys (B, T, P))``, then the gates and
        the states when asked for; ``lj.rnn`` says what each option does."""
        reverse = _checks.flag("reverse", reverse)
        return_gates = _checks.flag("return_gates", return_gates)
        params, learned = _unpack(config, params)  # the cell's params, the learned carry
        params, key = _dropout.weight_drop(key, params, config.weight_drop)
        if return_gates:
            protocol.require(cell, "return_gates")
        features = protocol.feature_axes(cell)  # x_t (*batch, I), or (*batch, *S, I) for conv
        xs, batch_shape, lengths = _checks.sequence(
            xs, seq_lengths, config.time_major, protocol.input_size(cell, params), features)
        with_initial = _all_states_option(return_all_states)  # None: no states
        all_states = with_initial is not None
        time_axis = 0 if config.time_major else len(batch_shape)  # where T is in xs and ys
        xs_T = jnp.moveaxis(xs, time_axis, 0)  # (T, *batch, I) or (T, *batch, *S, I)
        step_shape = xs_T.shape[1:-1]  # the carry's leading axes: (*batch) or (*batch, *S)
        if carry is None:
            carry = _start(cell, params, learned, step_shape)
        else:
            _checks.carry_like(carry, cell.initial_carry(params, step_shape))
        if not isinstance(cell, Cell):
            _check_own_step(cell, params, carry, jax.ShapeDtypeStruct(xs_T.shape[1:], xs_T.dtype))
        resets_T = running_resets(resets, batch_shape, xs_T.shape[0], lengths,
                                  config.time_major, reverse)
        if lengths is not None:  # (*batch, 1, ...): one length for all of a sequence's S
            lengths = lengths.reshape(batch_shape + (1,) * (features - 1))
        if reverse:
            xs_T = reverse_in_time(xs_T, lengths)
        carry0 = carry
        carry, ys_T, gates_T, states_T = _scan_cell(
            config, params, xs_T, carry, lengths, key, return_gates, resets_T,
            states=all_states)
        if reverse:
            ys_T, gates_T, states_T = jax.tree.map(lambda a: reverse_in_time(a, lengths),
                                                   (ys_T, gates_T, states_T))
        if with_initial:
            states_T = jax.tree.map(lambda a, a0: jnp.concatenate([a0[None], a]), states_T, carry0)
        ys, gates, states = jax.tree.map(lambda a: jnp.moveaxis(a, 0, time_axis),
                                         (ys_T, gates_T, states_T))
        extras = ((gates,) if return_gates else ()) + ((states,) if all_states else ())
        return (carry, ys, *extras)

    return Layer(init, apply, initial_carry, getattr(cell, "output_size", None), config)


def _check_options(config: RNNConfig) -> None:
    """Refuse options the cell cannot serve (``protocol.require``) and options that
    contradict each other, at construction, with the exact reason."""
    cell = config.cell
    asked = {"hoist=True": config.hoist is True,
             "fused_backward=True": config.fused_backward is True,
             "recurrent_dropout": config.recurrent_dropout > 0,
             "weight_drop": config.weight_drop > 0,
             "parallel=True": config.parallel is True,
             "backend='cudnn'": config.backend == "cudnn"}
    for option in (option for option, on in asked.items() if on):
        protocol.require(cell, option)
    if config.weight_drop > 0:
        shapes = jax.eval_shape(lambda: cell.init(jax.random.key(0), 1))
        if _dropout.recurrent_weight(shapes) is None:
            raise ValueError(f"`weight_drop` drops entries of the recurrent weight w_hh, "
                             f"which the params of `{protocol.name(cell)}` do not have")
    if config.fused_backward and config.remat:
        raise ValueError("`fused_backward=True` saves every step's carry, which `remat` "
                         "would recompute: pass one of them")
    if config.parallel and config.fused_backward:
        raise ValueError("`parallel=True` and `fused_backward=True` are two ways to run the "
                         "loop: pass one of them")
    if config.parallel and _dropout.uses_zoneout(config.zoneout):
        raise ValueError("`parallel=True` runs all steps at once and cannot zone out the "
                         "carry between them: pass zoneout=0 or parallel=False")
    if config.backend == "cudnn" and (reason := _cudnn_unsupported(config)):
        raise ValueError(f"backend='cudnn' cannot run this layer: {reason}")


def _unpack(config: RNNConfig, params):
    """(the cell's params, the learned initial carry or None) of a layer's ``params``."""
    if not config.learn_initial_carry:
        if isinstance(params, RNNParams):
            raise TypeError("`params` are RNNParams, but this layer has no learned initial "
                            "carry (learn_initial_carry=False): pass params.cell")
        return params, None
    if not isinstance(params, RNNParams):
        raise TypeError("`params` of lj.rnn(..., learn_initial_carry=True) must be "
                        f"RNNParams(cell, initial_carry), got {type(params).__name__}")
    zeros = config.cell.initial_carry(params.cell, ())
    _checks.tree_like("params.initial_carry", params.initial_carry, zeros)
    return params.cell, params.initial_carry


def _check_own_step(cell, params, carry, x_t) -> None:
    """A cell of your own must return from ``step`` a carry like the one it was given, as
    ``lax.scan`` needs: checked on shapes before the loop, naming the cell."""
    new_carry, _ = jax.eval_shape(cell.step, params, carry, x_t)
    try:
        _checks.carry_like(new_carry, carry)
    except (TypeError, ValueError) as error:
        raise type(error)(f"the step of {protocol.name(cell)} must return a carry like the "
                          f"one it is given: {error}") from None


def _start(cell, params, learned, batch_shape: tuple):
    """The carry a sequence starts from: the cell's zeros, or the learned carry
    broadcast to (*batch_shape, F) per field."""
    if learned is None:
        return cell.initial_carry(params, batch_shape)
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (*batch_shape, *a.shape)), learned)


def reverse_in_time(xs_T: Array, lengths: Array | None) -> Array:
    """Reverse (T, *batch, F) along time; with lengths, each sequence within its length.

    Positions at or beyond a sequence's length stay where they are, so applying the
    function twice gives back the input.
    """
    if lengths is None:
        return jnp.flip(xs_T, axis=0)
    t = _loop.time_index(xs_T.shape[0], lengths)
    n = lengths[None]
    source = jnp.where(t < n, n - 1 - t, t)  # (T, *batch)
    return jnp.take_along_axis(xs_T, source[..., None], axis=0)


def running_resets(resets, batch_shape: tuple, T: int, lengths: Array | None,
                   time_major: bool, reverse: bool) -> Array | None:
    """``resets`` (*batch, T) bool ((T, *batch) when time-major) as the loop reads them:
    (T, *batch) in the order it runs, False at padding. None stays None.

    A reset at t splits a sequence into segments [.., t) and [t, ..). Running forward,
    step t restarts from the initial carry. Running backward, the same segments are
    run from their ends: the step that restarts is t - 1, the last of the segment
    before, which the reversed loop reaches first.
    """
    if resets is None:
        return None
    dtype = getattr(resets, "dtype", None) or np.asarray(resets).dtype
    if dtype != np.bool_:
        raise TypeError(f"`resets` must have a boolean dtype, got {dtype}")
    expected = (T, *batch_shape) if time_major else (*batch_shape, T)
    if tuple(np.shape(resets)) != expected:
        layout = "(T, *batch)" if time_major else "(*batch, T)"
        raise ValueError(f"`resets` must have shape {layout} = {expected} to match `xs`, got "
                         f"shape {tuple(np.shape(resets))}")
    resets_T = jnp.asarray(resets) if time_major else jnp.moveaxis(jnp.asarray(resets), -1, 0)
    if lengths is not None:
        resets_T = resets_T & (_loop.time_index(T, lengths) < lengths[None])
    if not reverse:
        return resets_T
    ends = jnp.concatenate([resets_T[1:], jnp.zeros_like(resets_T[:1])])  # t - 1 ends a segment
    return reverse_in_time(ends[..., None], lengths)[..., 0]


def _all_states_option(value) -> bool | None:
    """``return_all_states`` checked: None when off, else whether to add the initial carry."""
    if value is False:
        return None
    if value is True or (isinstance(value, str) and value == "with_initial"):
        return value == "with_initial"
    raise ValueError(f"`return_all_states` must be False, True or 'with_initial', got {value!r}")


def _scan_cell(config: RNNConfig, params, xs_T, carry, lengths, key, return_gates,
               resets_T=None, *, states: bool = False):
    """The time loop. xs_T (T, *batch, I) -> (carry, ys_T (T, *batch, P), gates_T or None,
    states_T or None), states_T with the carry's fields, each (T, *batch, ...).

    resets_T: (T, *batch) bool in running order (``running_resets``), or None.
    """
    if _exporting:
        config = exported_config(config)
    cell = config.cell
    xs_T, h_mask, zone_key = _dropout.regularizers(
        key, xs_T, hidden(carry), input_dropout=config.input_dropout,
        recurrent_dropout=config.recurrent_dropout)
    platform = jax.default_backend()
    way = choose_loop(config, platform, return_gates=return_gates, states=states,
                      resets=resets_T is not None)
    hoist = config.hoist if config.hoist is not None else (
        platform != "cpu" and protocol.has(cell, "projections"))
    with jax.named_scope(f"{protocol.name(cell)}_{way}"):
        if way == "cudnn":
            carry, ys_T = _run_cudnn(cell.cudnn_weights(params), carry, xs_T, lengths)
            return carry, ys_T, None, None
        if way == "parallel":
            carry, ys_T, states_T = _loop.parallel(cell, params, carry, xs_T, lengths, resets_T)
            return carry, ys_T, None, states_T if states else None
        if way == "fused":
            carry, ys_T = fused_scan(cell, params, carry, xs_T, lengths, h_mask, resets_T,
                                     hoist=hoist, unroll=config.unroll,
                                     zoneout=config.zoneout, zone_key=zone_key)
            return carry, ys_T, None, None
        carry, (ys_T, gates_T, states_T), _ = _loop.run(
            cell, params, carry, xs_T, lengths, hoist=hoist, unroll=config.unroll,
            remat=config.remat, h_mask=h_mask, zone=_dropout.zone(config.zoneout, zone_key),
            gates=return_gates, states=states, resets_T=resets_T)
    return carry, ys_T, gates_T, states_T


BACKENDS = ("auto", "xla", "cudnn")

_exporting = False  # set by ``exporting()`` while ``lj.export`` traces a layer


@contextlib.contextmanager
def exporting() -> Iterator[None]:
    """Trace every layer with the plain XLA loop (``exported_config``) inside the block."""
    global _exporting
    before, _exporting = _exporting, True
    try:
        yield
    finally:
        _exporting = before


def is_exporting() -> bool:
    """Whether a layer is being traced for ``lj.export`` (inside ``exporting()``)."""
    return _exporting


def exported_config(config: RNNConfig) -> RNNConfig:
    """``config`` as an exported program runs it: the loop of plain XLA operations that
    every platform and ONNX can express. cuDNN is a custom call outside ``jax.export``'s
    stable list, the fused backward pass a ``custom_vjp`` that converters do not read,
    and the parallel scan is taken only where the user asked for it."""
    return dataclasses.replace(config, backend="xla", fused_backward=False,
                               parallel=config.parallel is True)


def _cudnn_unsupported(config: RNNConfig) -> str | None:
    """Why cuDNN cannot run this layer (whatever the device), or None."""
    if config.input_dropout or config.recurrent_dropout or _dropout.uses_zoneout(config.zoneout):
        return "cuDNN's LSTM has no variational dropout or zoneout"
    return None


def choose_loop(config: RNNConfig, platform: str, *, return_gates: bool = False,
                states: bool = False, resets: bool = False) -> str:
    """How a layer with ``config`` runs one ``apply`` on ``platform`` ("cpu", "gpu", ...):
    "cudnn", "parallel" (the associative scan), "fused" (the loop with the fused
    backward pass) or "scan" (the loop under plain autodiff).

    Each option the user set is taken (``rnn`` refused the impossible ones); None and
    "auto" choose what the cell supports. ``return_gates`` needs the plain loop, and
    ``return_all_states`` (``states``) the plain loop or the parallel scan.
    """
    cell = config.cell
    if choose_backend(config, return_gates or states or resets, platform) == "cudnn":
        return "cudnn"
    parallel = config.parallel
    if parallel is None:
        parallel = (platform != "cpu" and protocol.has(cell, "parallel")
                    and not _dropout.uses_zoneout(config.zoneout))
    if parallel and not return_gates:
        return "parallel"
    fused = config.fused_backward
    if fused is None:
        fused = protocol.has(cell, "projections") and not config.remat
    return "fused" if fused and not (return_gates or states) else "scan"


def choose_backend(config: RNNConfig, loop_only: bool, platform: str) -> str:
    """"xla" or "cudnn" for a layer with ``config`` on ``platform`` ("cpu", "gpu", ...);
    ``loop_only``: the call asks for what only the XLA loop has (``return_gates``,
    ``resets``, ``return_all_states``).

    "auto" takes cuDNN on a GPU wherever it can run the layer: on an H100, cuDNN ran
    the float32 LSTM 1.7x faster forward and 2.7x faster in training than a hoisted
    XLA loop at (B, T, I, H) = (16, 512, 128, 128) (the probe quoted in the GPU issue;
    benchmarks/NOTES.md holds what this project measures).
    """
    if config.backend == "xla" or not protocol.has(config.cell, "cudnn"):
        return "xla"
    why_not = _cudnn_unsupported(config) or (
        "`return_gates`, `resets` and `return_all_states` need the XLA loop"
        if loop_only else None) or (
        f"cuDNN needs a GPU; this computation runs on {platform}" if platform != "gpu" else None)
    if config.backend == "cudnn" and why_not:
        raise ValueError(f"backend='cudnn': {why_not}")
    return "xla" if why_not else "cudnn"


def _run_cudnn(weights, carry, xs_T, lengths):
    """cuDNN over xs_T (T, *batch, I), its batch axes flattened into one."""
    T, batch_shape = xs_T.shape[0], xs_T.shape[1:-1]
    flat = lambda a: a.reshape((-1, a.shape[-1]))  # (*batch, F) -> (B, F)
    carry_B = jax.tree.map(flat, carry)
    lengths_B = None if lengths is None else lengths.reshape(-1)
    carry_B, ys_T = _cudnn.run(weights, carry_B, xs_T.reshape((T, -1, xs_T.shape[-1])), lengths_B)
    unflat = lambda a: a.reshape(batch_shape + a.shape[-1:])
    return jax.tree.map(unflat, carry_B), ys_T.reshape((T,) + batch_shape + ys_T.shape[-1:])

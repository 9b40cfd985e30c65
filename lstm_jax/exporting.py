"""Take a trained layer out: StableHLO (``jax.export``) and ONNX (jax2onnx) programs.

``export(layer, params)`` is ``layer.apply`` over whole sequences, ``(xs (B, T, I),
seq_lengths (B,) int32) -> (carry, ys (B, T, P))``; ``export(..., step=True)`` one
time step, ``(carry, x_t (B, I)) -> (carry, y_t (B, P))``, for online use. B and T
are symbolic unless fixed. ``export_onnx`` converts the same functions to ONNX.

What crosses the boundary is plain: the carry as dicts (a NamedTuple's fields,
``{"h": ..., "c": ...}``; a bidirectional layer's ``{"forward": ..., "backward": ...}``)
and tuples (a stack's layers) of arrays, never lstm_jax's NamedTuples, so that
``jax.export.deserialize`` needs jax and numpy alone. (Serialising the NamedTuples
themselves fails, "Cannot serialize PyTreeDef containing an unregistered type
LSTMState", unless the reader registers each one with
``jax.export.register_namedtuple_serialization``: that needs lstm_jax to read.)

The params are baked into the program as constants: the exported file is all a
server needs, and no weights file can drift from the program that reads it.
Passing params as inputs would be the choice for swapping weights without exporting
again; ``jax.export`` takes a pytree input as well, so it is a small change.

The layer runs with the plain XLA loop (``runner.exporting``): never cuDNN, whose
custom call is outside ``jax.export``'s guaranteed-stable list and has no ONNX op,
never the fused backward pass's ``custom_vjp``, and the parallel scan only where the
layer set ``parallel=True``.

ONNX (jax2onnx 0.17.1 with jax 0.10.2, onnx 1.23.2, onnxruntime 1.32.0): two of the
loop's forms failed and were changed in ``lstm_jax._loop`` (results unchanged):
``jnp.arange(T)`` over a symbolic T made jax2onnx stop with "scan got values with
different leading axis sizes: JAX2ONNX_DYNAMIC_DIM_SENTINEL, T" (now ``lax.iota``), and
the padding mask ``jnp.where(valid, y, 0)`` with a literal 0 converted to a Where of
float and int32 that onnxruntime refused to load ("TypeInferenceError") (now a zeros
array of y's dtype). With those, whole sequences, padded, with the backward direction,
and the step convert, and match ``apply`` within 1e-5 under onnxruntime.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks, _platforms, runner
from lstm_jax.cells import protocol
from lstm_jax.cells.base import Layer
from lstm_jax.layers import first_cell, has_bidirectional, input_size

SEQUENCE_INPUTS = ("xs", "seq_lengths")
STEP_INPUTS = ("carry", "x_t")
OUTPUTS = ("carry", "ys")
STEP_OUTPUTS = ("new_carry", "y_t")  # ONNX names each value once: not "carry" again


def export(layer: Layer, params: Any, *, batch: int | None = None, time: int | None = None,
           platforms: Sequence[str] | str | None = None, step: bool = False) -> jax.export.Exported:
    """``layer.apply`` with ``params`` as a ``jax.export.Exported`` program.

    Args:
      layer: a layer over cells whose x_t is (B, I) (any but ``lj.conv_lstm``).
      params: its params, baked into the program as constants.
      batch, time: fix B or T; None leaves them symbolic, so one program serves every
        batch size and length.
      platforms: lower for these, e.g. ``("cpu", "cuda")`` or ``"cpu"`` (jax lowers for
        CUDA on a machine without a GPU); None: the default backend's. A name jax does
        not lower for is refused with those it does.
      step: export one step, ``(carry, x_t (B, I)) -> (carry, y_t (B, P))``, instead
        of whole sequences, ``(xs (B, T, I), seq_lengths (B,) int32) -> (carry, ys
        (B, T, P))`` (time-major layers: xs (T, B, I), ys (T, B, P)). The first carry
        is ``layer.initial_carry(params, (B,))`` as plain dicts: zeros unless the layer
        learns it. A bidirectional layer cannot be stepped.

    Returns:
      The program; ``.serialize()`` gives the bytes that ``jax.export.deserialize(b)
      .call(...)`` runs with jax and numpy alone. The carry is plain dicts and tuples
      (see the module's docstring).

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> layer = lj.stack([lj.bidirectional(lj.lstm(6)), lj.gru(4)])
    >>> params = layer.init(jax.random.key(0), input_size=3)
    >>> exported = lj.export(layer, params)
    >>> [str(a.shape) for a in exported.in_avals]
    ['(B, T, 3)', '(B,)']
    >>> again = jax.export.deserialize(exported.serialize())
    >>> carry, ys = again.call(jnp.ones((2, 5, 3)), jnp.array([5, 2], jnp.int32))
    >>> ys.shape, sorted(carry[0]), sorted(carry[0]["forward"])
    ((2, 5, 4), ['backward', 'forward'], ['c', 'h'])
    """
    fn, args = (step_function if step else sequence_function)(layer, params, batch, time)
    return export_function(fn, args, platforms)


def export_step(layer: Layer, params: Any, *, batch: int | None = None,
                platforms: Sequence[str] | str | None = None) -> jax.export.Exported:
    """``export(layer, params, step=True, ...)``: one time step, ``(carry, x_t (B, I))
    -> (carry, y_t (B, P))``; stepping it over a sequence gives ``apply``'s ys.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> layer = lj.rnn(lj.lstm(4))
    >>> params = layer.init(jax.random.key(0), input_size=3)
    >>> step = jax.export.deserialize(lj.export_step(layer, params).serialize())
    >>> carry = {"h": jnp.zeros((2, 4)), "c": jnp.zeros((2, 4))}
    >>> carry, y_t = step.call(carry, jnp.ones((2, 3)))
    >>> y_t.shape
    (2, 4)
    """
    return export(layer, params, batch=batch, platforms=platforms, step=True)


def export_onnx(layer: Layer, params: Any, *, batch: int | None = None,
                time: int | None = None, step: bool = False):
    """The program of ``export(layer, params, ...)`` as an ``onnx.ModelProto``, through
    jax2onnx (the ``onnx`` extra, and jax2onnx itself installed with ``--no-deps``).
    Its inputs are ``xs`` and ``seq_lengths`` (with ``step``: the carry's arrays and
    ``x_t``), its outputs the carry's arrays and ``ys`` (with ``step``: ``new_carry``'s
    and ``y_t``), each named by its place in the tree, ``carry.0.forward.h``, in the
    order of ``jax.tree.leaves`` (a dict's keys sorted). Save it with ``onnx.save(model,
    path)``; ``describe_onnx(model)`` lists the names, shapes and dtypes.
    """
    fn, args = (step_function if step else sequence_function)(layer, params, batch, time)
    return onnx_function(fn, args, STEP_INPUTS if step else SEQUENCE_INPUTS,
                         STEP_OUTPUTS if step else OUTPUTS)


# ---- the functions exported -----------------------------------------------------------


def sequence_function(layer: Layer, params: Any, batch: int | None = None,
                      time: int | None = None) -> tuple[Callable, tuple]:
    """``(fn(xs, seq_lengths) -> (carry, ys), (xs spec, seq_lengths spec))`` of ``layer``."""
    B, T = dims(batch, time)
    features = _features(layer, params)
    xs = (T, B, features) if layer.time_major else (B, T, features)

    def fn(xs, seq_lengths):
        carry, ys = layer.apply(params, xs, seq_lengths=seq_lengths)
        return plain(carry), ys

    return fn, (jax.ShapeDtypeStruct(xs, _dtype(params)), jax.ShapeDtypeStruct((B,), jnp.int32))


def step_function(layer: Layer, params: Any, batch: int | None = None,
                  time: int | None = None) -> tuple[Callable, tuple]:
    """``(fn(carry, x_t) -> (carry, y_t), (carry spec, x_t spec))``: ``layer.apply`` over
    one step, the carry in and out as plain dicts and tuples. ``time`` is not used."""
    if has_bidirectional(layer):
        raise ValueError("a bidirectional layer cannot be exported as a step: its backward "
                         "direction reads each sequence from its end; export whole sequences "
                         "(step=False)")
    B, _ = dims(batch, None)
    features = _features(layer, params)
    template = jax.eval_shape(lambda params: layer.initial_carry(params, (B,)), params)

    def fn(carry, x_t):
        xs = x_t[None] if layer.time_major else x_t[:, None]  # T = 1
        carry, ys = layer.apply(params, xs, carry=structured(template, carry))
        return plain(carry), ys[0] if layer.time_major else ys[:, 0]

    return fn, (plain(template), jax.ShapeDtypeStruct((B, features), _dtype(params)))


def export_function(fn: Callable, args: tuple, platforms: Sequence[str] | str | None = None
                    ) -> jax.export.Exported:
    """``jax.export`` of ``fn`` at ``args`` (ShapeDtypeStructs), traced with the plain
    XLA loop (``runner.exporting``)."""
    with runner.exporting():
        return jax.export.export(jax.jit(fn), platforms=_known(platforms))(*args)


def _known(platforms: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """``platforms`` as a tuple of ``_platforms.PLATFORMS`` (one string: a tuple of it),
    or None; else the error naming the argument and the platforms known."""
    if platforms is None:
        return None
    if isinstance(platforms, str):  # one platform: ("cpu",), not ("c", "p", "u")
        platforms = (platforms,)
    if not isinstance(platforms, (tuple, list)) or not all(isinstance(p, str) for p in platforms):
        raise TypeError(f"`platforms` must be a platform's name, a tuple of them such as "
                        f"(\"cpu\", \"cuda\"), or None (the default backend's), got {platforms!r}")
    if not platforms:
        raise ValueError(f"`platforms` must name at least one platform, or be None (the "
                         f"default backend's), got {platforms!r}")
    problem = _platforms.problem("`platforms`", platforms)
    if problem:
        raise ValueError(problem)
    return tuple(platforms)


def onnx_function(fn: Callable, args: tuple, input_names: Sequence[str],
                  output_names: Sequence[str]):
    """``fn`` at ``args`` as an ONNX model (jax2onnx), inputs and outputs flattened and
    named by ``names``; symbolic dimensions stay symbolic."""
    try:
        with _quiet():  # its plugin loader logs a traceback per optional package missing
            from jax2onnx import to_onnx
    except ModuleNotFoundError:
        from lstm_jax._extras import pip_install

        raise ImportError(f"ONNX export needs jax2onnx: "
                          f"{pip_install('onnx', 'onnx-ir', 'jax2onnx')}") from None
    leaves, tree = jax.tree.flatten(args)
    out_names = names(_as_tuple(jax.eval_shape(fn, *args), output_names), output_names)

    def flat(*leaves):
        return tuple(jax.tree.leaves(fn(*jax.tree.unflatten(tree, leaves))))

    with runner.exporting(), _quiet():
        return to_onnx(flat, list(leaves), model_name="lstm_jax",
                       input_names=names(args, input_names), output_names=out_names)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """jax2onnx's and onnx_ir's warnings held back (unused plugins, values it leaves
    untyped on the way) while converting; errors still show."""
    loggers = [logging.getLogger(name) for name in ("jax2onnx", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# ---- plain trees ----------------------------------------------------------------------


def plain(tree: Any) -> Any:
    """``tree`` with every NamedTuple as a dict of its fields (recursively); tuples,
    lists and dicts stay what they are."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return {name: plain(value) for name, value in zip(tree._fields, tree)}
    if isinstance(tree, (tuple, list)):
        return type(tree)(plain(value) for value in tree)
    if isinstance(tree, dict):
        return {name: plain(value) for name, value in tree.items()}
    return tree


def structured(template: Any, tree: Any) -> Any:
    """The inverse of ``plain``: ``tree``'s arrays in ``template``'s NamedTuples."""
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        return type(template)(*(structured(t, tree[name])
                                for name, t in zip(template._fields, template)))
    if isinstance(template, (tuple, list)):
        return type(template)(structured(t, v) for t, v in zip(template, tree))
    if isinstance(template, dict):
        return {name: structured(t, tree[name]) for name, t in template.items()}
    return tree


def names(args: Any, roots: Sequence[str]) -> list[str]:
    """The name of each array of ``args`` (one tree per root name), in flattening order:
    the root, then the keys on the way, joined by dots (``carry.0.forward.h``)."""
    found = []
    for root, tree in zip(roots, args):
        for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
            keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                    for k in path]
            found.append(".".join([root, *keys]))
    return found


def describe(exported: jax.export.Exported, input_names: Sequence[str],
             output_names: Sequence[str]) -> dict:
    """``{"inputs": [...], "outputs": [...]}``, each ``{"name", "shape", "dtype"}``, of
    an exported program whose arguments are the trees named by ``input_names``; a
    symbolic dimension is its name ("B")."""
    def entries(tree, avals, roots):
        return [{"name": name, "shape": [d if isinstance(d, int) else str(d) for d in a.shape],
                 "dtype": str(a.dtype)} for name, a in zip(names(tree, roots), avals)]

    args = jax.tree.unflatten(exported.in_tree, exported.in_avals)[0]  # (args, kwargs)
    outs = _as_tuple(jax.tree.unflatten(exported.out_tree, exported.out_avals), output_names)
    return {"inputs": entries(args, exported.in_avals, input_names),
            "outputs": entries(outs, exported.out_avals, output_names)}


def describe_onnx(model) -> dict:
    """``describe`` of an ONNX model: its graph's inputs and outputs."""
    from onnx import helper

    def entries(values):
        return [{"name": v.name,
                 "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                 "dtype": str(helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))}
                for v in values]

    return {"inputs": entries(model.graph.input), "outputs": entries(model.graph.output)}


def _as_tuple(outputs: Any, roots: Sequence[str]) -> tuple:
    """A function's outputs as one tree per name: a single output wrapped."""
    return (outputs,) if len(roots) == 1 else outputs


def dims(batch: int | None, time: int | None) -> tuple:
    """(B, T): the ints given, symbolic dimensions "B" and "T" for None."""
    batch = _checks.positive_int("batch", batch, optional=True)
    time = _checks.positive_int("time", time, optional=True)
    return jax.export.symbolic_shape(f"{batch or 'B'}, {time or 'T'}")


def _features(layer: Layer, params: Any) -> int:
    """I, from the params of the layer's first cell; a cell with spatial inputs is refused."""
    cell, _ = first_cell(layer, params)
    if protocol.feature_axes(cell) > 1:
        raise ValueError(f"export runs layers over (B, T, I) inputs; `{protocol.name(cell)}` "
                         f"reads spatial inputs (B, T, *S, I), whose S it cannot know")
    size = input_size(layer, params)
    if size is None:
        raise ValueError(f"export needs the input size, and `{protocol.name(cell)}` cannot say "
                         f"it: give the cell an `input_size(params)` method")
    return size


def _dtype(params: Any) -> np.dtype:
    """The dtype of the inputs: that of the params' first floating-point array."""
    floats = [a.dtype for a in jax.tree.leaves(params) if jnp.issubdtype(a.dtype, jnp.floating)]
    return floats[0] if floats else np.dtype(np.float32)

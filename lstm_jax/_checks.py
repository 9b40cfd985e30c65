"""Argument checks shared by cells, runners and layers, and the one tree check.

They run at trace time on static shapes and dtypes, so they cost nothing inside a
compiled function. Every message names the argument, what was expected and what was
received.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def positive_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    """Return ``value`` if it is an int > 0 (or None, when ``optional``), else raise
    naming ``name``: TypeError for what is no int (a float, a bool), ValueError for one <= 0."""
    if optional and value is None:
        return None
    allowed = "a positive int or None" if optional else "a positive int"
    if not _is_int(value):
        raise TypeError(f"`{name}` must be {allowed}, got {value!r}")
    if value <= 0:
        raise ValueError(f"`{name}` must be {allowed}, got {value}")
    return int(value)


def rate(name: str, value: Any, *, up_to_one: bool = False) -> float:
    """Return ``value`` if it is a probability in [0, 1) (in [0, 1] with ``up_to_one``),
    else raise naming ``name``."""
    interval = "[0, 1]" if up_to_one else "[0, 1)"
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a float in {interval}, got {value!r}")
    if not (0.0 <= value <= 1.0 if up_to_one else 0.0 <= value < 1.0):
        raise ValueError(f"`{name}` must be in {interval}, got {value}")
    return float(value)


def flag(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """Return ``value`` if it is True or False (or None, when ``optional``: "choose for
    me"), else raise naming ``name``: a string such as "False" from a config is refused,
    not read as True."""
    if optional and value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        allowed = "True, False or None" if optional else "True or False"
        raise TypeError(f"`{name}` must be {allowed}, got {value!r}")
    return bool(value)


def _dimension(n: Any) -> bool:
    """An int >= 0, or a symbolic dimension of ``jax.export`` (no float, bool or string)."""
    if _is_int(n):
        return n >= 0
    return n is not None and not isinstance(n, (bool, float, complex, str, np.bool_, np.floating))


def batch_shape(value: Any) -> tuple:
    """``value`` as a batch shape: a tuple of ints >= 0, or one int B for (B,)."""
    try:
        shape = (value,) if _is_int(value) else tuple(value)
    except TypeError:
        shape = None
    if shape is None or not all(map(_dimension, shape)):
        raise TypeError(f"`batch_shape` must be a tuple of ints >= 0 such as (B,), got {value!r}")
    return tuple(int(n) if _is_int(n) else n for n in shape)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a finite real number: an int or float, Python's or NumPy's,
    not a bool, NaN or an infinity."""
    return _is_real(value) and bool(np.isfinite(value))


def finite_float(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise naming ``name``."""
    if not _is_real(value):
        raise TypeError(f"`{name}` must be a float, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value}")
    return float(value)


def initializer(name: str, value: Any) -> Any:
    """Return ``value`` if it is None (the preset's) or callable, else raise naming ``name``."""
    if value is not None and not callable(value):
        raise TypeError(f"`{name}` must be an initializer init(key, shape, dtype) such as "
                        f"lstm_jax.initializers.orthogonal(), got {value!r}")
    return value


def float_dtype(name: str, value: Any, *, optional: bool = False) -> Any:
    """Return ``value`` if it names a floating-point dtype (or is None, when
    ``optional``), else raise naming ``name``: an integer dtype would compute silently
    wrong (gates of 0 or 1)."""
    if optional and value is None:
        return None
    try:
        dtype = None if value is None else jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        got = repr(value) if dtype is None else dtype.name
        raise TypeError(f"`{name}` must be a floating-point dtype such as jnp.float32, got {got}")
    return value


def one_of(name: str, value: Any, choices) -> Any:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {sorted(choices)}, got {value!r}")
    return value


def known_options(what: str, factory: Any, options: dict) -> dict:
    """Return ``options`` if ``factory`` takes each as a keyword, else name the valid ones.

    ``what`` names the factory in the message, e.g. "cell 'lstm'".
    """
    parameters = inspect.signature(factory).parameters
    valid = [name for name, p in parameters.items() if p.kind == p.KEYWORD_ONLY
             or (p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} of {what}; its options: {', '.join(valid)}")
    return options


def float_array(name: str, x: Any) -> jax.Array:
    """Return ``x`` as a JAX array if it has a floating dtype."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        x = jnp.asarray(x)
        dtype = x.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating-point dtype, got {dtype}")
    return x


def params_type(params: Any, expected: type, cell_name: str, where: str | None = None) -> None:
    """Raise unless ``params`` is ``expected``, the params type of a ``cell_name`` cell;
    ``where`` names the params in a model ("layer 1"), else they are `params`."""
    if not isinstance(params, expected):
        got = type(params).__name__
        if where is None:
            raise TypeError(f"`params` must be {expected.__name__} for a {cell_name} cell, got {got}")
        raise TypeError(f"params of {where} must be {expected.__name__}, got {got}")


def _shape(leaf: Any, dtypes: bool) -> Any:
    """``(3, 4) float32``, or the shape alone."""
    shape = tuple(np.shape(leaf))
    return f"{shape} {jnp.result_type(leaf)}" if dtypes else shape


def _describe(tree: Any, dtypes: bool = True) -> str:
    return str(jax.tree.map(lambda leaf: _shape(leaf, dtypes), tree))


def tree_like(name: str, got: Any, want: Any, *, dtypes: bool = True, skip=(),
              by_path: bool = False) -> None:
    """Raise unless ``got`` has the structure, shapes (and dtypes) of ``want``.

    The one tree check: carries, params of modules, checkpoints. Leaves are named by
    ``key_names``; ``skip`` holds the names (dotted, e.g. ``"layers_0.w_ih"``) of
    leaves whose shapes are not compared. By default the structures must be equal (as
    ``lax.scan`` needs of a carry), and a ValueError prints both trees. With ``by_path``
    leaves are matched by name, so a NamedTuple stored as a dict (by orbax, or as flax
    modules hold params) matches, and a ValueError names the first differing leaf,
    e.g. ``params.w is (3, 4) float32 where this model has (5, 4) float32``, since such
    trees (an optimizer state) are too large to print. TypeError names the structures,
    or the leaves missing and unexpected.
    """
    got_leaves, want_leaves = by_names(got), by_names(want)
    if by_path and got_leaves.keys() != want_leaves.keys():
        missing = sorted(map(".".join, want_leaves.keys() - got_leaves.keys()))
        extra = sorted(map(".".join, got_leaves.keys() - want_leaves.keys()))
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(extra[:3])}" if extra else "") if part)
        raise TypeError(f"{name!r} holds another structure than this model's ({detail})")
    got_def, want_def = jax.tree.structure(got), jax.tree.structure(want)
    if not by_path and got_def != want_def:
        raise TypeError(f"`{name}` must have the structure {want_def}, got {got_def}")
    for names, b in want_leaves.items():
        a = got_leaves[names]
        differs = ".".join(names) not in skip and np.shape(a) != np.shape(b)
        if differs or (dtypes and jnp.result_type(a) != jnp.result_type(b)):
            if by_path:
                raise ValueError(f"{name}.{'.'.join(names)} is {_shape(a, dtypes)} where "
                                 f"this model has {_shape(b, dtypes)}")
            what = "shapes and dtypes" if dtypes else "the shapes"
            raise ValueError(
                f"`{name}` must have {what} {_describe(want, dtypes)}, "
                f"got {_describe(got, dtypes)}"
            )


def carry_like(carry: Any, expected: Any) -> None:
    """Raise unless ``carry`` has the structure, shapes and dtypes of ``expected``."""
    tree_like("carry", carry, expected)


def input_size(name: str, x: jax.Array, expected: int) -> None:
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ValueError(
            f"`{name}` must have {expected} features on its last axis to match `params`, "
            f"got shape {tuple(x.shape)}"
        )


def sequence(xs, seq_lengths, time_major: bool, features: int | None, feature_axes: int = 1):
    """Validate a layer's inputs; return (xs, batch_shape, seq_lengths or None).

    ``features``: the I that params expect, or None for a cell that cannot say (its
    ``step`` then meets xs as it is). ``feature_axes`` counts the trailing axes of x_t that are not batch axes (the
    cell's ``config.feature_axes``): 1 for (I,), 1 + N for N spatial axes (*S, I).
    """
    xs = float_array("xs", xs)
    step = "I" if feature_axes == 1 else "*S, I"
    layout, several = ((f"(T, B, {step})", f"(T, *batch, {step})") if time_major
                       else (f"(B, T, {step})", f"(*batch, T, {step})"))
    if xs.ndim < 1 + feature_axes:
        spatial = "" if feature_axes == 1 else f" with {feature_axes - 1} spatial axes S"
        raise ValueError(f"`xs` must have shape {layout}, {several} or (T, {step}){spatial}, "
                         f"got shape {tuple(xs.shape)}")
    if features is not None:
        input_size("xs", xs, features)
    batch_ndim = xs.ndim - 1 - feature_axes
    if time_major:
        T, batch_shape = xs.shape[0], tuple(xs.shape[1 : 1 + batch_ndim])
    else:
        T, batch_shape = xs.shape[batch_ndim], tuple(xs.shape[:batch_ndim])
    return xs, batch_shape, lengths(seq_lengths, batch_shape, T)


def lengths(seq_lengths, batch_shape: tuple, T: int):
    """``seq_lengths`` as an array of shape ``batch_shape`` with values in [0, T], or None."""
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


# --- trees matched by key path ---------------------------------------------------------


def key_names(path: tuple, sequence: str = "{}") -> tuple[str, ...]:
    """A key path as names: a NamedTuple field or a dict key by its name, a sequence
    entry by its index formatted with ``sequence`` (``"layers_{}"`` gives "layers_0")."""
    names = []
    for entry in path:
        if isinstance(entry, jax.tree_util.SequenceKey):
            names.append(sequence.format(entry.idx))
        else:
            names.append(str(next((getattr(entry, a) for a in ("name", "key", "idx")
                                   if hasattr(entry, a)), entry)))
    return tuple(names)


def by_names(tree: Any, sequence: str = "{}") -> dict[tuple[str, ...], Any]:
    """Each leaf of ``tree`` under its ``key_names``; parts that are None are no leaves."""
    return {key_names(path, sequence): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def as_dict(tree: Any, sequence: str = "{}") -> dict:
    """``tree`` (NamedTuples, tuples, dicts) as nested dicts keyed by ``key_names``,
    holding only its leaves: ``LSTMParams(w_ih, w_hh, b, w_hr=None, ...)`` gives
    ``{"w_ih": ..., "w_hh": ..., "b": ...}``. ``rebuilt`` is the inverse."""
    nested: dict = {}
    for names, leaf in by_names(tree, sequence).items():
        node = nested
        for name in names[:-1]:
            node = node.setdefault(name, {})
        node[names[-1]] = leaf
    return nested


def rebuilt(like: Any, tree: Any, sequence: str = "{}") -> Any:
    """The leaves of ``tree`` in the structure of ``like``, matched by ``key_names``:
    NamedTuples back from ``as_dict``, or from the dicts and lists orbax stores. The
    parts of ``like`` that are None stay None; ``tree_like(..., by_path=True)`` says
    whether the names match."""
    leaves = by_names(tree, sequence)
    return jax.tree_util.tree_map_with_path(
        lambda path, _: leaves[key_names(path, sequence)], like)

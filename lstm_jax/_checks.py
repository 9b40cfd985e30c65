"""Argument checks shared by cells, runners and layers.

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


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int > 0, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive int, got {value}")
    return int(value)


def rate(name: str, value: Any) -> float:
    """Return ``value`` if it is a probability in [0, 1), else raise naming ``name``."""
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a float in [0, 1), got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value}")
    return float(value)


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


def params_type(params: Any, expected: type, cell_name: str) -> None:
    if not isinstance(params, expected):
        raise TypeError(
            f"`params` must be {expected.__name__} for a {cell_name} cell, "
            f"got {type(params).__name__}"
        )


def _describe(tree: Any) -> str:
    shapes = jax.tree.map(lambda a: f"{tuple(np.shape(a))} {jnp.result_type(a)}", tree)
    return str(shapes)


def carry_like(carry: Any, expected: Any) -> None:
    """Raise unless ``carry`` has the structure, shapes and dtypes of ``expected``."""
    got_def, want_def = jax.tree.structure(carry), jax.tree.structure(expected)
    if got_def != want_def:
        raise TypeError(
            f"`carry` must have the structure {want_def}, got {got_def}"
        )
    for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(expected)):
        if np.shape(got) != np.shape(want) or jnp.result_type(got) != want.dtype:
            raise ValueError(
                f"`carry` must have shapes and dtypes {_describe(expected)}, "
                f"got {_describe(carry)}"
            )


def input_size(name: str, x: jax.Array, expected: int) -> None:
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ValueError(
            f"`{name}` must have {expected} features on its last axis to match `params`, "
            f"got shape {tuple(x.shape)}"
        )

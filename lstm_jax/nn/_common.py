"""What the linen and nnx modules share; every option is read from the functional API."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.cells.base import Layer

CALL_DOC = """Run the layer over ``xs``: ``layer.apply`` (see ``lj.rnn``).

Args:
  xs: (B, T, I), or (T, B, I) when the layer is time-major, or (T, I), or (*batch, T, I).
  initial_carry: ``apply``'s ``carry``; its other keyword arguments (``seq_lengths``,
    ``reverse``, ``return_gates``, ...) pass through unchanged.
  return_carry, deterministic: override the attributes.{rngs}

Returns:
  ys (B, T, P), or what ``apply`` returns after ys; the carry first when ``return_carry``.
"""

def as_layer(part: Any) -> Any:
    """A module's functional ``layer``, element-wise in a list; anything else unchanged."""
    if type(part) in (list, tuple):  # not a Cell or a Layer, which are NamedTuples
        return [as_layer(p) for p in part]
    layer = getattr(part, "layer", None)
    return layer if isinstance(layer, Layer) else part


def check_layer(part: Any) -> Layer:
    """``as_layer(part)``, which must be a Layer."""
    layer = as_layer(part)
    if not isinstance(layer, Layer):
        raise TypeError(
            "`layer` must be a Layer such as lj.rnn(lj.lstm(...)), lj.bidirectional(...) or "
            f"lj.stack(...), got {type(layer).__name__}"
        )
    return layer


def wants_key(layer: Layer, attribute: bool | None, argument: bool | None, hint: str) -> bool:
    """Whether a call draws a key: the layer uses one and the call is not deterministic."""
    if not layer.uses_key:
        return False
    deterministic = attribute if argument is None else argument
    if deterministic is None:
        raise ValueError("`deterministic` must be given to the constructor or the call of a "
                         "layer with dropout or zoneout" + hint)
    return not deterministic


SEQUENCE = "layers_{}"  # a stack's layer n is params["layers_n"], as nn.Sequential's


def to_dict(params) -> dict:
    """Functional params as flax modules hold them: nested dicts of arrays keyed by field
    name, only the parts present (``{"w_ih", "w_hh", "b"}`` for ``lj.lstm(H)``), a
    bidirectional layer's under "forward" and "backward", a stack's layer n under
    "layers_n". ``from_dict`` is the inverse."""
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(params)):
        raise TypeError(f"`params` must be a layer's params (NamedTuples, tuples or dicts of "
                        f"arrays), got {type(params).__name__}")
    return _checks.as_dict(params, SEQUENCE)


def from_dict(layer: Layer, tree):
    """The functional params of ``layer`` from ``tree``, the dict ``to_dict`` gives.

    Checked by key path against ``layer.init``'s: the same names, and the same shapes
    except those that depend on the input size I, which ``layer.apply`` checks against
    ``xs``. ``tree_like`` names what differs.
    """
    key = jax.random.key(0)
    want, other = [jax.eval_shape(lambda n=n: layer.init(key, n)) for n in (1, 2)]
    pairs = zip(_checks.by_names(want, SEQUENCE).items(), jax.tree.leaves(other))
    skip = {".".join(names) for (names, a), b in pairs if a.shape != b.shape}
    _checks.tree_like("params", tree, to_dict(want), dtypes=False, skip=skip, by_path=True)
    return _checks.rebuilt(want, tree, SEQUENCE)


def outputs(out: tuple, return_carry: bool):
    """``layer.apply``'s ``(carry, ys, ...)``, less the carry unless ``return_carry``;
    ys alone when nothing else is left."""
    out = out if return_carry else out[1:]
    return out[0] if len(out) == 1 else out


def zero_carry(layer: Layer, batch_shape) -> Any:
    """``layer.initial_carry`` without params: ``init`` traced abstractly (no key is
    consumed) gives the dtypes; the carry does not depend on the input size."""
    key = jax.random.key(0)
    abstract = jax.eval_shape(lambda: layer.initial_carry(layer.init(key, 1), tuple(batch_shape)))
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), abstract)


# --- options and docstrings, read from the functional API ------------------------------


def args_doc(fn: Callable) -> str:
    """The ``Args:`` block of ``fn``'s docstring, without its heading."""
    lines = inspect.getdoc(fn).splitlines()
    start = lines.index("Args:") + 1
    end = next((n for n in range(start, len(lines)) if lines[n][:1] not in ("", " ")), len(lines))
    return "\n".join(lines[start:end]).rstrip()


def wrapper_doc(fn: Callable, framework: str, rngs: str = "") -> str:
    """The docstring of the module that runs ``lj.<fn>``: that function's own arguments."""
    return (f"``lj.{fn.__name__}`` as a {framework} module; its arguments are the module's.\n\n"
            f"Arguments of ``lj.{fn.__name__}``:\n{args_doc(fn)}\n\nModule options:\n"
            "  return_carry: return ``(carry, ys)`` instead of ys.\n"
            "  deterministic: False turns dropout and zoneout on; see the module docstring.\n"
            "  rng_collection: the rng stream dropout and zoneout draw from." + rngs)


def constructor(factory: Callable, module: type, name: str, framework: str) -> Callable:
    """``name(..., hidden_size, **options)``: ``module(..., factory(hidden_size, ...), ...)``,
    its signature the factory's and then ``module``'s: every option keeps its name."""
    module_params = list(inspect.signature(module).parameters.values())
    at = [p.name for p in module_params].index("cell")
    factory_params = list(inspect.signature(factory).parameters.values())
    cell_options = {p.name for p in factory_params[1:]}
    signature = inspect.Signature(module_params[:at] + factory_params + module_params[at + 1:])

    def make(*args, **kwargs):
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError as error:  # e.g. a misspelt option: name the module, as lj.lstm does
            raise TypeError(f"{name}() {error}") from None
        cell = factory(arguments.pop(factory_params[0].name),
                       **{k: arguments.pop(k) for k in list(arguments) if k in cell_options})
        lead = [arguments.pop(p.name) for p in module_params[:at]]
        return module(*lead, cell, **arguments)

    make.__name__ = make.__qualname__ = name
    make.__module__, make.__signature__ = module.__module__, signature
    make.__doc__ = (
        f"``{module.__name__}(lj.{factory.__name__}(hidden_size, ...), ...)``: a {framework} "
        f"module running ``lj.rnn(lj.{factory.__name__}(...))``, every option under its "
        f"functional name (``init=`` is the preset).\n\nOptions of ``lj.{factory.__name__}``:"
        f"\n{args_doc(factory)}\n\nThe rest: see ``{module.__name__}``."
    )
    return make

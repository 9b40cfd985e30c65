"""Package attributes that load their module on first use (PEP 562)."""

from __future__ import annotations

import importlib
from typing import Callable


def exports(package: str, table: dict[str, tuple[str, str | None]]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` from ``{name: (module, attribute)}``.

    ``attribute`` None exports the module itself. A loaded name is stored in the
    package's namespace, so later look-ups never reach ``__getattr__`` again.
    """

    def __getattr__(name: str):
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, attribute = table[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        vars(importlib.import_module(package))[name] = value
        return value

    def __dir__():
        return sorted([*vars(importlib.import_module(package)), *table])

    return __getattr__, __dir__

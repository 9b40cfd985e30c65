"""Package attributes that load their module on first use (PEP 562).

A package using it writes its public names twice: in the table given to ``exports``,
which the running program reads, and as imports under ``if TYPE_CHECKING:``, which type
checkers and IDEs read (they do not run ``__getattr__``). tests/test_namespace.py checks
that the two lists agree.
"""

from __future__ import annotations

import importlib
from typing import Callable


def exports(package: str, table: dict[str, tuple[str, str | None]]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` from ``{name: (module, attribute)}``.

    ``attribute`` None exports the module itself. A loaded name is stored in the
    package's namespace, so later look-ups never reach ``__getattr__`` again. ``dir``
    lists the table's names: the public API, not the package's own imports.
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
        return sorted(table)

    return __getattr__, __dir__

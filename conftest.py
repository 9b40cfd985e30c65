"""Doctests (README.md's examples, docstrings) that import an optional package skip where
it is not installed: the package's own install works for everything else.

At the repository's root so that it applies however pytest is started: ``pytest``,
``pytest README.md`` or ``pytest lstm_jax/interop/pytorch.py``.
"""

import doctest
import importlib.util
import re

OPTIONAL = ("torch",)  # the extras' packages that doctests import


def pytest_collection_modifyitems(items):
    missing = [name for name in OPTIONAL if not installed(name)]
    for item in items:
        if missing and hasattr(item, "dtest"):  # a doctest: a README file or a docstring
            for example in examples_needing(item.dtest, missing):
                example.options[doctest.SKIP] = True


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None  # None too where sys.modules[name] is None


def examples_needing(test: doctest.DocTest, packages) -> list[doctest.Example]:
    """The examples of ``test`` that need one of ``packages``: from the one importing it
    to the end of its fenced block in a Markdown file, or of a docstring."""
    imports = re.compile(rf"^\s*(import|from)\s[^#]*\b({'|'.join(map(re.escape, packages))})\b",
                         re.MULTILINE)
    lines = (test.docstring or "").splitlines()
    needing, end = [], -1
    for example in test.examples:
        if example.lineno > end and imports.search(example.source):
            end = next((i for i in range(example.lineno, len(lines))
                        if lines[i].lstrip().startswith("```")), len(lines))
        if example.lineno <= end:
            needing.append(example)
    return needing

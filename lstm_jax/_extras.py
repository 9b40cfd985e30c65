"""The command that installs an optional dependency, whatever way lstm_jax was installed.

The requirements come from pyproject.toml's extras (``[project.optional-dependencies]``),
the one place they are written: through the installed package's metadata, or the
pyproject.toml of a source checkout run without installing. A hint names the packages
themselves (``pip install 'scikit-learn>=1.3'``), which works from PyPI, a wheel or a
clone alike, where ``pip install 'lstm_jax[experiments]'`` looks for lstm_jax on PyPI.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# Installed with pip's --no-deps, so in no extra (the Makefile reads them here): jax2onnx
# pins its own requirements against ours (orbax-checkpoint<0.11.37, and equinox,
# netron, huggingface-hub it does not import to convert); the `onnx` extra has the
# packages it needs.
NO_DEPS = {"jax2onnx": "jax2onnx==0.17.1"}


def pip_install(*names: str) -> str:
    """``pip install REQ ...`` for the distributions ``names``, pinned as the extras pin them
    (those of ``NO_DEPS`` in a second command, with --no-deps).

    >>> pip_install("scikit-learn")
    "pip install 'scikit-learn>=1.3'"
    >>> pip_install("jax2onnx")
    "pip install --no-deps 'jax2onnx==0.17.1'"
    """
    commands = []
    for flag, group in (("", [n for n in names if n not in NO_DEPS]),
                        ("--no-deps ", [n for n in names if n in NO_DEPS])):
        if group:  # quoted: >=
            commands.append(f"pip install {flag}" + " ".join(f"'{requirement(n)}'" for n in group))
    return " && ".join(commands)


def requirement(name: str) -> str:
    """The requirement of distribution ``name`` in lstm_jax's extras (or ``NO_DEPS``),
    e.g. ``"torch==2.13.0"``; ``name`` alone where neither lists it."""
    if name in NO_DEPS:
        return NO_DEPS[name]
    for line in _extras_requirements():
        if _normalized(re.match(r"[A-Za-z0-9._-]+", line).group()) == _normalized(name):
            return line
    return name


def _extras_requirements() -> list[str]:
    """Every requirement of every extra, without its environment marker."""
    try:
        lines = [line for line in metadata.requires("lstm_jax") or [] if "extra ==" in line]
        return [line.split(";")[0].strip() for line in lines]
    except metadata.PackageNotFoundError:  # a source checkout on PYTHONPATH
        return _pyproject_extras()


def _pyproject_extras() -> list[str]:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:
        return []
    if not PYPROJECT.is_file():
        return []
    extras = tomllib.loads(PYPROJECT.read_text())["project"].get("optional-dependencies", {})
    return [line.split(";")[0].strip() for lines in extras.values() for line in lines]


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503

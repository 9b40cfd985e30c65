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


def pip_install(*names: str) -> str:
    """``pip install REQ ...`` for the distributions ``names``, pinned as the extras pin them.

    >>> pip_install("scikit-learn")
    "pip install 'scikit-learn>=1.3'"
    """
    return "pip install " + " ".join(f"'{requirement(name)}'" for name in names)  # quoted: >=


def requirement(name: str) -> str:
    """The requirement of distribution ``name`` in lstm_jax's extras, e.g.
    ``"torch==2.13.0"``; ``name`` alone where no extra lists it."""
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

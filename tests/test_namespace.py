"""The package's face: ``dir(lj)`` is the API, every name loads on first use, and the
names type checkers read (imports under ``TYPE_CHECKING``) are the names that load."""

import ast
import importlib
import inspect
import subprocess
import sys
import types

import pytest

import lstm_jax as lj
from lstm_jax import train as lt

PACKAGES = [lj, lt]  # the packages whose names load on first use (lstm_jax._lazy)


def type_checking_imports(package: types.ModuleType) -> dict[str, tuple[str, str]]:
    """``{name: (module, attribute)}`` of the imports under ``if TYPE_CHECKING:`` in
    ``package``'s source, as a type checker reads them."""
    (block,) = [node for node in ast.parse(inspect.getsource(package)).body
                if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"]
    imports = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 0, ast.unparse(node)
        for alias in node.names:
            imports[alias.asname or alias.name] = (node.module, alias.name)
    return imports


def lazy_table(package: types.ModuleType) -> dict[str, tuple[str, str]]:
    """The package's lazy table in the same form: a module as (its package, its name)."""
    return {name: (module, attribute) if attribute else tuple(module.rsplit(".", 1))
            for name, (module, attribute) in package._EXPORTS.items()}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_type_checkers_see_the_names_that_load(package):
    assert type_checking_imports(package) == lazy_table(package)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_dir_lists_the_api_and_nothing_the_package_imports_for_itself(package):
    assert dir(package) == sorted(package._EXPORTS)
    assert not {"sys", "types", "importlib", "TYPE_CHECKING", "_lazy", "_EXPORTS"} & set(dir(package))


def test_dir_of_lj_holds_the_core_api_and_its_subpackages():
    assert {"rnn", "lstm", "gru", "Cell", "Layer", "bidirectional", "stack", "sample",
            "truncated_bptt", "cells", "layers", "initializers", "interop", "nn", "tasks",
            "train"} <= set(dir(lj))
    assert lj.__all__ == dir(lj)
    with pytest.raises(AttributeError, match="module 'lstm_jax' has no attribute 'runer'"):
        getattr(lj, "runer")


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_exported_name_resolves_to_what_its_module_defines(package):
    for name in package.__all__:
        module, attribute = package._EXPORTS[name]
        defined = importlib.import_module(module)
        assert getattr(package, name) is (defined if attribute is None else getattr(defined, attribute))


def test_the_functions_rnn_and_sample_are_not_their_modules():
    import lstm_jax.runner
    import lstm_jax.sampling

    assert isinstance(lj.rnn, types.FunctionType) and isinstance(lj.sample, types.FunctionType)
    assert lj.rnn is lstm_jax.runner.rnn and lj.sample is lstm_jax.sampling.sample
    assert isinstance(lj.runner, types.ModuleType) and lj.runner.__name__ == "lstm_jax.runner"
    assert isinstance(lj.sampling, types.ModuleType)


def test_import_loads_no_jax_and_layers_is_an_attribute_at_once():
    """A fresh process: ``import lstm_jax`` leaves jax unloaded (so ``lstm-jax`` can take
    over Ctrl-C first), and ``lj.layers.levels`` needs no other import before it."""
    code = ("import sys, lstm_jax as lj\n"
            "print('jax' in sys.modules, 'lstm_jax.layers' in sys.modules)\n"
            "print(lj.layers.levels.__module__, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "lstm_jax.layers", "True"]

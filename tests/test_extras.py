"""Install hints name the packages, pinned as pyproject.toml's extras pin them
(lstm_jax._extras), whatever way lstm_jax was installed."""

import sys
from importlib import metadata

import pytest

import lstm_jax as lj
from lstm_jax import _extras
from tests.helpers import extra_requirement


@pytest.mark.parametrize("name", ["scikit-learn", "mnist1d", "music21", "torch", "onnx",
                                  "onnxruntime"])
def test_a_hint_names_the_package_as_the_extras_pin_it(name):
    assert _extras.pip_install(name) == f"pip install '{extra_requirement(name)}'"


def test_a_package_installed_without_its_dependencies_gets_a_command_of_its_own():
    assert _extras.requirement("jax2onnx") == _extras.NO_DEPS["jax2onnx"] == "jax2onnx==0.17.1"
    assert _extras.pip_install("torch", "jax2onnx") == (
        f"pip install '{extra_requirement('torch')}' && pip install --no-deps 'jax2onnx==0.17.1'")


def test_a_source_checkout_reads_pyproject_toml(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", not_installed)
    assert _extras.requirement("Scikit_Learn") == extra_requirement("scikit-learn")
    assert _extras.pip_install("torch", "music21") == (
        f"pip install '{extra_requirement('torch')}' '{extra_requirement('music21')}'")
    monkeypatch.setattr(_extras, "PYPROJECT", _extras.PYPROJECT.parent / "no-such.toml")
    assert _extras.pip_install("torch") == "pip install 'torch'"  # nothing better to say


def test_interop_without_torch_names_the_pinned_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails as if not installed
    with pytest.raises(ImportError) as error:
        lj.interop.to_torch(lj.rnn(lj.lstm(4)), None)
    assert str(error.value) == ("lstm_jax.interop.pytorch needs PyTorch: pip install "
                                f"'{extra_requirement('torch')}'")

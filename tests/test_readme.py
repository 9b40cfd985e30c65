"""The README: an install line for every use, and examples that need an extra skip
cleanly without it (the repository's conftest.py)."""

import doctest
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def conftest():
    """The root conftest.py, as a module of its own (pytest loaded it as a plugin)."""
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_doctest() -> doctest.DocTest:
    return doctest.DocTestParser().get_doctest(README, {}, "README.md", "README.md", 0)


def test_every_use_has_its_install_line():
    assert "`pip install .`" in README
    named = {extra for group in re.findall(r'pip install "\.\[([a-z,]+)\]"', README)
             for extra in group.split(",")}
    assert named == set(EXTRAS)  # every extra, and no other
    assert "notebooks" in EXTRAS and any(r.startswith("jupyter") for r in EXTRAS["notebooks"])


def test_the_gpu_line_names_extras_the_installed_jax_has():
    gpu = re.findall(r'\bjax\[([a-z0-9-]+)\]', README)
    assert gpu and set(gpu) <= set(metadata.metadata("jax").get_all("Provides-Extra"))
    assert f'pip install -U "jax[{gpu[0]}]"' in README


def test_the_torch_examples_say_torch_is_an_extra_and_are_the_ones_skipped_without_it():
    test = readme_doctest()
    needing = conftest().examples_needing(test, ["torch"])
    assert needing[0].source == "import numpy as np, torch\n"
    assert needing[-1].source == "h_n.shape\n"
    first = test.examples.index(needing[0])
    assert test.examples[first:first + len(needing)] == needing  # one run of examples
    assert not any(re.search(r"\btorch\b", e.source) for e in test.examples[:first])
    assert first + len(needing) == len(test.examples)  # the last block: nothing after uses it
    before = README[:README.index(">>> import numpy as np, torch")].rsplit("##", 1)[1]
    assert 'These examples need PyTorch, which is an extra: `pip install ".[torch]"`' in before


def test_without_torch_its_examples_are_marked_skip(monkeypatch):
    module = conftest()
    monkeypatch.setattr(module, "installed", lambda name: name != "torch")

    class Item:
        dtest = readme_doctest()

    module.pytest_collection_modifyitems([Item])
    skipped = [e for e in Item.dtest.examples if e.options.get(doctest.SKIP)]
    assert skipped == module.examples_needing(Item.dtest, ["torch"]) and skipped
    from lstm_jax.interop import pytorch

    for test in doctest.DocTestFinder().find(pytorch):  # a docstring: from the import on
        needing = module.examples_needing(test, ["torch"])
        if any("import" in e.source and "torch" in e.source for e in test.examples):
            assert needing == test.examples[[e.source for e in test.examples].index(
                needing[0].source):]


@pytest.mark.slow  # runs the README's doctests (they train a model) in a new pytest
def test_readme_and_interop_doctests_pass_without_torch(tmp_path):
    (tmp_path / "no_torch.py").write_text("import sys\nsys.modules['torch'] = None\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no_torch", "-q", "-p", "no:cacheprovider",
         "README.md", "lstm_jax/interop/pytorch.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "failed" not in result.stdout and "skipped" in result.stdout

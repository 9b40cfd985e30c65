"""The built wheel works without the repository: experiments ship inside it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_for_the_wheel():
    """The default tier's stand-in for building and installing the wheel (slow): setuptools
    ships only the packages pyproject.toml lists, so each folder of lstm_jax/ and
    experiments/ that holds an __init__.py must be listed, under its place in the wheel."""
    from setuptools.config.pyprojecttoml import read_configuration

    options = read_configuration(REPO / "pyproject.toml")["tool"]["setuptools"]
    listed = {options["package-dir"].get(name, name.replace(".", "/")): name
              for name in options["packages"]}
    folders = {str(init.parent.relative_to(REPO)) for top in ("lstm_jax", "experiments")
               for init in (REPO / top).rglob("__init__.py")}
    assert set(listed) == folders
    assert listed["experiments"] == "lstm_jax.experiments"


@pytest.mark.slow
def test_wheel_installed_elsewhere_lists_and_runs_the_experiments(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path / "wheel")],
        capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("lstm_jax-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
         str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    assert (site / "lstm_jax" / "experiments" / "adding.py").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel's copy, before the repository's
    where = subprocess.run([sys.executable, "-c", "import lstm_jax; print(lstm_jax.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    listed = subprocess.run([sys.executable, "-m", "lstm_jax.cli", "list"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("adding ") and "adding problem, T=100" in listed.stdout
    trained = subprocess.run(
        [sys.executable, "-m", "lstm_jax.cli", "train", "adding", "--steps", "3", "--no-progress",
         "--task-options", "length=8", "--hidden-size", "4", "--eval-batches", "1"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (elsewhere / "runs").iterdir()
    assert (run_dir / "checkpoints" / "3").is_dir()

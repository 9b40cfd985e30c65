"""The notebooks in notebooks/ run from a clean kernel, and are committed clean.

Each notebook is executed with nbclient in a fresh kernel of *this* interpreter
(``sys.executable``, the one running pytest, where lstm_jax is installed): the kernel
spec is ipykernel's native one, never a ``python3`` spec found on the machine, which
could start another Python without jax. A cell that raises fails its test.

To re-execute the notebooks and save them with their outputs (after editing one)::

    python tests/test_notebooks.py                       # all of them
    python tests/test_notebooks.py 01_lstm_anatomy.ipynb # some
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_S = 600  # per cell; the notebooks take well under a minute each
MAX_BYTES = 600_000  # a committed notebook, images included
# Outputs must not name the machine they ran on.
LOCAL_PATHS = sorted({str(ROOT), str(Path.home()), sys.prefix, tempfile.gettempdir(), "/work/"})


def kernel_manager() -> KernelManager:
    """A manager for ipykernel's native kernel: ``sys.executable -m ipykernel_launcher``."""
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def execute(name: str, extra_cell: str | None = None):
    """Run notebook ``name`` top to bottom in a new kernel; return it and the seconds taken.

    ``extra_cell``: code run last, in the same kernel, whose cell is then removed again.
    """
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    if extra_cell is not None:
        nb.cells.append(nbformat.v4.new_code_cell(extra_cell))
    client = NotebookClient(
        nb,
        km=kernel_manager(),
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if extra_cell is not None:
        nb.cells.pop()
    return nb, seconds


def clean(nb) -> None:
    """Drop what is per-run noise: timing metadata, widget state; name the kernel plainly."""
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


def test_kernel_is_this_interpreter(tmp_path, monkeypatch):
    # A "python3" kernel spec elsewhere on the machine (here: on JUPYTER_PATH) is ignored.
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "another Python", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    assert kernel_manager().kernel_spec.argv[0] == sys.executable


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name):
    execute(name)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_committed_with_outputs(name):
    path = NOTEBOOK_DIR / name
    assert path.stat().st_size < MAX_BYTES, f"{name} is {path.stat().st_size} bytes"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: not run top to bottom: {counts}"
    images = 0
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{name}: a cell failed: {out.get('ename')}"
            images += "image/png" in out.get("data", {})
            text = json.dumps({k: v for k, v in out.get("data", {}).items()
                               if not k.startswith("image/")}) + out.get("text", "")
            for local in LOCAL_PATHS:
                assert local not in text, f"{name}: an output names the local path {local}"
    assert images > 0, f"{name} was saved without its figures"


def cell_seconds(nb) -> list[tuple[float, int]]:
    """(seconds, index) of each executed cell, from nbclient's timing metadata."""
    from datetime import datetime

    timings = []
    for index, cell in enumerate(nb.cells):
        execution = cell.metadata.get("execution", {})
        if "iopub.execute_input" in execution and "shell.execute_reply" in execution:
            start, end = (datetime.fromisoformat(execution[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            timings.append(((end - start).total_seconds(), index))
    return sorted(timings, reverse=True)


def main(names: list[str]) -> None:
    cpu_file = Path(tempfile.mkdtemp()) / "cpu_seconds"
    # The kernel's own CPU time, all threads: less sensitive than wall time to a busy machine.
    report_cpu = (f"import resource; r = resource.getrusage(resource.RUSAGE_SELF); "
                  f"open({str(cpu_file)!r}, 'w').write(str(r.ru_utime + r.ru_stime))")
    for name in names or NOTEBOOKS:
        nb, seconds = execute(name, extra_cell=report_cpu)
        slowest = ", ".join(f"cell {i}: {s:.1f} s" for s, i in cell_seconds(nb)[:3])
        clean(nb)
        nbformat.write(nb, NOTEBOOK_DIR / name)
        size = os.path.getsize(NOTEBOOK_DIR / name)
        cpu = float(cpu_file.read_text())
        print(f"{name}: executed in {seconds:.1f} s (kernel CPU time {cpu:.1f} s), saved "
              f"({size / 1000:.0f} kB); slowest cells: {slowest}", flush=True)


if __name__ == "__main__":
    main([Path(a).name for a in sys.argv[1:]])

"""The notebooks in notebooks/ run from a clean kernel, and are committed clean, with
outputs that are current: running one again prints what its cells show.

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
import re
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
    # cleanup_kc: shut the kernel down at the end, which nbclient does by itself only for
    # a kernel manager it made (otherwise each kernel lives as long as the pytest worker)
    client.execute(cleanup_kc=True, env=users_environment())
    seconds = time.perf_counter() - start
    if extra_cell is not None:
        nb.cells.pop()
    return nb, seconds


def users_environment() -> dict[str, str]:
    """This process's environment less the XLA flags the test suite compiles with
    (conftest.py): a notebook runs as in a user's kernel."""
    from conftest import FAST_COMPILE_XLA_FLAGS

    env = dict(os.environ)
    if env.get("XLA_FLAGS") == FAST_COMPILE_XLA_FLAGS:
        del env["XLA_FLAGS"]
    return env


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


@pytest.mark.slow  # a kernel runs the notebook: up to minutes
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name):
    """It runs from a clean kernel, and prints what its committed outputs show: a change
    to the code it prints (a new params field, a new description) needs it re-executed."""
    nb, _ = execute(name)
    committed = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    for index, (now, before) in enumerate(zip(nb.cells, committed.cells)):
        if now.cell_type == "code":
            assert shape_of(text_outputs(now)) == shape_of(text_outputs(before)), (
                f"{name}, cell {index}: its committed output is stale; re-execute it with "
                f"`python tests/test_notebooks.py {name}`")


def text_outputs(cell) -> str:
    """A code cell's printed text and text results; images left out, and the streams
    joined (how a stream is cut into outputs depends on timing)."""
    streams: dict[str, str] = {}
    results = []
    for out in cell.outputs:
        if out.output_type == "stream":
            streams[out.name] = streams.get(out.name, "") + out.text
        elif "text/plain" in out.get("data", {}):
            results.append(out.data["text/plain"])
    return "".join(f"[{name}]\n{text}" for name, text in streams.items()) + "\n".join(results)


def shape_of(text: str) -> str:
    """``text`` with every number (timings, losses, addresses) as #, and runs of blanks as
    one: what stays is the words, names and fields a stale output would get wrong."""
    text = re.sub(r"0x[0-9a-f]+|[-+]?\d+(\.\d*)?(e[-+]?\d+)?", "#", text)
    return re.sub(r"[ \t]+", " ", text)


def named_tuple_fields(text: str) -> list[tuple[str, list[str]]]:
    """``[(name, fields)]`` of every ``Name(field=..., ...)`` repr in ``text``."""
    found = []
    for match in re.finditer(r"\b([A-Z]\w*)\((?=\w+=)", text):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        inside = text[match.end():end - 1]
        while re.search(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}", inside):  # nested values
            inside = re.sub(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}", "", inside)
        found.append((match.group(1), re.findall(r"(?:^|,)\s*(\w+)=", inside)))
    return found


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_outputs_show_the_current_fields_and_descriptions(name):
    """A cheap check of staleness, without running the notebook: every lstm_jax params or
    state repr it shows has the current fields, and a cell printing an experiment's
    description shows the current one."""
    import lstm_jax as lj
    from lstm_jax import train as lt

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    for index, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        text = text_outputs(cell)
        for type_name, fields in named_tuple_fields(text):
            current = getattr(getattr(lj, type_name, None), "_fields", None)
            assert current is None or list(current) == fields, (
                f"{name}, code cell {index}: {type_name} shown with fields {fields}, now "
                f"{list(current)}; re-execute it with `python tests/test_notebooks.py {name}`")
        for experiment in re.findall(r"load_experiment\([\"'](\w+)[\"']\)", cell.source):
            if ".description" in cell.source:
                assert lt.load_experiment(experiment).description in text, (
                    f"{name}, code cell {index}: not the current description of {experiment}; "
                    f"re-execute it with `python tests/test_notebooks.py {name}`")


def test_kernels_run_without_the_suites_xla_flags_but_with_a_users(monkeypatch):
    from conftest import FAST_COMPILE_XLA_FLAGS

    monkeypatch.setenv("XLA_FLAGS", FAST_COMPILE_XLA_FLAGS)
    assert "XLA_FLAGS" not in users_environment()
    assert users_environment()["PATH"] == os.environ["PATH"]
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert users_environment()["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"


def test_the_staleness_checks_see_a_changed_field_and_ignore_timings():
    assert named_tuple_fields("p: LSTMParams(w_ih=(2, 64), b=(64,), peephole=None)\n") == [
        ("LSTMParams", ["w_ih", "b", "peephole"])]
    assert named_tuple_fields("LSTMState(h=Array([[1, 2]], dtype=f32), c=Array(0.5))") == [
        ("LSTMState", ["h", "c"])]
    assert shape_of("step 25/150  loss 1.362  14.5 steps/s at 0x7f3a") == \
        shape_of("step 25/150 loss 0.7718  171.8 steps/s at 0x11")
    assert shape_of("LSTMParams(w_ih=(2, 64))") != shape_of("LSTMParams(w_ih=(2, 64), w_gg=None)")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_code_compiles(name):
    """The default tier's stand-in for running the notebooks (slow): every code cell, its
    magics turned into Python as the kernel turns them, compiles."""
    from IPython.core.inputtransformer2 import TransformerManager

    to_python = TransformerManager().transform_cell
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            compile(to_python(cell.source), f"{name}, cell {index}", "exec")


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

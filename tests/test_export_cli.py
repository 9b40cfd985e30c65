"""`lstm-jax export` (lstm_jax/train/export.py) and examples/serve.py: a run's whole model
as a file that jax alone (or onnxruntime) runs, equal to the run's own predictions."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lstm_jax import cli, exporting
from lstm_jax import train as lt
from lstm_jax.train import export
from tests.helpers import assert_close, extra_requirement

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "examples" / "serve.py"


def adding_inputs(B=3, T=9):
    xs = jax.random.normal(jax.random.key(5), (B, T, 2))
    return xs, jnp.asarray(np.linspace(T, 2, B).round(), jnp.int32)


@pytest.fixture(scope="module")
def exported_run(finished_run, tmp_path_factory):
    """(the StableHLO file of the session's finished run, what the command printed)."""
    out = tmp_path_factory.mktemp("export") / "model.bin"
    printed = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(printed):
        assert cli.main(["export", str(finished_run), "--out", str(out),
                         "--platforms", "cpu,cuda"]) == 0
    return out, printed.getvalue()


def test_the_file_of_a_run_gives_its_predictions_and_says_what_it_expects(finished_run,
                                                                         exported_run):
    out, printed = exported_run
    assert printed.splitlines() == [
        f"{out}: stablehlo for cpu, cuda, the model of {finished_run} at step 10",
        "inputs:",
        "  xs                       (B, T, 2)        float32",
        "  seq_lengths              (B,)             int32",
        "outputs:",
        "  predictions              (B, 1)           float32",
        f"described in {out}.json"]
    description = json.loads(Path(f"{out}.json").read_text())
    assert description == {
        "run": str(finished_run), "experiment": "adding", "checkpoint_step": 10,
        "format": "stablehlo", "step": False, "platforms": ["cpu", "cuda"],
        "inputs": [{"name": "xs", "shape": ["B", "T", 2], "dtype": "float32"},
                   {"name": "seq_lengths", "shape": ["B"], "dtype": "int32"}],
        "outputs": [{"name": "predictions", "shape": ["B", 1], "dtype": "float32"}]}
    exported = jax.export.deserialize(out.read_bytes())
    trained = lt.load(finished_run)
    for B, T in [(3, 9), (1, 4)]:
        xs, lengths = adding_inputs(B, T)
        assert_close(exported.call(xs, lengths), trained.predict(xs, lengths), atol=1e-6)


def copy_run_parts():
    """An untrained token model with a per-step readout (the copy task) as ``lt.Trained``."""
    config = lt.Config(task="copy", task_options={"delay": 3, "length": 2}, hidden_size=8,
                       num_layers=2, embed_size=4, batch_size=4)
    prepared = lt.prepare(config)
    params = prepared.model.init(jax.random.key(0))
    return lt.Trained("copy", config, prepared.task, prepared.model, params, 0)


def test_the_step_file_of_a_token_model_stepped_over_ids_gives_its_predictions():
    trained = copy_run_parts()
    fn, args = export._step(trained, None, None)
    assert [str(a.shape) for a in jax.tree.leaves(args)] == ["(B, 8)"] * 4 + ["(B,)"]  # 2 x (c, h)
    step = jax.export.deserialize(exporting.export_function(fn, args).serialize())
    ids = jax.random.randint(jax.random.key(1), (2, 6), 0, trained.task.input_size)
    carry = jax.tree.map(lambda a: jnp.zeros((2, *a.shape[1:]), a.dtype), args[0])
    predictions = []
    for t in range(ids.shape[1]):
        carry, p_t = step.call(carry, ids[:, t])
        predictions.append(p_t)
    assert_close(jnp.stack(predictions, axis=1), trained.model.apply(trained.params, ids),
                 atol=1e-6)


def load_serve():
    spec = importlib.util.spec_from_file_location("serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requests_and_expected(finished_run):
    xs, lengths = adding_inputs(2, 5)
    expected = np.asarray(lt.load(finished_run).predict(xs, lengths))
    lines = [json.dumps({"xs": np.asarray(xs).tolist(), "seq_lengths": lengths.tolist()}),
             json.dumps({"xs": [[1.0, 2.0]]})]
    return "\n".join(lines) + "\n", expected


def check_replies(text, expected):
    first, second = [json.loads(line) for line in text.splitlines()]
    assert_close(first["predictions"], expected, atol=1e-6)
    assert second == {"error": "ValueError: the request has no seq_lengths; this file takes "
                               "xs, seq_lengths"}


def test_serve_answers_requests_in_process(finished_run, exported_run, tmp_path):
    requests, expected = requests_and_expected(finished_run)
    replies = io.StringIO()
    load_serve().serve(str(exported_run[0]), io.StringIO(requests), replies)
    check_replies(replies.getvalue(), expected)
    with pytest.raises(SystemExit, match=f"^serve.py: cannot read {tmp_path / 'none.bin'}: "
                                         f"No such file or directory$"):
        load_serve().serve(str(tmp_path / "none.bin"), io.StringIO(requests), replies)


@pytest.mark.slow
def test_serve_as_a_program_reads_stdin_without_importing_lstm_jax(finished_run, exported_run):
    requests, expected = requests_and_expected(finished_run)
    code = ("import runpy, sys; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__'); "
            "print(sorted(m for m in sys.modules if m.startswith('lstm_jax')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(SERVE), str(exported_run[0])],
                          input=requests, capture_output=True, text=True, timeout=300,
                          check=True, cwd=exported_run[0].parent)
    check_replies(done.stdout, expected)
    assert done.stderr.splitlines()[-1] == "[]"


@pytest.mark.slow
def test_a_trained_copy_run_exported_as_a_step_serves_a_stream(tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "copy", "--task-options", "delay=3", "length=2", "--steps", "2",
                     "--hidden-size", "8", "--batch-size", "4", "--eval-batches", "1",
                     "--no-progress", "--out", str(run)]) == 0
    out = tmp_path / "step.bin"
    assert cli.main(["export", str(run), "--out", str(out), "--step", "--batch", "1"]) == 0
    trained = lt.load(run)
    ids = [3, 1, 4, 1, 5]
    requests = "".join(json.dumps({"x_t": [i]}) + "\n" for i in ids)
    requests += json.dumps({"reset": True, "x_t": [ids[0]]}) + "\n"
    replies = io.StringIO()
    load_serve().serve(str(out), io.StringIO(requests), replies)
    got = [json.loads(line)["predictions"][0] for line in replies.getvalue().splitlines()]
    expected = np.asarray(trained.model.apply(trained.params, jnp.array([ids])))[0]
    assert_close(got[:5], expected, atol=1e-5)
    assert_close(got[5], expected[0], atol=1e-6)  # the reset began again from zeros


@pytest.mark.slow
def test_the_onnx_file_of_a_run_gives_its_predictions_under_onnxruntime(finished_run, tmp_path,
                                                                        capsys):
    import onnxruntime

    out = tmp_path / "model.onnx"
    assert cli.main(["export", str(finished_run), "--out", str(out), "--format", "onnx"]) == 0
    assert f"{out}: onnx, the model of {finished_run} at step 10" in capsys.readouterr().out
    description = json.loads(Path(f"{out}.json").read_text())
    assert description["inputs"] == [{"name": "xs", "shape": ["B", "T", 2], "dtype": "float32"},
                                     {"name": "seq_lengths", "shape": ["B"], "dtype": "int32"}]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(out), options)
    xs, lengths = adding_inputs()
    (got,) = session.run(None, {"xs": np.asarray(xs), "seq_lengths": np.asarray(lengths)})
    assert_close(got, lt.load(finished_run).predict(xs, lengths), atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (["{run}"], "the following arguments are required: --out (see `lstm-jax export --help`)"),
    (["{run}", "--out", "{tmp}/none/m.bin"], "the folder of --out {tmp}/none/m.bin does not exist"),
    (["{run}", "--out", "{tmp}"], "--out {tmp} is a folder; give the path of the file to write"),
    (["{run}", "--out", "{tmp}/m", "--format", "tflite"],
     "argument --format: invalid choice: 'tflite' (choose from 'stablehlo', 'onnx') "
     "(see `lstm-jax export --help`)"),
    (["{run}", "--out", "{tmp}/m", "--format", "onnx", "--platforms", "cpu"],
     "--platforms chooses what a StableHLO file is lowered for; an ONNX file runs wherever "
     "onnxruntime does"),
    (["{run}", "--out", "{tmp}/m", "--platforms", "cpu,tpu9"],
     "--platforms: unknown platform 'tpu9'; known: cpu, cuda, rocm, tpu"),
    (["{run}", "--out", "{tmp}/m", "--platforms", "cpu,cpu"],
     "--platforms: repeated platform 'cpu'; name each platform once"),
    (["{run}", "--out", "{tmp}/m", "--batch", "0"], "--batch must be a positive int, got 0"),
    (["{run}", "--out", "{tmp}/m", "--step", "--time", "4"],
     "--time fixes the length of whole sequences; a --step file reads one step at a time"),
    (["{tmp}/nothing", "--out", "{tmp}/m"],
     "{tmp}/nothing/config.json not found: is {tmp}/nothing a run directory?"),
    (["{run}", "--out", "{tmp}/m", "--step"],
     "the model of 'adding' cannot be exported as a step: that needs a per-step readout and no "
     "bidirectional layer; export whole sequences (no --step)"),
])
def test_mistakes_are_one_line_exit_2_and_write_nothing(args, message, finished_run, tmp_path,
                                                       capsys):
    names = {"run": finished_run, "tmp": tmp_path}
    before = sorted(os.listdir(tmp_path))
    assert cli.main(["export", *(a.format(**names) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err == f"lstm-jax: error: {message.format(**names)}\n"
    assert sorted(os.listdir(tmp_path)) == before


def test_onnx_without_jax2onnx_names_what_to_install(finished_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # as if not installed
    assert cli.main(["export", str(finished_run), "--out", str(tmp_path / "m.onnx"),
                     "--format", "onnx"]) == 2
    pins = " ".join(f"'{extra_requirement(name)}'" for name in ("onnx", "onnx-ir"))
    assert capsys.readouterr().err == (
        f"lstm-jax: error: --format onnx needs jax2onnx: pip install {pins} && pip install "
        f"--no-deps 'jax2onnx==0.17.1'\n")
    assert not list(tmp_path.iterdir())


def test_a_signal_while_exporting_writes_neither_file_and_exits_143(finished_run, tmp_path,
                                                                    monkeypatch, capsys):
    """SIGTERM as the model is lowered: the export stops before writing, exit 143."""
    out = tmp_path / "m.bin"
    real = exporting.export_function
    monkeypatch.setattr(exporting, "export_function", lambda *a: (
        signal.raise_signal(signal.SIGTERM), real(*a))[1])
    assert cli.main(["export", str(finished_run), "--out", str(out)]) == 143
    captured = capsys.readouterr()
    assert captured.out == "" and list(tmp_path.iterdir()) == []
    assert captured.err.splitlines() == [
        "lstm-jax: SIGTERM received: stopping at the next safe point (SIGTERM again to stop at once)",
        f"lstm-jax: interrupted (SIGTERM); nothing was written. Start again with: lstm-jax export "
        f"{finished_run} --out {out}"]


def test_a_description_path_that_is_a_folder_is_a_mistake(finished_run, tmp_path, capsys):
    (tmp_path / "m.bin.json").mkdir()
    assert cli.main(["export", str(finished_run), "--out", str(tmp_path / "m.bin")]) == 2
    assert capsys.readouterr().err == (f"lstm-jax: error: {tmp_path}/m.bin.json, where the "
                                       f"description of --out {tmp_path}/m.bin goes, is a folder\n")
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin.json"]


def earlier_pair(folder):
    """An earlier export's FILE and FILE.json in ``folder``; their paths."""
    out = folder / "m.bin"
    out.write_text("earlier model")
    Path(f"{out}.json").write_text("earlier description")
    return out, Path(f"{out}.json")


@pytest.mark.parametrize("earlier", [True, False])
def test_stopped_at_once_as_the_files_are_written_keeps_what_was_there(
        earlier, finished_run, tmp_path, monkeypatch, capsys):
    """A second signal as FILE.json is written, FILE written beside it: the folder holds
    what it held before, the earlier FILE and FILE.json or nothing."""
    from lstm_jax.train import interrupts

    out = earlier_pair(tmp_path)[0] if earlier else tmp_path / "m.bin"
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    real = export.staged

    def staged(path, data):
        if path.name.endswith(".json"):
            raise interrupts.StoppedAtOnce(signal.SIGINT)
        return real(path, data)

    monkeypatch.setattr(export, "staged", staged)
    assert cli.main(["export", str(finished_run), "--out", str(out)]) == 130
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before
    assert capsys.readouterr().err.endswith(f"(SIGINT); nothing was written. Start again with: "
                                            f"lstm-jax export {finished_run} --out {out}\n")


def test_a_second_signal_as_the_files_are_renamed_waits_for_both(finished_run, tmp_path,
                                                                 monkeypatch, capsys):
    """SIGTERM twice as soon as FILE is renamed into place: FILE.json is renamed too, the
    earlier pair replaced whole; the export ends as a signal after its last safe point."""
    out, described = earlier_pair(tmp_path)
    real, renamed = os.replace, []

    def replace(partial, path):
        real(partial, path)
        renamed.append(Path(path).name)
        if len(renamed) == 1:  # one file of the pair in place, the other not yet
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)  # again: at once, but for the pair

    monkeypatch.setattr(export.os, "replace", replace)
    assert cli.main(["export", str(finished_run), "--out", str(out)]) == 143
    monkeypatch.undo()
    assert renamed == ["m.bin", "m.bin.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.bin.json"]
    assert json.loads(described.read_text())["checkpoint_step"] == 10
    assert jax.export.deserialize(bytearray(out.read_bytes())).in_avals  # the new model
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{out}: stablehlo")
    assert captured.err.splitlines()[-1] == ("lstm-jax: interrupted (SIGTERM) as the command "
                                             "ended; everything was written")


SIGNALLED_EXPORT = """
# `lstm-jax export ARGS...` with a real SIGTERM sent to this process as the model is lowered
import os, signal, sys
from lstm_jax import cli, exporting
export_function = exporting.export_function
def signalled(*args):
    os.kill(os.getpid(), signal.SIGTERM)
    return export_function(*args)
exporting.export_function = signalled
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_an_export_sigterm_from_outside_exits_143_and_writes_nothing(finished_run, tmp_path):
    out = tmp_path / "m.bin"
    result = subprocess.run([sys.executable, "-c", SIGNALLED_EXPORT, "export", str(finished_run),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 143, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGTERM); nothing was written. Start again with: lstm-jax "
        f"export {finished_run} --out {out}")
    assert list(tmp_path.iterdir()) == []

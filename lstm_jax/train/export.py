"""``lstm-jax export``: a run's whole trained model (embedding, recurrent layers, readout)
as one StableHLO or ONNX file, and beside it FILE.json saying what the file expects.

The model comes from the run's latest checkpoint that restores (``lt.load``). Over whole
sequences the program is ``(xs, seq_lengths (B,) int32) -> predictions`` with xs (B, T)
token ids or (B, T, I) features and predictions (B, O), or (B, T, O) for a per-step
readout; with ``step`` it is ``(carry, x_t) -> (carry, predictions (B, O))``, x_t (B,)
ids or (B, I), the carry zeros at the start (``lstm_jax.exporting``).

jax loads only once the arguments are checked (``check``): a mistake comes back at once.
A signal (``interrupts``) stops it before the files are put in place: an earlier FILE
and FILE.json are kept, or both replaced, never one of them.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from lstm_jax import _platforms
from lstm_jax._files import staged
from lstm_jax.train import interrupts
from lstm_jax.train.config import ConfigError

if TYPE_CHECKING:
    from lstm_jax.train.loop import Trained

SEQUENCE_OUTPUTS = ("predictions",)
STEP_OUTPUTS = ("new_carry", "predictions")


def check(out: Path, fmt: str, platforms: Sequence[str] | None, batch: int | None,
          time: int | None, step: bool) -> None:
    """The command's own mistakes, found before anything is loaded or written."""
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of --out {out} does not exist")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the path of the file to write")
    if Path(f"{out}.json").is_dir():
        raise ConfigError(f"{out}.json, where the description of --out {out} goes, is a folder")
    if platforms is not None and fmt != "stablehlo":
        raise ConfigError("--platforms chooses what a StableHLO file is lowered for; an ONNX "
                          "file runs wherever onnxruntime does")
    if fmt == "onnx" and importlib.util.find_spec("jax2onnx") is None:
        from lstm_jax._extras import pip_install

        raise ConfigError(f"--format onnx needs jax2onnx: "
                          f"{pip_install('onnx', 'onnx-ir', 'jax2onnx')}")
    problem = _platforms.problem("--platforms", platforms or ())
    if problem:
        raise ConfigError(problem)
    for name, value in (("--batch", batch), ("--time", time)):
        if value is not None and value <= 0:
            raise ConfigError(f"{name} must be a positive int, got {value}")
    if step and time is not None:
        raise ConfigError("--time fixes the length of whole sequences; a --step file reads "
                          "one step at a time")


def export_run(run_dir: Path, out: Path, *, fmt: str = "stablehlo",
               platforms: Sequence[str] | None = None, batch: int | None = None,
               time: int | None = None, step: bool = False) -> dict:
    """Write the model of ``run_dir`` to ``out`` and its description to ``out``.json;
    return the description: the run, the checkpoint's step, the format and the
    ``inputs`` and ``outputs``, each ``{"name", "shape", "dtype"}`` (a symbolic
    dimension as its name, "B" or "T")."""
    check(out, fmt, platforms, batch, time, step)
    from lstm_jax import exporting
    from lstm_jax.train.loop import load

    trained = load(run_dir)
    interrupts.check()  # before the model is traced and lowered
    fn, args = (_step if step else _sequence)(trained, batch, time)
    inputs = exporting.STEP_INPUTS if step else exporting.SEQUENCE_INPUTS
    outputs = STEP_OUTPUTS if step else SEQUENCE_OUTPUTS
    if fmt == "onnx":
        model = exporting.onnx_function(fn, args, inputs, outputs)
        data, described = model.SerializeToString(), exporting.describe_onnx(model)
    else:
        exported = exporting.export_function(fn, args, platforms)
        data, described = exported.serialize(), exporting.describe(exported, inputs, outputs)
        described["platforms"] = list(exported.platforms)
    description = {"run": str(run_dir), "experiment": trained.experiment,
                   "checkpoint_step": trained.step, "format": fmt, "step": step, **described}
    _write_pair({out: data, Path(f"{out}.json"): json.dumps(description, indent=2) + "\n"})
    return description


def _write_pair(files: dict[Path, bytes | str]) -> None:
    """Write ``files`` (path -> data) as a pair: each to a temporary file beside it, then,
    after the last safe point, both renamed into place. Stopped at any moment, the folder
    holds the files it held before (or none) or both new ones, never one of each."""
    partials: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            partials[path] = staged(path, data)
        interrupts.check()  # the last safe point
        with interrupts.indivisible():  # a second signal waits for both renames
            for path, partial in partials.items():
                os.replace(partial, path)
    except BaseException:  # stopped, or a write failed, before the renames
        for partial in partials.values():
            partial.unlink(missing_ok=True)
        raise


def _input(trained: Trained, B, T=None):
    """The ShapeDtypeStruct of xs, (B, T) ids or (B, T, I) features; x_t without T."""
    import jax
    import jax.numpy as jnp

    task = trained.task
    shape = (B,) if T is None else (B, T)
    if task.tokens:
        return jax.ShapeDtypeStruct(shape, jnp.int32)
    return jax.ShapeDtypeStruct((*shape, task.input_size), jnp.float32)


def _sequence(trained: Trained, batch, time):
    import jax
    import jax.numpy as jnp

    from lstm_jax import exporting

    B, T = exporting.dims(batch, time)

    def fn(xs, seq_lengths):
        return trained.model.apply(trained.params, xs, seq_lengths)

    return fn, (_input(trained, B, T), jax.ShapeDtypeStruct((B,), jnp.int32))


def _step(trained: Trained, batch, time):
    import jax

    from lstm_jax import exporting

    model, params = trained.model, trained.params
    if model.step is None:
        raise ConfigError(f"the model of {trained.experiment!r} cannot be exported as a step: "
                          f"that needs a per-step readout and no bidirectional layer; export "
                          f"whole sequences (no --step)")
    if trained.config.rnn_options.get("learn_initial_carry"):
        raise ConfigError("the model learns its initial carry, and a --step file starts from "
                          "zeros; export whole sequences (no --step)")
    B, _ = exporting.dims(batch, None)
    x_t = _input(trained, B)
    one = jax.ShapeDtypeStruct((B, 1, *x_t.shape[1:]), x_t.dtype)
    template = jax.eval_shape(lambda xs: model.step(params, None, xs)[0], one)

    def fn(carry, x_t):
        carry, predictions = model.step(params, exporting.structured(template, carry),
                                        x_t[:, None])
        return exporting.plain(carry), predictions[:, 0]

    return fn, (exporting.plain(template), x_t)


def summary(out: Path, description: dict) -> str:
    """What the command prints: the file, then each input and output."""
    where = (f" for {', '.join(description['platforms'])}" if "platforms" in description else "")
    lines = [f"{out}: {description['format']}{where}, the model of {description['run']} at step "
             f"{description['checkpoint_step']}"]
    for kind in ("inputs", "outputs"):
        lines.append(f"{kind}:")
        for entry in description[kind]:
            shape = "(" + ", ".join(map(str, entry["shape"])) + ("," if len(entry["shape"]) == 1
                                                                  else "") + ")"
            lines.append(f"  {entry['name']:24} {shape:16} {entry['dtype']}")
    lines.append(f"described in {out}.json")
    return "\n".join(lines)

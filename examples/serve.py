"""Answer requests with a model exported by `lstm-jax export`, using jax and numpy alone.

    lstm-jax export runs/adding-... --out model.bin        # writes model.bin and model.bin.json
    python examples/serve.py model.bin < requests.jsonl

Each line of standard input is one JSON request, each answer one JSON line on standard
output. A file of whole sequences takes its inputs by name, as model.bin.json lists
them: {"xs": [[[0.5, 1], ...]], "seq_lengths": [3]} -> {"predictions": [[...]]}. A
--step file keeps the carry between requests: {"x_t": [[0.5, 1]]} -> {"predictions":
...}, and {"reset": true} (alone or with x_t) starts again from zeros. A request that
does not fit gets {"error": "..."} and the server goes on. No lstm_jax import: the file
holds the program and its weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np


def load(path: str):
    """(the exported program, its description: FILE.json beside it)."""
    exported = jax.export.deserialize(bytearray(Path(path).read_bytes()))
    return exported, json.loads(Path(f"{path}.json").read_text())


def answer(exported, description: dict, request: dict, state: dict) -> dict:
    """One request's answer; ``state["carry"]`` holds a step file's carry between calls."""
    inputs = description["inputs"]
    if not description["step"]:
        names = [i["name"] for i in inputs]
        missing = [name for name in names if name not in request]
        if missing:
            raise ValueError(f"the request has no {', '.join(missing)}; this file takes "
                             f"{', '.join(names)}")
        arrays = [np.asarray(request[i["name"]], i["dtype"]) for i in inputs]
        return {"predictions": np.asarray(exported.call(*arrays)).tolist()}
    if request.get("reset"):
        state.pop("carry", None)
    if "x_t" not in request:
        return {"reset": True}
    x_t = np.asarray(request["x_t"], inputs[-1]["dtype"])
    carry = state.get("carry")
    if carry is None or len(carry[0]) != len(x_t):  # zeros, shaped as FILE.json says
        batch = {"B": len(x_t)}
        carry = [np.zeros([batch.get(d, d) for d in i["shape"]], i["dtype"]) for i in inputs[:-1]]
    args, kwargs = jax.tree.unflatten(exported.in_tree, [*carry, x_t])
    new_carry, predictions = exported.call(*args, **kwargs)
    state["carry"] = [np.asarray(a) for a in jax.tree.leaves(new_carry)]
    return {"predictions": np.asarray(predictions).tolist()}


def serve(path: str, requests, replies) -> None:
    try:
        exported, description = load(path)
    except OSError as error:  # no such file, or its .json missing
        sys.exit(f"serve.py: cannot read {error.filename}: {error.strerror}")
    state: dict = {}
    for line in requests:
        if not line.strip():
            continue
        try:
            reply = answer(exported, description, json.loads(line), state)
        except (ValueError, KeyError, TypeError) as error:  # a request that does not fit
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/serve.py FILE  (a StableHLO file of `lstm-jax export`)")
    serve(sys.argv[1], sys.stdin, sys.stdout)

"""The CPU a measurement ran on: benchmarks and experiment summaries record it, since
speed ratios compare only within one machine (AVX-512 with bf16 changes PyTorch's bf16
LSTM thirtyfold)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu(all_flags: bool = False) -> dict:
    """``{"cpu": model name, "cpu_count": cores, "vector": the VECTOR_FLAGS it has}``;
    with ``all_flags`` also ``"flags"``: every flag, as /proc/cpuinfo lists them."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = value.split()
    except OSError:  # not Linux: the model as platform names it, no flags
        pass
    found = {"cpu": model, "cpu_count": os.cpu_count(),
             "vector": [flag for flag in VECTOR_FLAGS if flag in flags]}
    return {**found, "flags": " ".join(flags)} if all_flags else found


def describe(found: dict) -> str:
    """``cpu()``'s record in words: "AMD EPYC, 2 cores, avx2 avx512f avx512_bf16"."""
    return f"{found['cpu']}, {found['cpu_count']} cores, {' '.join(found['vector']) or 'no AVX2'}"

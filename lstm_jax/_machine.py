"""The CPU a measurement ran on: benchmarks and experiment summaries record it, since
speed ratios compare only within one machine (AVX-512 with bf16 changes PyTorch's bf16
LSTM thirtyfold)."""

from __future__ import annotations

import ctypes
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


# mallopt's parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
KEPT_BYTES = 1 << 30  # freed memory at the top of the heap kept for reuse, at most


def maps_models() -> bool:
    """Whether models run at once go one after another inside their program
    (``jax.lax.map``) rather than batched (``jax.vmap``): on a CPU, where XLA splits a
    batched step's ops over its threads at a cost and gains nothing from batching small
    models (benchmarks/NOTES.md, "Many models at once", findings 8 and 10); an
    accelerator is filled by the batch."""
    import jax

    return jax.default_backend() == "cpu"


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep the large buffers XLA:CPU frees, for the next step to
    reuse, instead of mapping them fresh from the OS at every call. Call it before jax
    starts (its threads); returns whether it applied (False without glibc).

    XLA:CPU allocates an executable's temporaries as one buffer per call, on one of its
    threads. glibc serves a buffer over 32 MiB with ``mmap`` and unmaps it when freed
    (a thread's own arena cannot hold one over 64 MiB at all), so each call touches it
    page by page again: a training step of 4 adding-problem models vmapped (a 79 MB
    buffer) took 19,000-26,000 page faults and 1.6-1.75x the CPU time of the 4 models
    one after the other, whose 19 MB buffers glibc reuses (benchmarks/NOTES.md, "Many
    models at once"). One arena (``M_ARENA_MAX``), no ``mmap`` (``M_MMAP_MAX``) and
    up to ``KEPT_BYTES`` of free heap kept (``M_TRIM_THRESHOLD``) make every buffer
    come from the heap and stay there: the process holds its peak memory until it ends,
    as an accelerator's allocator does. The ``lstm-jax`` command calls it; it changes
    the whole process, so the library never does.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to set
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all(mallopt(option, value) == 1 for option, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, KEPT_BYTES)))

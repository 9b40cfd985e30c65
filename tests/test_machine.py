"""lstm_jax._machine: what a benchmark records of the CPU, and the malloc setting of the
lstm-jax command (keep_freed_memory)."""

import subprocess
import sys
from pathlib import Path

import pytest

from lstm_jax import _machine

# A fresh process: touch every page of a 96 MiB buffer (over glibc's 32 MiB ceiling for
# reusing a freed block instead of mapping one), free it, and count the page faults of
# doing it again. ``keep`` calls keep_freed_memory first.
PROBE = """
import ctypes, resource, sys
from lstm_jax import _machine
kept = _machine.keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 96 << 20

def touch():
    buffer = libc.malloc(size)
    ctypes.memset(buffer, 1, size)
    libc.free(buffer)

touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(mode: str) -> tuple[str, int]:
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, cwd=root, env={"PYTHONPATH": root, "PATH": ""}).stdout
    kept, faults = out.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_reuses_a_large_buffer_without_page_faults():
    pages = (96 << 20) // 4096
    kept, faults = _probe("as is")  # glibc maps the buffer afresh: every page faults again
    assert kept == "None" and faults >= pages
    kept, faults = _probe("keep")  # the freed buffer stays in the heap, its pages mapped
    assert kept == "True" and faults < pages // 100


def test_cpu_names_the_model_cores_and_vector_flags():
    found = _machine.cpu(all_flags=True)
    assert found["cpu_count"] >= 1 and found["cpu"]
    assert set(found["vector"]) <= set(_machine.VECTOR_FLAGS)
    assert all(flag in found["flags"].split() for flag in found["vector"])
    assert _machine.describe({"cpu": "X", "cpu_count": 2, "vector": []}) == "X, 2 cores, no AVX2"

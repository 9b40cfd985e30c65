"""Test-wide settings: strict rank promotion, full float32 matmuls, deterministic hypothesis
runs, a persistent compilation cache, and one finished training run shared by the tests."""

import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

# Ctrl-C as Python's default raises KeyboardInterrupt, in this process and (inherited) in
# the CLI processes the tests start, even when pytest itself was started in the
# background (`make test &`), where the shell ignores SIGINT: the interrupt tests need it
signal.signal(signal.SIGINT, signal.default_int_handler)

# jax's persistent compilation cache, outside the repository, kept between test sessions:
# every compile of 30 ms or more is cached (CPU compiles take well under jax's default 1 s
# threshold). Set in the environment, so that the CLI subprocesses and the notebooks'
# kernels use it too; a JAX_* variable already set wins. The size bound (2 GB) also turns
# on jax's file lock, so that the two xdist workers never read an entry half written; but
# then every write lists the whole cache to find what to evict, so caching the many
# compiles of a few ms (eager ops) too made a cold run a third slower (tests/test_rnn.py
# and lstm_jax/tasks: 39 s of CPU time, 30 s at 30 ms or without the cache; warm: 19 s
# and 22 s).
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
for name, value in [("JAX_COMPILATION_CACHE_DIR", str(CACHE_HOME / "lstm_jax-tests" / "jax")),
                    ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.03"),
                    ("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1"),
                    ("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024**3))]:
    os.environ.setdefault(name, value)
# XLA's CPU back end at its lowest optimisation level, with its older elemental emitters
# instead of the fusion emitters: the tests' programs are small, and compiling them is
# most of the suite's time. Compiling the forward and gradient programs of four small
# layers (LSTM, bidirectional GRU, a stack, MGU) took 5.7 s of CPU time at XLA's
# defaults, 3.3 s at the lowest level and 1.0 s with the emitters too. An XLA_FLAGS
# already set wins; the library itself never sets them, and the notebooks' kernels run
# without them, as a user's would (the floats differ in the last bits: a notebook's
# training can take another path).
FAST_COMPILE_XLA_FLAGS = ("--xla_backend_optimization_level=0 "
                          "--xla_llvm_disable_expensive_passes=true "
                          "--xla_cpu_use_fusion_emitters=false")


def _xla_knows(flags: str) -> bool:
    """Whether this jaxlib's XLA starts with ``flags``: it aborts the process on a flag it
    does not know, and flags come and go between versions (pyproject allows any jax from
    0.4.35). Tried once, in a process of its own; pytest-xdist's workers inherit the answer
    through XLA_FLAGS."""
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"],
                           env={**os.environ, "XLA_FLAGS": flags}, capture_output=True, timeout=300)
    return probe.returncode == 0


if "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = FAST_COMPILE_XLA_FLAGS if _xla_knows(FAST_COMPILE_XLA_FLAGS) else ""

import jax  # noqa: E402  (after the environment above, which jax reads at import)
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
# The parity tests compare with float64 NumPy and CPU PyTorch at ~1e-5: on a GPU, jax's
# default float32 matmuls are TF32-like (10-bit mantissa), so the tests ask for full
# float32 there. Library code never sets this; see the README's "Precision".
jax.config.update("jax_default_matmul_precision", "highest")

settings.register_profile(
    "lstm_jax",
    deadline=None,
    max_examples=25,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("lstm_jax")
# jax's traces and caches keep many Python objects alive; the cyclic GC's default
# thresholds then spend ~10% of the suite's CPU time walking them again and again
gc.set_threshold(100_000, 50, 100)


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m filter reads the marks
def pytest_collection_modifyitems(items):
    """The default tier runs every test once: a parametrized test there runs its first
    case, and its other cases are marked ``slow``, so ``make test-all`` (and CI) runs them
    all. Compiling each case's programs is most of the suite's time."""
    first_cases = set()
    for item in items:
        if not hasattr(item, "callspec"):
            continue
        test = (item.path, item.cls, item.originalname)
        if test in first_cases:
            item.add_marker(pytest.mark.slow)
        first_cases.add(test)


@pytest.fixture(autouse=True, scope="module")
def _compiled_programs_per_module():
    """jax's in-memory caches emptied after each test module: a worker's memory then stays
    bounded (it grew past 4 GB per xdist worker), and so does the cyclic GC's work."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory):
    """Data the tasks cache (MNIST-1D, the Bible, the chorales) goes to a folder of the
    test session, not the user's ~/.cache; CLI subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished run of `lstm-jax train adding` with the flags `helpers.FINISHED`
    (10 steps, checkpoints at 5 and 10), trained once per session (per xdist worker) for
    the tests that only read a run; a test that changes it works on a copy
    (`shutil.copytree`)."""
    from lstm_jax import cli
    from tests.helpers import FINISHED

    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(["train", "adding", "--out", str(out), *FINISHED]) == 0
    return out


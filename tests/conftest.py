"""Test-wide settings: strict rank promotion, full float32 matmuls, deterministic hypothesis runs."""

import jax
import pytest
from hypothesis import HealthCheck, settings

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


@pytest.fixture(autouse=True, scope="session")
def _private_data_cache(tmp_path_factory):
    """Data the tasks cache (MNIST-1D, the Bible, the chorales) goes to a folder of the
    test session, not the user's ~/.cache; CLI subprocesses inherit it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield

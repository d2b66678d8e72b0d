"""Shared test settings: reproducible hypothesis under JAX, and float64 enabled locally."""

import os
import tempfile

# Tests run on CPU even where a GPU is present unless asked otherwise (CI has none).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The command line keeps compiled programs in ~/.cache (scratchlm.cli.use_compile_cache); commands run
# by the tests, in this process or in subprocesses, compile afresh and leave nothing there.
os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")
# ... and keep the cleaned Wikipedia sample (scratchlm.data.corpora.cache_dir) in a folder of their own.
os.environ.setdefault("SCRATCHLM_CACHE_DIR", tempfile.mkdtemp(prefix="scratchlm-tests-cache-"))

import pytest
from hypothesis import HealthCheck, settings

# JAX's own settings: derandomized, no deadline (compilation would trip it), no example database.
settings.register_profile(
    "scratchlm",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "scratchlm"))


@pytest.fixture
def x64():
    """Enable float64 inside one test and restore the previous setting afterwards, even on failure."""
    import jax

    with jax.enable_x64(True):
        yield

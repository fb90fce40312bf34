"""Test configuration.

* 8 simulated CPU devices (set before the JAX backend starts) so sharding tests can run;
  more XLA threads than devices, or collectives deadlock.
* Mathematics is checked in float64: every test runs under ``jax.enable_x64(True)`` except
  those marked ``float32`` or living under ``tests/vjepa`` (training code runs in float32).
* The compilation caches of :mod:`dualjax.cache` are off (``DUALJAX_NO_CACHE=1``, inherited by
  the commands the tests start), so the suite never writes to the user's cache folder; the tests
  of the cache itself turn it on in a temporary folder.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("NPROC", "16")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["DUALJAX_NO_CACHE"] = "1"

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "float32: run without jax_enable_x64")


@pytest.fixture(autouse=True)
def _precision(request):
    path = str(request.node.path)
    if request.node.get_closest_marker("float32") or f"{os.sep}vjepa{os.sep}" in path:
        with jax.enable_x64(False):
            yield
    else:
        with jax.enable_x64(True):
            yield


@pytest.fixture
def key():
    """A fresh PRNG key per test (deterministic)."""
    return jax.random.PRNGKey(0)

"""Test configuration.

* 8 simulated CPU devices (set before the JAX backend starts) so sharding tests can run;
  more XLA threads than devices, or collectives deadlock.
* XLA's CPU backend compiles for speed of compiling: LLVM ``-O0``
  (``--xla_backend_optimization_level=0``) and the classic elemental emitters
  (``--xla_cpu_use_fusion_emitters=false``), added to ``XLA_FLAGS`` unless set there, and inherited
  by the commands and notebook kernels the tests start. The suite's programs are small and run a
  few steps, so compiling is most of its time: the two flags take the suite from ~14 to 5–7 minutes
  on two cores. XLA's HLO passes (fusion, layout, sharding) are the same as by default; only the
  machine code differs, so results may differ from a default build in the last bits (contraction
  of multiply-adds), never in what the tests check. For the default code generation run
  ``XLA_FLAGS="--xla_backend_optimization_level=3 --xla_cpu_use_fusion_emitters=true" pytest``.
* Mathematics is checked in float64: every test runs under ``jax.enable_x64(True)`` except
  those marked ``float32`` or living under ``tests/vjepa`` (training code runs in float32).
* The compilation caches of :mod:`dualjax.cache` are off (``DUALJAX_NO_CACHE=1``, inherited by
  the commands the tests start), so the suite never writes to the user's cache folder; the tests
  of the cache itself turn it on in a temporary folder.
* Instead one fresh JAX persistent compilation cache serves the whole session: its processes
  (both xdist workers, every ``dualjax`` command and notebook kernel a test starts) compile a
  program once between them (the tests compile the same small V-JEPA steps and Monte Carlo pools
  in several processes). A cache entry is only a compiled form of the same computation, so no
  result depends on it. It lives in a temporary folder made for the session
  (removed at its end), so nothing carries over between sessions. ``DUALJAX_TEST_XLA_CACHE=0``
  turns it off.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
os.environ.setdefault("NPROC", "16")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["DUALJAX_NO_CACHE"] = "1"


def _session_xla_cache() -> None:
    """Set JAX's persistent-cache variables once, in the first process (xdist's controller, or the
    only one); the workers and every child inherit them. Whoever made the folder removes it."""
    if os.environ.get("DUALJAX_TEST_XLA_CACHE", "1") == "0" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    root = tempfile.mkdtemp(prefix="dualjax-test-xla-")
    os.environ.update(JAX_COMPILATION_CACHE_DIR=root, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    atexit.register(shutil.rmtree, root, ignore_errors=True)


_session_xla_cache()

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


@pytest.fixture
def repo_script():
    """``repo_script("experiments/x.py")``: a script of the repository (not part of the package)
    loaded as a module, so a test can call its functions."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]

    def load(relpath: str):
        spec = importlib.util.spec_from_file_location(Path(relpath).stem, root / relpath)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


"""The on-disk compilation caches (dualjax.cache): JAX executables and the Monte Carlo kernels go
to the folder :func:`enable` names, a second process loads the kernel instead of compiling it
(with the same numbers), and the ``dualjax`` command turns them on unless told not to. Every
test uses a temporary folder; the suite itself runs with ``DUALJAX_NO_CACHE=1`` and a session XLA cache
(conftest)."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import cache, cli
from dualjax.linear.montecarlo import kernel


@pytest.fixture
def cache_off_after():
    session = jax.config.jax_compilation_cache_dir  # the suite's own XLA cache (conftest), if any
    cache.disable()  # these tests start from no cache at all, like a user's first command
    yield
    cache.disable()
    assert jax.config.jax_compilation_cache_dir is None and cache.root() is None
    if session:  # back to the suite's cache for the tests that follow in this process
        from jax.experimental.compilation_cache import compilation_cache

        jax.config.update("jax_compilation_cache_dir", session)
        compilation_cache.reset_cache()


def _entries(folder):
    return sorted(p for p in os.listdir(folder) if not p.startswith("."))


def test_enable_writes_a_jitted_function_to_the_given_folder(tmp_path, cache_off_after):
    root = cache.enable(tmp_path / "c")
    assert root == (tmp_path / "c").resolve() and cache.root() == root
    assert jax.config.jax_compilation_cache_dir == str(root / "jax")
    assert cache.kernel_dir() == root / "kernels"
    assert _entries(root / "jax") == []
    scale = float(np.pi)  # a function no other test compiled: a miss of JAX's in-memory cache too

    @jax.jit
    def f(x):
        return jnp.sin(x) * scale + x @ x

    y = f(jnp.arange(12.0).reshape(3, 4).T @ jnp.ones((3, 4)))
    assert np.isfinite(np.asarray(y)).all()
    assert len(_entries(root / "jax")) >= 1  # even a sub-second compile is kept (MIN_COMPILE_SECONDS)


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.default_dir() == tmp_path / "xdg" / "dualjax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.default_dir() == tmp_path / "home" / ".cache" / "dualjax"
    monkeypatch.setenv(cache.DIR_ENV, str(tmp_path / "mine"))
    assert cache.default_dir() == tmp_path / "mine"
    for value, off in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(cache.NO_CACHE_ENV, value)
        assert cache.disabled_by_env() is off, value


MC = ["montecarlo", "--trials", "16", "--rules", "sg", "--max-steps", "200", "--no-figures", "--engine", "kernel"]


def test_the_command_caches_unless_told_not_to(monkeypatch, tmp_path, capsys, cache_off_after):
    monkeypatch.setenv(cache.DIR_ENV, str(tmp_path / "c"))
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    assert cli.main([*MC, "--out", str(tmp_path / "a")]) == 0
    assert cache.root() is None and jax.config.jax_compilation_cache_dir is None
    assert not (tmp_path / "c").exists()
    monkeypatch.delenv(cache.NO_CACHE_ENV)
    for i, flags in enumerate((["--no-cache", *MC], [*MC, "--no-cache"])):  # the flag, before or after
        assert cli.main([*flags, "--out", str(tmp_path / f"b{i}")]) == 0
        assert cache.root() is None and not (tmp_path / "c").exists()
    assert cli.main([*MC, "--out", str(tmp_path / "d")]) == 0
    assert cache.root() == (tmp_path / "c").resolve()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c" / "jax")
    assert [p for p in _entries(tmp_path / "c" / "kernels") if p.endswith(".py")]  # the generated kernel
    assert (tmp_path / "a" / "trials.csv").read_bytes() == (tmp_path / "d" / "trials.csv").read_bytes()
    capsys.readouterr()


KERNEL_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    from dualjax import cache
    from dualjax.linear.montecarlo import kernel
    cache.enable(sys.argv[1])
    n, ema = 3, True
    cached = kernel.compile_kernel(n, ema)
    fresh = kernel._compile_kernel(n, ema, None)  # compiled in memory, not from the disk cache
    rng = np.random.default_rng(0)
    names = kernel.argument_names(n, ema)
    rows = {x: rng.uniform(-0.5, 0.5, 100) for x in names}
    rows.update(rho=rng.uniform(0.1, 3, 100), lam=rng.uniform(0.01, 0.1, 100), t=np.zeros(100),
                inc2=np.ones(100), bad=np.zeros(100), live=np.ones(100), max_rise=np.zeros(100),
                e_up=np.zeros(100), f_up=np.zeros(100))
    out = []
    for k in (cached, fresh):
        r = {x: v.copy() for x, v in rows.items()}
        k(*(r[x] for x in names), 300, 0.05, 0.9, 1e4, 1e-16, 1e12, 1e-12, 1e-15)
        out.append(np.stack([r[x] for x in names]))
    print(json.dumps({"hits": sum(cached.stats.cache_hits.values()),
                      "misses": sum(cached.stats.cache_misses.values()),
                      "same": bool(np.array_equal(out[0], out[1])), "moved": bool((out[0] != 0).any())}))
""")


@pytest.mark.skipif(not kernel.AVAILABLE, reason="numba is not importable")
def test_a_second_process_loads_the_kernel_instead_of_compiling(tmp_path):
    def run():
        out = subprocess.run([sys.executable, "-c", KERNEL_RUN, str(tmp_path / "c")], capture_output=True, text=True,
                             check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert (first["hits"], first["misses"]) == (0, 1), first
    assert (second["hits"], second["misses"]) == (1, 0), second
    # the object code from disk computes exactly what a fresh compile under the same options does
    assert first["same"] and second["same"] and second["moved"]
    modules = [p for p in _entries(tmp_path / "c" / "kernels") if p.endswith(".py")]
    assert len(modules) == 1 and modules[0].startswith("dualjax_kernel_n3_ema_"), modules

"""The on-disk compilation caches: XLA executables (JAX's persistent compilation cache) and the
Monte Carlo kernels compiled by numba (:mod:`dualjax.linear.montecarlo.kernel`), so that a second
process does not compile again what a first one compiled.

Nothing is cached on import: the ``dualjax`` command calls :func:`enable` before its first
compile (unless ``--no-cache`` or ``DUALJAX_NO_CACHE=1``); a script or a notebook calls it
itself if it wants the same. One folder holds both caches:

    <root>/jax       XLA executables, keyed by JAX on the computation, the flags and the versions
    <root>/kernels   the generated kernel sources and numba's object code beside them

with ``<root>`` the ``path`` given to :func:`enable`, else ``$DUALJAX_CACHE_DIR``, else
``$XDG_CACHE_HOME/dualjax``, else ``~/.cache/dualjax`` (:func:`default_dir`). A cache entry is
only a compiled form of the same computation, so results do not depend on whether it is on;
deleting the folder is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

NO_CACHE_ENV = "DUALJAX_NO_CACHE"
DIR_ENV = "DUALJAX_CACHE_DIR"

# Every compile that lasts this long goes to the JAX cache: the Monte Carlo command compiles
# ~50 small programs of 0.1-0.5 s each, which JAX's default threshold (1 s) would all skip.
MIN_COMPILE_SECONDS = 0.0

_enabled: dict[str, Path | None] = {"root": None}  # set only by enable() / disable()


def disabled_by_env() -> bool:
    """``DUALJAX_NO_CACHE`` set to anything but ``""`` or ``0``."""
    return os.environ.get(NO_CACHE_ENV, "") not in ("", "0")


def default_dir() -> Path:
    """``$DUALJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/dualjax``, else ``~/.cache/dualjax``."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dualjax"


def enable(path: str | os.PathLike | None = None) -> Path:
    """Turn both caches on, rooted at ``path`` (default :func:`default_dir`); returns the root.

    JAX: ``jax_compilation_cache_dir`` = ``<root>/jax``, with every compile cached
    (:data:`MIN_COMPILE_SECONDS`, no minimum entry size). Kernels: :func:`kernel_dir` becomes
    ``<root>/kernels``. Call it before the first compile of the programs to cache; calling it
    again with another folder moves both caches there.
    """
    import jax  # noqa: PLC0415 - `import dualjax.cache` stays light
    from jax.experimental.compilation_cache import compilation_cache  # noqa: PLC0415

    root = Path(default_dir() if path is None else path).expanduser().resolve()
    (root / "jax").mkdir(parents=True, exist_ok=True)
    (root / "kernels").mkdir(parents=True, exist_ok=True)
    compilation_cache.reset_cache()  # JAX opens its cache folder once; a new folder needs a reset
    jax.config.update("jax_compilation_cache_dir", str(root / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no minimum size
    _enabled["root"] = root
    return root


def disable() -> None:
    """Turn both caches off again (what is on disk stays)."""
    import jax  # noqa: PLC0415
    from jax.experimental.compilation_cache import compilation_cache  # noqa: PLC0415

    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()
    _enabled["root"] = None


def root() -> Path | None:
    """The folder :func:`enable` turned on, or None."""
    return _enabled["root"]


def kernel_dir() -> Path | None:
    """Where compiled Monte Carlo kernels are kept (``<root>/kernels``), or None when off."""
    return None if _enabled["root"] is None else _enabled["root"] / "kernels"

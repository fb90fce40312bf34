"""Running the study: :func:`study` (every rule, a fixed seed), :func:`run_trials` (one rule's
trials through a pool) and :func:`run_points` (given trials, e.g. a basin map).

The study runs in float64 (a tolerance of 1e-8 on the increment is below float32 rounding).
:func:`run_trials` picks the pool for the engine: the XLA pool on the mesh
(:mod:`~dualjax.linear.montecarlo.xlapool`) for ``fast`` / ``rules``, the host pool
(:mod:`~dualjax.linear.montecarlo.hostpool`) for ``kernel``; both give per-trial results that do
not depend on the number of devices, the chunk, the block or the threads.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks, rules
from dualjax.linear.montecarlo import kernel
from dualjax.linear.montecarlo.config import Config, check_config
from dualjax.linear.montecarlo.engines import closed_form, get_engine, resolve_engine
from dualjax.linear.montecarlo.hostpool import kernel_points, kernel_pool
from dualjax.linear.montecarlo.pool import DEFAULT_BLOCK, make_mesh, run_pool
from dualjax.linear.montecarlo.slots import run_to_end
from dualjax.linear.montecarlo.trials import Trial
from dualjax.linear.montecarlo.xlapool import all_cpu, xla_pool


def _threads(threads: int | None) -> int:
    return kernel.default_threads() if threads is None else checks.check_positive_int(threads, "threads")


def run_trials(
    key: jax.Array,
    trials: int,
    rule: rules.TeacherRule,
    cfg: Config = Config(),
    *,
    engine: str = "auto",
    chunk: int = 2048,
    block: int | None = None,
    devices: int | None = None,
    threads: int | None = None,
    start: int = 0,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Run trials ``start .. start + trials − 1`` of ``rule`` and return per-trial NumPy columns.

    ``chunk`` slots per device are advanced ``block`` steps per call (default
    :data:`~dualjax.linear.montecarlo.pool.DEFAULT_BLOCK` of the engine); finished slots are
    refilled with the next indices, and once the queue is empty the pool shrinks (8× at a time for
    XLA, to the live lanes for the kernel) so the last slow trials do not drag a full pool. The
    working memory is O(chunk · devices · n²), independent of ``trials``; only the returned
    columns (~100 bytes per trial) grow with it. ``progress(k)`` is called with the number of
    trials just finished. ``rule``: any :class:`~dualjax.rules.TeacherRule`. ``engine``: see
    :mod:`~dualjax.linear.montecarlo.engines` (``auto`` runs a rule without a closed form on
    ``rules``); ``kernel`` on a GPU/TPU mesh is an error. ``threads``: CPU threads of the ``kernel`` engine (default:
    every core this process may use; the results do not depend on it); the XLA engines ignore it.
    """
    checks.check_positive_int(trials, "trials")
    checks.check_positive_int(chunk, "chunk")
    if block is not None:
        checks.check_positive_int(block, "block")
    threads = _threads(threads)
    check_config(cfg)
    get_engine(engine, rule, cfg)  # validates rule and engine
    with jax.enable_x64(True):  # tol = 1e-8 on the increment is below float32 rounding
        mesh = make_mesh(devices)
        d = mesh.devices.size
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("trials"))
        per_dev = max(8, -(-chunk // 8) * 8)  # a multiple of 8 lanes: the same code on every device
        per_dev = min(per_dev, max(8, -(-trials // (8 * d)) * 8))
        engine = resolve_engine(engine, cfg.n, all_cpu(sharding), rule)
        block = block or DEFAULT_BLOCK[engine]
        ops = (kernel_pool(closed_form(rule), cfg, block, threads) if engine == "kernel"
               else xla_pool(engine, rule if engine == "rules" else closed_form(rule), cfg, block, sharding))
        return run_pool(ops, key, trials=trials, start=start, size=per_dev * d, devices=d, progress=progress)


def run_points(trials: Trial, rule: rules.TeacherRule, cfg: Config = Config(), engine: str = "auto",
               threads: int | None = None) -> dict[str, np.ndarray]:
    """Run given trials (a :class:`~dualjax.linear.montecarlo.trials.Trial` with a leading batch
    axis, e.g. a grid of a₀ for a basin map) to the end and return
    :func:`~dualjax.linear.montecarlo.slots.classify`'s columns: by one vmapped while loop, or on
    the host by the compiled kernel (``kernel``, the ``auto`` choice on a CPU backend)."""
    check_config(cfg)
    eng = get_engine(engine, rule, cfg)
    on_cpu = jax.default_backend() == "cpu"
    threads = _threads(threads)
    with jax.enable_x64(True):
        trials = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.int32 if np.asarray(x).dtype.kind == "i"
                                                              else jnp.float64), trials)
        if resolve_engine(engine, cfg.n, on_cpu, rule) == "kernel":
            return kernel_points(trials, closed_form(rule), cfg, threads)
        return jax.device_get(jax.jit(jax.vmap(lambda t: run_to_end(eng, cfg, t)))(trials))


def resolve_rules(rules_) -> list[rules.TeacherRule]:
    """A study's rule objects: ``rules_`` checked (default :func:`~dualjax.rules.sg` and
    :func:`~dualjax.rules.ema` with α = 0.99, the paper's pair), at least one, with distinct names
    (the columns are keyed by name; rename a rule with ``rule._replace(name=...)``)."""
    out = [rules.sg(), rules.ema()] if rules_ is None else [rules.check_rule(r) for r in rules_]
    if not out:
        raise ValueError("rules must hold at least one rule")
    names = [rule.name for rule in out]
    if len(set(names)) != len(names):
        raise ValueError(f"the rules of a study need distinct names (the columns are keyed by name), got {names}")
    return out


def kernels_needed(rules_, n: int, engine: str = "auto") -> list[tuple[int, bool]]:
    """The compiled kernels ``[(n, ema), ...]`` that running ``rules_`` at state size n on
    ``engine`` uses on this process's default backend (for :func:`kernel.prefetch`)."""
    if jax.default_backend() != "cpu" or not kernel.AVAILABLE:
        return []
    return [(n, closed_form(r).copy) for r in rules_ if resolve_engine(engine, n, True, r) == "kernel"]


def study(
    trials: int,
    rules_: tuple[rules.TeacherRule, ...] | list[rules.TeacherRule] | None = None,
    cfg: Config = Config(),
    *,
    seed: int = 0,
    engine: str = "auto",
    chunk: int = 2048,
    block: int | None = None,
    devices: int | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """The Monte Carlo study: ``trials`` trials per rule (the same trials for every rule), in float64.

    ``rules_``: rule objects (default: :func:`~dualjax.rules.sg` and :func:`~dualjax.rules.ema`
    with α = 0.99, the paper's pair); their names must differ. Returns ``{rule.name: columns}``;
    see :func:`run_trials`. Trial i of seed s is the same on any number of devices and with any
    ``chunk``/``block``/``threads``.
    """
    checks.check_positive_int(trials, "trials")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rules_ = resolve_rules(rules_)
    check_config(cfg)
    kernel.prefetch(kernels_needed(rules_, cfg.n, engine))  # compiled meanwhile the JAX programs compile
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=trials * len(rules_), desc="montecarlo", unit="trial", file=None)
    try:
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(seed)
            out = {}
            for rule in rules_:
                if bar is not None:
                    bar.set_postfix_str(rule.name)
                out[rule.name] = run_trials(key, trials, rule, cfg, engine=engine, chunk=chunk, block=block,
                                       devices=devices, threads=threads, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return out

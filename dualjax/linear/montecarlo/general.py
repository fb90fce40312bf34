"""The Monte Carlo over general m (issue 16): which equilibrium does a teacher rule reach for m ≥ 1?

The paper's study stops at m = 1, where the non-zero equilibria are Prop 4.11's two spheres. For
m > 1 an instance (ρ, τ, λ) has several full-rank components S_k (Prop 4.5 / Cor 4.6), of which
only the Loewner-maximal one was found stable (MATH.md §4–5), plus rank-deficient ones (partial
collapse) and the origin. This study runs any teacher rule — plain, SG, EMA or a user's
:class:`~dualjax.rules.TeacherRule` — from random starts on random instances and names where
each trial ends.

* **Instances and starts**: :mod:`~dualjax.linear.montecarlo.ensemble` (trial i is a pure function
  of (seed, i); at m = 1 the default ensemble reproduces the m = 1 study's trials).
* **Dynamics**: each trial steps ``rules.make_step(model.objective(λ).F, rule, optax.sgd(η))``
  (autodiff on the moment form of F, so any rule works; for SG / EMA at n ≤ 4 its closed form,
  :func:`~dualjax.linear.montecarlo.engines.general_fast_engine`: :func:`resolve_general_engine`)
  with the m = 1 study's stopping rule
  (increment < tol, budget, divergence: :mod:`~dualjax.linear.montecarlo.slots`), vmapped in a pool
  of slots sharded over a device mesh (:func:`~dualjax.linear.montecarlo.xlapool.make_pool_ops`,
  :func:`~dualjax.linear.montecarlo.pool.run_pool`); the results do not depend on the devices.
* **Equilibria**: all components of every instance, once per study for all rules
  (:func:`dualjax.linear.equilibria.batched.enumerate_batch`).
* **End points**: classified by :func:`~dualjax.linear.montecarlo.endpoints.classify_endpoints`
  (``full_rank`` component k / Loewner-maximal, ``partial`` of rank r, ``origin``,
  ``not_converged``, ``diverged``) with the Jacobian check (stable / saddle) at each end point.

:func:`general_study` is the entry point; :func:`run_instances` runs given instances (e.g. starts
placed near chosen components).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks, rules
from dualjax.linear.equilibria.batched import BatchEnumeration, enumerate_batch
from dualjax.linear.montecarlo.config import Config, check_config
from dualjax.linear.montecarlo.endpoints import classify_endpoints, component_classes, flatten_state
from dualjax.linear.montecarlo.engines import Engine, closed_form, general_fast_engine, rules_engine
from dualjax.linear.montecarlo.ensemble import (
    Instance,
    get_sampler,
    instance_moments,
    sample_instances,
)
from dualjax.linear.montecarlo.pool import DEFAULT_BLOCK, make_mesh, run_pool
from dualjax.linear.montecarlo.run import resolve_rules
from dualjax.linear.montecarlo.slots import advance_slot, finish_slot, init_slot, slot_active
from dualjax.linear.montecarlo.xlapool import make_pool_ops

_DATA = ("rho", "tau", "lam", "sigma")


@dataclass(frozen=True)
class GeneralConfig(Config):
    """Settings of a general-m study (validated by :func:`check_general_config`): the m = 1 study's
    :class:`~dualjax.linear.montecarlo.config.Config` (η, the initial point, the stopping rule, the
    ranges; the rules' own settings such as EMA's α are on the rule objects) and the fields below.
    For m > 1: an end point is at an equilibrium S* if ‖√S − √S*‖ ≤ rtol (1 + ‖√S*‖) (at m = 1 the
    m = 1 study's |‖a‖ − r| ≤ rtol (1 + r)); singular values of A below origin_tol count as
    collapsed (the numerical rank); init / init_scale as in
    :func:`~dualjax.linear.montecarlo.ensemble.init_point`.

    Attributes:
        n: embedding width n > m (A ∈ R^{n×m}, B ∈ R^{n×n})
        m: input dimension m ≥ 1 (x, y ∈ R^m); 1 is the paper's study
        ensemble: the instance law: paper (the paper's, made m-dimensional), wishart or aug
        aug_scale: s of the aug ensemble, τ = (I + sG)ρ
    """

    n: int = 4
    m: int = 2
    ensemble: str = field(default="paper", metadata={"choices": ("paper", "wishart", "aug")})
    aug_scale: float = 0.3


def check_general_config(cfg: GeneralConfig) -> GeneralConfig:
    """Every field checked (the m = 1 study's checks plus m ≥ 1, n > m, the ensemble); a bad one
    raises ValueError naming it and its value."""
    checks.check_positive_int(cfg.m, "m")
    checks.check_positive_int(cfg.n, "n")
    if cfg.n <= cfg.m:
        raise ValueError(f"n must exceed m (the linear model needs n > m), got n={cfg.n}, m={cfg.m}")
    check_config(cfg)
    get_sampler(cfg.ensemble)
    checks.check_positive(cfg.aug_scale, "aug_scale")
    return cfg


GENERAL_ENGINES = ("auto", "fast", "rules")
# The closed form on scalars pays for n ≤ 4 (m = 2, n = 4: SG ~4x, EMA ~2.5x the autodiff step per
# CPU second); at m = 3, n = 5 it runs no faster than autodiff and compiles 4-8x longer (many
# fusions, each recomputing shared terms), as the m = 1 study's ``auto`` found beyond n = 4.
FAST_MAX_N = 4


def resolve_general_engine(engine: str, rule, n: int) -> str:
    """``fast`` (the closed form, :func:`~dualjax.linear.montecarlo.engines.general_fast_engine`) or
    ``rules`` (autodiff) for ``rule`` at width n; ``auto`` picks ``fast`` for a rule with a closed
    form (``ema_alpha`` not None: SG, EMA with a constant α) when n ≤ :data:`FAST_MAX_N`, and ``rules``
    otherwise (plain, DirectPred, a scheduled EMA, yours; wider n). ``fast`` for a rule without a
    closed form, and the m = 1 study's ``kernel`` (no general-m form), are ValueErrors naming them."""
    if engine not in GENERAL_ENGINES:
        raise ValueError(f"engine must be one of {list(GENERAL_ENGINES)} for the general-m study, got {engine!r}")
    if engine == "auto":
        return "fast" if rules.check_rule(rule).ema_alpha is not None and n <= FAST_MAX_N else "rules"
    if engine == "fast":
        closed_form(rule)  # a rule without a closed form is a ValueError naming it
    return engine


def general_engine(rule, cfg: GeneralConfig, engine: str = "auto") -> Engine:
    """The per-trial :class:`~dualjax.linear.montecarlo.engines.Engine` on an
    :class:`~dualjax.linear.montecarlo.ensemble.Instance`: ``rules``, the m = 1 study's autodiff
    engine (:func:`~dualjax.linear.montecarlo.engines.rules_engine`:
    ``rules.make_step(model.objective(λ).F, rule, optax.sgd(η))``), or ``fast``, its closed form
    (:func:`~dualjax.linear.montecarlo.engines.general_fast_engine`), per
    :func:`resolve_general_engine`; ``final`` gives (A, B, C = ξ)."""
    if resolve_general_engine(engine, rule, cfg.n) == "fast":
        return general_fast_engine(rule, cfg)
    eng = rules_engine(rule, cfg, start=lambda inst: (inst.A0, inst.B0), moments=instance_moments)
    return eng._replace(final=lambda s: (s.theta, s.psi, rule.teacher(s.theta, s.teacher)))


def _end_columns(eng: Engine, cfg: GeneralConfig, inst: Instance, slot) -> dict:
    """What the host keeps of a stopped lane: the instance, the end state (flattened), the loop's flags."""
    slot = finish_slot(eng, cfg, inst, slot)
    A, B, C = eng.final(slot.dyn)
    z, zi = flatten_state(eng.state(slot.dyn, slot.t))
    return {"index": inst.index, "rho": inst.rho, "tau": inst.tau, "lam": inst.lam, "sigma": inst.sigma,
            "A": A, "B": B, "C": C,
            "z": z, "zi": zi, "steps": slot.t, "converged": slot.inc2 < cfg.tol**2, "diverged": slot.bad,
            "increment": jnp.sqrt(slot.inc2), "e_increased": slot.e_up, "max_E_rise": slot.max_rise}


def _fill(eng, cfg, table: Instance, index, live):
    """Lanes ``index`` of the pool: rows of the study's instance table (sampled once, for every rule and
    pool size: the pools compile no sampler) and their initial slots."""
    inst = jax.tree_util.tree_map(lambda x: x[index], table)
    return inst, jax.vmap(lambda t, l: init_slot(eng, cfg, t, l))(inst, live)


@functools.lru_cache(maxsize=32)
def general_pool(rule, cfg: GeneralConfig, block: int, sharding, engine: str = "auto"):
    """The XLA pool of :func:`general_engine` (cached per rule, config, block, sharding and engine); its
    ``fill`` / ``refill`` take the instance table (a batched :class:`Instance`) where the m = 1 pool takes
    the key."""
    engine = resolve_general_engine(engine, rule, cfg.n)
    eng = general_engine(rule, cfg, engine)

    def columns(pool):
        inst, slot = pool
        res = jax.vmap(lambda t, s: _end_columns(eng, cfg, t, s))(inst, slot)
        res["done"] = ~jax.vmap(lambda s: slot_active(s, cfg))(slot)
        return res

    return make_pool_ops(eng, cfg, block, sharding, fill=functools.partial(_fill, eng, cfg), columns=columns)


def run_rule(key, trials: int, rule, cfg: GeneralConfig, *, sampler=None, instances: Instance | None = None,
             engine: str = "auto", chunk: int = 2048, block: int | None = None, devices: int | None = None,
             progress=None) -> dict[str, np.ndarray]:
    """Trials 0 .. trials − 1 of ``rule`` run to their stop on ``engine`` (:func:`resolve_general_engine`):
    the raw end columns (:func:`_end_columns`). ``instances``: the trials' instances
    (:func:`~dualjax.linear.montecarlo.ensemble.sample_instances` of ``key``, ``cfg`` and ``sampler``, which
    is what is drawn when it is None; :func:`general_study` passes the ones it enumerated)."""
    engine = resolve_general_engine(engine, rule, cfg.n)
    with jax.enable_x64(True):
        if instances is None:
            sampler = get_sampler(cfg.ensemble if sampler is None else sampler)
            instances = sample_instances(key, np.arange(trials), cfg, sampler)
        elif np.shape(instances.index)[0] < trials:
            raise ValueError(f"instances holds {np.shape(instances.index)[0]} trials, fewer than trials={trials}")
        mesh = make_mesh(devices)
        d = mesh.devices.size
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("trials"))
        table = jax.device_put(instances, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
        per_dev = min(max(8, -(-chunk // 8) * 8), max(8, -(-trials // (8 * d)) * 8))
        ops = general_pool(rule, cfg, block or DEFAULT_BLOCK[engine], sharding, engine)
        return run_pool(ops, table, trials=trials, start=0, size=per_dev * d, devices=d, progress=progress)


@functools.lru_cache(maxsize=32)
def _instances_runner(rule, cfg: GeneralConfig, engine: str):
    """Jitted, vmapped: an instance run to its stop by one while loop, then its end columns (cached, so
    repeated calls with the same rule, config, engine and batch size compile once)."""
    eng = general_engine(rule, cfg, engine)

    def one(inst):
        slot = init_slot(eng, cfg, inst)
        slot = jax.lax.while_loop(lambda s: slot_active(s, cfg), lambda s: advance_slot(eng, cfg, inst, s, 1), slot)
        return _end_columns(eng, cfg, inst, slot)

    return jax.jit(jax.vmap(one))


def run_instances(instances: Instance, rule, cfg: GeneralConfig, engine: str = "auto") -> dict[str, np.ndarray]:
    """Given instances (batched; e.g. starts near chosen components) run to their stop on ``engine``
    by one vmapped while loop: the raw end columns, as :func:`run_rule` returns them."""
    check_general_config(cfg)
    run = _instances_runner(rule, cfg, resolve_general_engine(engine, rule, cfg.n))
    with jax.enable_x64(True):
        return jax.device_get(run(jax.tree_util.tree_map(jnp.asarray, instances)))


class GeneralStudy(NamedTuple):
    """A general-m study: the config, the seed, per rule the classified columns
    (:func:`~dualjax.linear.montecarlo.endpoints.classify_endpoints`), the enumeration of every
    instance's equilibria, per rule the Jacobian check of the components of the first instances
    (:func:`~dualjax.linear.montecarlo.endpoints.component_classes`, (K', E), −1 padding), and wall times."""

    cfg: GeneralConfig
    seed: int
    columns: dict
    enumeration: BatchEnumeration
    seconds: dict
    components: dict

    def config_dict(self) -> dict:
        return asdict(self.cfg)


def general_study(trials: int, rules_=None, cfg: GeneralConfig = GeneralConfig(), *, seed: int = 0,
                  sampler: str | Callable | None = None, engine: str = "auto", chunk: int = 2048,
                  block: int | None = None, devices: int | None = None, progress: bool = False, starts: int = 32,
                  components: int = 256) -> GeneralStudy:
    """``trials`` trials of every rule on the same instances (trial i = (seed, i)), classified against
    every equilibrium of its instance, in float64. ``rules_``: rule objects (:func:`resolve_rules`);
    ``sampler``: a name or function (default ``cfg.ensemble``); ``engine``: ``auto`` (the closed form
    for SG / EMA at n ≤ 4, autodiff otherwise), ``fast`` or ``rules`` (:func:`resolve_general_engine`);
    ``starts``: LM starts per rank for the rank-deficient equilibria; ``components``: the components
    of the first this many instances also get the Jacobian check under every rule (which are stable,
    which are saddles). The pool and its arguments are :func:`run_rule`'s."""
    checks.check_positive_int(trials, "trials")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_general_config(cfg)
    rule_objs = resolve_rules(rules_)
    for rule in rule_objs:
        resolve_general_engine(engine, rule, cfg.n)
    sampler = get_sampler(cfg.ensemble if sampler is None else sampler)
    seconds: dict[str, Any] = {}
    bar = _progress_bar(trials * len(rule_objs)) if progress else None
    try:
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(seed)
            t0 = time.perf_counter()
            inst = jax.device_get(sample_instances(key, np.arange(trials), cfg, sampler))
            enum = enumerate_batch(inst.rho, inst.tau, inst.lam, starts=starts, seed=seed)
            seconds["equilibria"] = time.perf_counter() - t0
            columns, comp_classes = {}, {}
            first = np.arange(min(trials, components))
            for rule in rule_objs:
                if bar is not None:
                    bar.set_postfix_str(rule.name)
                t0 = time.perf_counter()
                ends = run_rule(key, trials, rule, cfg, instances=inst, engine=engine, chunk=chunk, block=block,
                                devices=devices, progress=bar.update if bar is not None else None)
                seconds[f"run_{rule.name}"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                columns[rule.name] = classify_endpoints(rule, cfg, ends, enum)
                comp_classes[rule.name] = component_classes(rule, cfg, enum, {k: ends[k] for k in _DATA}, first)
                seconds[f"classify_{rule.name}"] = time.perf_counter() - t0
    finally:
        if bar is not None:
            bar.close()
    return GeneralStudy(cfg, seed, columns, enum, seconds, comp_classes)


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="montecarlo", unit="trial")

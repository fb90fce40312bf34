"""The m = 1 synthetic Monte Carlo study (paper §4, "10,000 random trials"; MATH.md §7).

One trial (a pure function of ``(key, index)``):

1. sample ρ ~ U(0, 3], τ ~ U[−1, 1), λ ~ U[0.01, 0.1) and an initial point
   a₀ ∈ R^n, B₀ ∈ R^{n×n} (PyTorch ``nn.Linear`` init scaled by s, as
   :func:`dualjax.linear.model.init_params`; or ``gauss``: a₀ ~ N(0, s²/n I));
2. run discrete SG or EMA (step η, ``optax.sgd``; EMA teacher ξ_t = α ξ_{t−1} + (1 − α) θ_t,
   ξ₀ = θ₀) until the increment ‖(θ_t − θ_{t−1}, ψ_t − ψ_{t−1}, ξ_t − ξ_{t−1})‖ < tol, the step
   budget, or divergence — exactly :func:`dualjax.dynamics.run_discrete`'s stopping rule;
3. classify the end with Prop 4.11 (Δ = τ² − 4ρλ, r₁,₂ = (|τ| ∓ √Δ)/(2ρ)):

   * ``outer``:  converged and |‖a‖ − r₂| ≤ rtol (1 + r₂)   (stable sphere S₂),
   * ``inner``:  converged and |‖a‖ − r₁| ≤ rtol (1 + r₁)   (saddle sphere S₁),
   * ``origin``: converged and ‖a‖ < origin_tol             (collapse),
   * ``not_converged``: the budget ran out, or the run stopped away from every equilibrium,
   * ``diverged``: non-finite parameters or ‖(a, B)‖ > max_norm;

   and whether E(θ_t, ψ_t) (and F(θ_t, ψ_t, ξ_t)) ever increased along the way (Prop 3.1).

**ρ = 0.** U[0, 3] contains ρ = 0, where Prop 4.11's radii are undefined (r₂ = ∞). We sample
ρ = hi − (hi − lo)·u with u ~ U[0, 1), i.e. from the half-open interval (lo, hi], so ρ > 0
always; the law is the same as U[lo, hi] (a single point has probability 0). A range with
lo < 0 or hi ≤ 0 is rejected.

**Randomness.** Trial i uses ``jax.random.fold_in(key, i)``, so its numbers do not depend on
the chunk size, the pool it ran in, or the number of devices; SG and EMA see the same trials.

**Engines.** ``rules`` drives each trial with :func:`dualjax.rules.make_step` on the
moment-form F of :func:`dualjax.linear.model.objective` (autodiff, the same code path as every
other study). ``fast`` is the m = 1 closed form of the same step (Lemma 4.1,
∇_a F = Bᵀr + λa, ∇_B F = r aᵀ + λB, r = ρBa − τc), written on scalars so that XLA fuses the
whole step into elementwise loops over trials; ``tests/test_montecarlo.py`` checks it equals
the rules' step to 1e-12. ``kernel`` runs the fast engine's arithmetic in the pool as a
compiled, lane-vectorized CPU loop (:mod:`dualjax.linear.kernel`, numba): XLA splits the vmapped
step into a dozen loop fusions that each stream the pool through memory, the kernel keeps a
block of trials in L1 for all its steps (3-6x faster on a CPU), on all cores (``threads``). ``auto`` picks ``kernel`` on
an all-CPU mesh and ``fast`` on a GPU/TPU for n ≤ 4, ``rules`` beyond.

**Scale.** Trials run in a pool of slots (``chunk`` per device) that is advanced ``block``
steps at a time; finished slots are harvested and refilled with the next trial indices, so
memory is bounded by the pool and slow trials do not hold fast ones back. The slot axis is
sharded over a 1-D :class:`jax.sharding.Mesh` (``AxisType.Auto``) of the chosen devices;
each slot's arithmetic is elementwise, so the results are bitwise identical on 1 or 8 devices
(the ``kernel`` engine keeps the pool on the host; its results do not depend on the mesh).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dualjax import checks, dynamics, rules
from dualjax.linear import kernel, model, spheres

OUTCOMES = ("outer", "origin", "inner", "not_converged", "diverged")
OUTER, ORIGIN, INNER, NOT_CONVERGED, DIVERGED = range(5)
STUDY_RULES = ("sg", "ema")
ENGINES = ("auto", "kernel", "fast", "rules")

# P(Δ ≥ 0) for ρ ~ U[0,3], τ ~ U[−1,1], λ ~ U[0.01,0.1] (MATH.md §7):
# 98/243 + 4√3/405 + (25/81) ln(6/5).
P_DELTA_NONNEG = 98 / 243 + 4 * math.sqrt(3) / 405 + 25 / 81 * math.log(6 / 5)
DEFAULT_RANGES = {"rho_range": (0.0, 3.0), "tau_range": (-1.0, 1.0), "lam_range": (0.01, 0.1)}


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Config:
    """Settings of one study. Validate with :func:`check_config` (done by every entry point).

    n: embedding dimension (a ∈ R^n); eta: step η; alpha: EMA momentum α ∈ [0, 1];
    init: ``torch`` (a ~ s·U[−1,1]^n, B ~ s·U[−1/√n, 1/√n]^{n×n}) or ``gauss``
    (a ~ N(0, s²/n I), B ~ N(0, s²/n²)); init_scale: s; max_steps: step budget; tol: increment
    tolerance; max_norm: divergence threshold on ‖(a, B)‖; rtol / origin_tol: classification.
    """

    n: int = 2
    eta: float = 0.05
    alpha: float = 0.99
    init: str = "torch"
    init_scale: float = 1.0
    max_steps: int = 60_000
    tol: float = 1e-8
    max_norm: float = 1e6
    rtol: float = 1e-3
    origin_tol: float = 1e-3
    rho_range: tuple[float, float] = (0.0, 3.0)
    tau_range: tuple[float, float] = (-1.0, 1.0)
    lam_range: tuple[float, float] = (0.01, 0.1)


def check_config(cfg: Config) -> Config:
    """Every field checked; a bad one raises ValueError naming it and its value."""
    checks.check_positive_int(cfg.n, "n")
    if cfg.n < 2:
        raise ValueError(f"n must be >= 2 (the linear model needs n > m = 1), got n={cfg.n}")
    checks.check_positive(cfg.eta, "eta")
    checks.check_alpha(cfg.alpha)
    if cfg.init not in ("torch", "gauss"):
        raise ValueError(f"init must be 'torch' or 'gauss', got {cfg.init!r}")
    checks.check_positive(cfg.init_scale, "init_scale")
    checks.check_positive_int(cfg.max_steps, "max_steps")
    for name in ("tol", "max_norm", "rtol", "origin_tol"):
        checks.check_positive(getattr(cfg, name), name)
    for name in ("rho_range", "tau_range", "lam_range"):
        lo, hi = _range(getattr(cfg, name), name)
        if name == "rho_range" and (lo < 0 or hi <= 0):
            raise ValueError(
                f"rho_range must satisfy 0 <= lo < hi (rho = E[x^2] > 0; rho is drawn from (lo, hi]), got {(lo, hi)}"
            )
        if name == "lam_range" and lo <= 0:
            raise ValueError(f"lam_range must have lo > 0 (Prop 4.11 needs lambda > 0), got {(lo, hi)}")
    return cfg


def _range(value, name):
    try:
        lo, hi = (float(v) for v in value)
    except Exception as err:
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be a finite interval with lo < hi, got {(lo, hi)}")
    return lo, hi


# --------------------------------------------------------------------------- one trial

class Trial(NamedTuple):
    """The random data of one trial: its index, (ρ, τ, λ) and the initial point (a₀, B₀)."""

    index: jax.Array
    rho: jax.Array
    tau: jax.Array
    lam: jax.Array
    a0: jax.Array  # (n,)
    B0: jax.Array  # (n, n)


def sample_trial(key: jax.Array, index, cfg: Config) -> Trial:
    """Trial ``index`` of the study with base ``key`` (randomness from ``fold_in(key, index)``)."""
    k = jax.random.fold_in(key, index)
    k_rho, k_tau, k_lam, k_init = jax.random.split(k, 4)
    dtype = jnp.result_type(float)
    u = jax.random.uniform(k_rho, (), dtype)
    rho = cfg.rho_range[1] - (cfg.rho_range[1] - cfg.rho_range[0]) * u  # (lo, hi]: ρ > 0
    tau = jax.random.uniform(k_tau, (), dtype, *cfg.tau_range)
    lam = jax.random.uniform(k_lam, (), dtype, *cfg.lam_range)
    n, s = cfg.n, cfg.init_scale
    if cfg.init == "torch":
        A, B = model.init_params(k_init, n, 1, scale=s, dtype=dtype)
        a = A[:, 0]
    else:
        ka, kb = jax.random.split(k_init)
        a = s / np.sqrt(n) * jax.random.normal(ka, (n,), dtype)
        B = s / n * jax.random.normal(kb, (n, n), dtype)
    return Trial(jnp.asarray(index, jnp.int32), rho, tau, lam, a, B)


def trial_moments(trial: Trial) -> model.Moments:
    """(ρ, τ, σ) as 1×1 moments; σ = τ²/ρ, the smallest consistent choice (it only shifts E, F)."""
    one = lambda v: jnp.reshape(v, (1, 1))  # noqa: E731
    return model.Moments(one(trial.rho), one(trial.tau), one(trial.tau**2 / trial.rho))


class Engine(NamedTuple):
    """How one slot moves: ``init(trial) -> dyn``; ``step(trial, dyn) -> (dyn⁺, ‖increment‖²)``;
    ``measure(trial, dyn) -> (E, F, ‖(a, B)‖²)`` at the current point, F = ``None`` for SG where
    F(θ, ψ, ξ = θ) = E (saves carrying a copy); ``final(dyn) -> (a, B, c)``."""

    init: Callable
    step: Callable
    measure: Callable
    final: Callable


def rules_engine(rule: str, cfg: Config) -> Engine:
    """Each step is :func:`dualjax.rules.make_step` (autodiff of the moment-form F, ``optax.sgd(η)``)."""
    teacher_rule = rules.get_rule(rule, cfg.alpha)

    def parts(trial):
        obj = model.objective(trial.lam)
        init, step = rules.make_step(obj.F, teacher_rule, optax.sgd(cfg.eta))
        return obj, init, step

    def init(trial):
        _, init_fn, _ = parts(trial)
        return init_fn(trial.a0[:, None], trial.B0)

    def step(trial, s):
        _, _, step_fn = parts(trial)
        s2, m = step_fn(s, trial_moments(trial))
        return s2, m["d_theta"] ** 2 + m["d_psi"] ** 2 + m["d_xi"] ** 2

    def measure(trial, s):
        obj = model.objective(trial.lam)
        mom = trial_moments(trial)
        E = obj.E(s.theta, s.psi, mom)
        F = obj.F(s.theta, s.psi, teacher_rule.teacher(s.theta, s.teacher), mom) if rule == "ema" else None
        return E, F, jnp.sum(s.theta**2) + jnp.sum(s.psi**2)

    def final(s):
        c = s.teacher.xi if rule == "ema" else s.theta
        return s.theta[:, 0], s.psi, c[:, 0]

    return Engine(init, step, measure, final)


def fast_engine(rule: str, cfg: Config) -> Engine:
    """The m = 1 closed form of the rules' step (Lemma 4.1), on lists of per-trial scalars.

        u = B a,  r = ρ u − τ c,  a⁺ = a − η(Bᵀ r + λ a),  B⁺ = B − η(r aᵀ + λ B),
        c⁺ = a⁺ (SG)  or  α c + (1 − α) a⁺ (EMA),
        E(a, B) = F(a, B, a),  F(a, B, c) = ½ρ‖Ba‖² − τ⟨Ba, c⟩ + ½σ‖c‖² + ½λ(‖a‖² + ‖B‖²).

    The increment is measured like :func:`dualjax.rules.make_step`'s metrics (for SG the teacher
    is θ itself, so ‖Δξ‖ = ‖Δθ‖).
    """
    n, eta, alpha, ema = cfg.n, cfg.eta, cfg.alpha, rule == "ema"

    def dot(x, y):
        return sum(xi * yi for xi, yi in zip(x, y))

    def matvec(B, a):
        return [dot(row, a) for row in B]

    def init(trial):
        a = [trial.a0[j] for j in range(n)]
        B = [[trial.B0[i, j] for j in range(n)] for i in range(n)]
        return (a, B, list(a)) if ema else (a, B)

    def step(trial, dyn):
        a, B = dyn[0], dyn[1]
        c = dyn[2] if ema else a
        rho, tau, lam = trial.rho, trial.tau, trial.lam
        r = [rho * u_i - tau * c_i for u_i, c_i in zip(matvec(B, a), c)]
        g_a = [sum(B[i][j] * r[i] for i in range(n)) + lam * a[j] for j in range(n)]
        step_a = [eta * g for g in g_a]
        step_B = [[eta * (r[i] * a[j] + lam * B[i][j]) for j in range(n)] for i in range(n)]
        a2 = [a_j - d for a_j, d in zip(a, step_a)]
        B2 = [[B[i][j] - step_B[i][j] for j in range(n)] for i in range(n)]
        d_B = sum(dot(row, row) for row in step_B)
        if ema:
            c2 = [alpha * c_j + (1 - alpha) * a_j for c_j, a_j in zip(c, a2)]
            d_c = [x - y for x, y in zip(c2, c)]
            return (a2, B2, c2), dot(step_a, step_a) + d_B + dot(d_c, d_c)
        return (a2, B2), 2 * dot(step_a, step_a) + d_B

    def measure(trial, dyn):
        a, B = dyn[0], dyn[1]
        c = dyn[2] if ema else a
        rho, tau, lam = trial.rho, trial.tau, trial.lam
        u = matvec(B, a)
        sq_a, sq_B, uu = dot(a, a), sum(dot(row, row) for row in B), dot(u, u)
        sigma = tau**2 / rho
        reg = 0.5 * lam * (sq_a + sq_B)
        E = 0.5 * rho * uu - tau * dot(u, a) + 0.5 * sigma * sq_a + reg
        F = 0.5 * rho * uu - tau * dot(u, c) + 0.5 * sigma * dot(c, c) + reg if ema else None
        return E, F, sq_a + sq_B

    def final(dyn):
        a = jnp.stack(dyn[0])
        B = jnp.stack([jnp.stack(row) for row in dyn[1]])
        c = jnp.stack(dyn[2]) if ema else a
        return a, B, c

    return Engine(init, step, measure, final)


def resolve_engine(engine: str, n: int, cpu: bool = True) -> str:
    """``auto`` -> ``kernel`` on an all-CPU mesh for n <= 4 when numba is importable, else ``fast``
    for n <= 4 (the scalar closed form fuses well), else ``rules``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return ("kernel" if cpu and kernel.AVAILABLE else "fast") if n <= 4 else "rules"
    if engine == "kernel" and not cpu:
        raise ValueError("engine='kernel' runs on the host CPU; on a GPU/TPU mesh use engine='fast' or 'auto'")
    return engine


def get_engine(engine: str, rule: str, cfg: Config) -> Engine:
    """The per-trial :class:`Engine`; ``kernel`` shares the fast engine's (it only replaces the
    pool's ``advance``, with the same arithmetic)."""
    if rule not in STUDY_RULES:
        raise ValueError(f"rule must be one of {list(STUDY_RULES)}, got {rule!r}")
    engine = resolve_engine(engine, cfg.n)
    return (rules_engine if engine == "rules" else fast_engine)(rule, cfg)


class Slot(NamedTuple):
    """Per-trial loop state (the carry of :func:`dualjax.dynamics.run_discrete`, plus ``live``)."""

    dyn: Any
    t: jax.Array
    inc2: jax.Array
    E: jax.Array
    F: jax.Array | None  # None for SG: F(θ, ψ, θ) = E
    e_up: jax.Array
    f_up: jax.Array | None
    max_rise: jax.Array
    bad: jax.Array
    live: jax.Array


def _rose(new, old):
    return new > old * (1 + dynamics.E_RTOL * jnp.sign(old)) + dynamics.E_ATOL


def init_slot(engine: Engine, cfg: Config, trial: Trial, live=True) -> Slot:
    """θ₀ with E₀, F₀ and the divergence test at t = 0, as in ``run_discrete``'s initial carry."""
    dyn = engine.init(trial)
    E0, F0, sq = engine.measure(trial, dyn)
    false = jnp.zeros((), bool)
    return Slot(dyn, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, E0.dtype), E0, F0, false,
                None if F0 is None else false, jnp.zeros_like(E0), _diverged(sq, cfg.max_norm), jnp.asarray(live))


def _diverged(sq, max_norm):
    return ~jnp.isfinite(sq) | (sq > max_norm**2)


def slot_active(slot: Slot, cfg: Config) -> jax.Array:
    """Still running: live, under budget, last increment ≥ tol, not diverged."""
    return slot.live & (slot.t < cfg.max_steps) & (slot.inc2 >= cfg.tol**2) & ~slot.bad


def _check(engine: Engine, cfg: Config, trial: Trial, slot: Slot, due) -> Slot:
    """Record E, F and divergence of the current point θ_t where ``due`` (exactly what
    :func:`dualjax.dynamics.run_discrete` does right after producing θ_t)."""
    E, F, sq = engine.measure(trial, slot.dyn)
    bad = _diverged(sq, cfg.max_norm)
    ok = due & ~bad
    if F is not None:
        slot = slot._replace(F=jnp.where(due, F, slot.F), f_up=slot.f_up | (ok & _rose(F, slot.F)))
    return slot._replace(
        E=jnp.where(due, E, slot.E), e_up=slot.e_up | (ok & _rose(E, slot.E)),
        max_rise=jnp.where(ok, jnp.maximum(slot.max_rise, E - slot.E), slot.max_rise),
        bad=slot.bad | (due & bad))


def advance_slot(engine: Engine, cfg: Config, trial: Trial, slot: Slot, num_steps: int, unroll: int = 1) -> Slot:
    """``num_steps`` masked steps of one slot; a slot that has stopped stays frozen (``unroll``
    steps per loop iteration; it changes the code XLA emits, not the arithmetic).

    E, F and the divergence test of θ_t are evaluated at the start of the next iteration, from
    the state in hand (not from the freshly computed θ_{t+1}): XLA then does not recompute the
    step inside every consumer, which makes the loop ~2.5× faster. The last point of a run is
    checked by :func:`finish_slot`. Steps, flags and verdicts equal ``run_discrete``'s.
    """

    def body(_, s):
        active = slot_active(s, cfg)
        s = _check(engine, cfg, trial, s, active & (s.t > 0))
        go = active & ~s.bad
        dyn, inc2 = engine.step(trial, s.dyn)
        new = s._replace(dyn=dyn, t=s.t + 1, inc2=inc2)
        return jax.tree_util.tree_map(lambda x, y: jnp.where(go, x, y), new, s)

    return jax.lax.fori_loop(0, num_steps, body, slot, unroll=unroll)


def finish_slot(engine: Engine, cfg: Config, trial: Trial, slot: Slot) -> Slot:
    """Check the final point of a stopped slot (it was produced by the last step but not yet checked)."""
    return _check(engine, cfg, trial, slot, (slot.t > 0) & ~slot.bad & ~slot_active(slot, cfg))


def run_trial(key, index, rule: str, cfg: Config, engine: str = "auto") -> dict:
    """One trial end to end, as a pure function (jit/vmap it); returns :func:`classify`'s dict."""
    eng = get_engine(engine, rule, cfg)
    trial = sample_trial(key, index, cfg)
    slot = init_slot(eng, cfg, trial)
    slot = jax.lax.while_loop(lambda s: slot_active(s, cfg),
                              lambda s: advance_slot(eng, cfg, trial, s, 1), slot)
    return classify(eng, cfg, trial, slot)


def classify(engine: Engine, cfg: Config, trial: Trial, slot: Slot) -> dict:
    """Outcome code (index into :data:`OUTCOMES`) from the final state and Prop 4.11's radii."""
    slot = finish_slot(engine, cfg, trial, slot)
    a, _, _ = engine.final(slot.dyn)
    norm = jnp.sqrt(jnp.sum(a**2))
    delta = spheres.discriminant(trial.rho, trial.tau, trial.lam)
    r1, r2 = spheres.radii(trial.rho, trial.tau, trial.lam)
    converged = slot.inc2 < cfg.tol**2
    near = lambda r: (delta >= 0) & (jnp.abs(norm - r) <= cfg.rtol * (1 + r))  # noqa: E731
    outcome = jnp.where(
        slot.bad, DIVERGED,
        jnp.where(~converged, NOT_CONVERGED,
                  jnp.where(near(r2), OUTER,
                            jnp.where(near(r1), INNER,
                                      jnp.where(norm < cfg.origin_tol, ORIGIN, NOT_CONVERGED)))))
    return {"index": trial.index, "rho": trial.rho, "tau": trial.tau, "lam": trial.lam, "delta": delta,
            "r1": r1, "r2": r2, "outcome": outcome.astype(jnp.int32), "steps": slot.t,
            "final_norm": norm, "e_increased": slot.e_up,
            "f_increased": slot.e_up if slot.f_up is None else slot.f_up,
            "max_E_rise": slot.max_rise}


# --------------------------------------------------------------------------- the pool driver

def make_mesh(devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh ``('trials',)`` over the first ``devices`` devices (all by default), AxisType.Auto."""
    avail = jax.devices()
    d = len(avail) if devices is None else checks.check_positive_int(devices, "devices")
    if d > len(avail):
        raise ValueError(f"devices={d} but only {len(avail)} are available")
    return jax.make_mesh((d,), ("trials",), axis_types=(jax.sharding.AxisType.Auto,), devices=avail[:d])


def run_trials(
    key: jax.Array,
    trials: int,
    rule: str,
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
    :data:`DEFAULT_BLOCK` of the engine); finished slots are refilled with the next indices, and
    once the queue is empty the pool shrinks (8× at a time for XLA, to the live lanes for the
    kernel) so the last slow trials do not drag a full pool. The working memory is
    O(chunk · devices · n²), independent of ``trials``; only the returned columns (~100 bytes per
    trial) grow with it. ``progress(k)`` is called with the number of trials just finished.
    ``engine``: see the module docstring; ``kernel`` on a GPU/TPU mesh is an error.
    ``threads``: CPU threads of the ``kernel`` engine (default: every core this process may use;
    the results do not depend on it); the XLA engines ignore it.
    """
    checks.check_positive_int(trials, "trials")
    checks.check_positive_int(chunk, "chunk")
    if block is not None:
        checks.check_positive_int(block, "block")
    threads = kernel.default_threads() if threads is None else checks.check_positive_int(threads, "threads")
    check_config(cfg)
    get_engine(engine, rule, cfg)  # validates rule and engine
    with jax.enable_x64(True):  # tol = 1e-8 on the increment is below float32 rounding
        return _run_pool(key, trials, rule, cfg, engine, chunk, block, devices, threads, start, progress)


def _run_pool(key, trials, rule, cfg, engine, chunk, block, devices, threads, start, progress):
    mesh = make_mesh(devices)
    d = mesh.devices.size
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("trials"))
    per_dev = max(8, -(-chunk // 8) * 8)  # a multiple of 8 lanes: the same code on every device
    per_dev = min(per_dev, max(8, -(-trials // (8 * d)) * 8))
    size = per_dev * d
    engine = resolve_engine(engine, cfg.n, _all_cpu(sharding))
    block = block or DEFAULT_BLOCK[engine]
    fns = _pool_functions(engine, rule, cfg, block, sharding)
    if engine == "kernel":
        fns = _kernel_pool(fns, cfg, rule, block, threads)

    out: dict[str, np.ndarray] = {}
    next_index = start
    end = start + trials
    slot_index = np.full(size, -1, np.int64)
    first = np.arange(next_index, min(end, next_index + size))
    slot_index[: len(first)] = first
    next_index += len(first)
    pool = fns["fill"](key, np.maximum(slot_index, 0).astype(np.int32), slot_index >= 0)
    done_count = 0
    while done_count < trials:
        # Once the queue is empty nothing is refilled: check for finished slots less often
        # (the XLA pool; the host kernel's checks are cheap).
        for _ in range(1 if next_index < end else fns["drain_blocks"]):
            pool = fns["advance"](pool)
        lanes, res = fns["harvest"](pool, slot_index >= 0)
        if len(lanes):
            idx = slot_index[lanes] - start
            for name, col in res.items():
                if name not in out:
                    out[name] = np.zeros(trials, col.dtype)
                out[name][idx] = col
            done_count += len(lanes)
            if progress is not None:
                progress(len(lanes))
            slot_index[lanes] = -1
            new = np.arange(next_index, min(end, next_index + len(lanes)))
            if len(new):
                # Refill the first finished slots with the next trials.
                next_index += len(new)
                slot_index[lanes[: len(new)]] = new
                pool = fns["refill"](key, pool, lanes[: len(new)], new.astype(np.int32))
        live = int((slot_index >= 0).sum())
        smaller = fns["drain"](size, live, d) if next_index >= end and live else None
        if smaller is not None:
            # Drain: move the live slots into a smaller pool, so the slow last trials do not
            # drag a pool of finished ones.
            size = smaller
            keep = np.flatnonzero(slot_index >= 0)
            take = np.zeros(size, np.int64)
            take[: len(keep)] = keep
            slot_index = np.where(np.arange(size) < len(keep), slot_index[take], -1)
            pool = fns["shrink"](pool, take.astype(np.int32), slot_index >= 0)
    return out


# XLA:CPU options for the pool's step loop (DebugOptions; they change scheduling and codegen,
# not the arithmetic, so the results are bitwise the same). Region-analysis copy insertion drops
# most of the per-step buffer copies of the loop carry; 512-bit vectors use all of AVX-512 on the
# elementwise fusions. Together ~1.3-1.5x on the SG step loop (docs/montecarlo.md, Performance).
CPU_ADVANCE_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True, "xla_cpu_prefer_vector_width": 512}


# Steps per iteration of the fast engine's pool loop: two let XLA drop the carry copies of the SG
# loop (~1.15x); for EMA (more state) it does not pay.
ADVANCE_UNROLL = {"sg": 2, "ema": 1}


def _all_cpu(sharding) -> bool:
    return {dev.platform for dev in sharding.mesh.devices.flat} == {"cpu"}


def _advance_options(sharding) -> dict | None:
    return dict(CPU_ADVANCE_OPTIONS) if _all_cpu(sharding) else None


@functools.lru_cache(maxsize=32)
def _pool_functions(engine: str, rule: str, cfg: Config, block: int, sharding) -> dict[str, Callable]:
    """The pool's steps on the mesh, jitted and cached (a repeated study does not compile again).

    ``pool`` is ``(trials, slots)`` with a leading lane axis. ``fill(key, index, live) -> pool``
    samples and initializes trial ``index[i]`` in lane i; ``advance(pool)`` takes ``block``
    steps; ``harvest(pool, occupied) -> (lanes, columns)`` finds the occupied lanes whose trial
    has stopped and returns their :func:`classify` columns; ``refill(key, pool, lanes, index)``
    puts fresh trials ``index`` into ``lanes``; ``shrink(pool, take, live)`` keeps lanes ``take``;
    ``drain(size, live, devices)`` is the smaller pool size to move ``live`` lanes into once no
    trial is queued (or None), and ``drain_blocks`` the ``advance`` calls between harvests then.
    ``fill_packed`` and ``classify_packed`` are unsharded versions for the ``kernel`` engine's
    host pool that cross the host boundary as one (lanes, k) float64 array each way
    (:func:`_pack`); ``pool_spec`` / ``result_spec`` unpack them.
    """
    eng = get_engine(engine, rule, cfg)
    on_mesh = lambda tree: jax.lax.with_sharding_constraint(tree, sharding)  # noqa: E731
    put = lambda x: jax.device_put(x, sharding)  # noqa: E731

    def sample(key, index):
        return sample_trial(key, index, cfg)

    def fill_batch(key, index, live):
        trial = jax.vmap(sample, in_axes=(None, 0))(key, index)
        return trial, jax.vmap(lambda t, l: init_slot(eng, cfg, t, l))(trial, live)

    def fill(key, index, live):
        return on_mesh(fill_batch(key, index, live))

    unroll = ADVANCE_UNROLL[rule] if engine == "fast" else 1

    def advance(pool):
        trial, slot = pool
        return trial, jax.vmap(lambda t, s: advance_slot(eng, cfg, t, s, block, unroll))(trial, slot)

    def classify_batch(pool):
        trial, slot = pool
        res = jax.vmap(lambda t, s: classify(eng, cfg, t, s))(trial, slot)
        res["done"] = ~jax.vmap(lambda s: slot_active(s, cfg))(slot)
        return res

    def refill(key, pool, index, mask):
        pick = lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (y.ndim - 1)), x, y)  # noqa: E731
        return jax.tree_util.tree_map(pick, fill(key, index, mask), pool)

    def shrink(pool, take, live):
        trial, slot = jax.tree_util.tree_map(lambda x: x[take], pool)
        return on_mesh(trial), on_mesh(slot._replace(live=live))

    fill_jit, classify_jit = jax.jit(fill), jax.jit(classify_batch)
    refill_jit, shrink_jit = jax.jit(refill, donate_argnums=1), jax.jit(shrink)
    advance_jit = jax.jit(advance, donate_argnums=0, compiler_options=_advance_options(sharding))

    def harvest(pool, occupied):
        res = jax.device_get(classify_jit(pool))
        lanes = np.flatnonzero(res.pop("done") & occupied)
        return lanes, {name: col[lanes] for name, col in res.items()}

    def refill_lanes(key, pool, lanes, index):
        full = np.zeros(pool[0].index.shape[0], np.int32)
        mask = np.zeros(len(full), bool)
        full[lanes], mask[lanes] = index, True
        return refill_jit(key, pool, put(full), put(mask))

    def drain(size, live, devices):
        """8x smaller once at most 1/8 of the lanes are live (each pool size is compiled once)."""
        per_dev = size // devices
        return max(8, per_dev // 8) * devices if live <= size // 8 and per_dev > 8 else None

    return {
        "fill": lambda key, index, live: fill_jit(key, put(index), put(live)),
        "drain": drain,
        "drain_blocks": 8,
        "advance": advance_jit,
        "harvest": harvest,
        "refill": refill_lanes,
        "shrink": lambda pool, take, live: shrink_jit(pool, put(take), put(live)),
        **(_packed_functions(fill_batch, classify_batch) if engine == "kernel" else {}),
    }


def _packed_functions(fill_batch, classify_batch) -> dict:
    example = (jax.random.PRNGKey(0), np.zeros(KERNEL_BATCH, np.int32), np.zeros(KERNEL_BATCH, bool))
    pool_spec = _spec(jax.eval_shape(fill_batch, *example))
    result_spec = _spec(jax.eval_shape(lambda pool: classify_batch(_unpack(pool, pool_spec, jnp)),
                                       jax.ShapeDtypeStruct((KERNEL_BATCH, pool_spec[2]), jnp.float64)))
    return {
        "fill_packed": jax.jit(lambda key, index, live: _pack(fill_batch(key, index, live), jnp)),
        "classify_packed": jax.jit(lambda pool: _pack(classify_batch(_unpack(pool, pool_spec, jnp)), jnp)),
        "pool_spec": pool_spec,
        "result_spec": result_spec,
    }


def _spec(tree) -> tuple:
    """(treedef, [(name, per-lane shape, dtype, first column, end column)], width) of a
    (Trial, Slot) pytree with a leading lane axis, as laid out by :func:`_pack`. The name of a
    scalar leaf is its field (``rho``, ``t``, ...), of a state scalar its kernel name (``a0``,
    ``B01``, ``c1``: :func:`dualjax.linear.kernel.state_names`); for a dict, its key."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    parts, col = [], 0
    for path, x in leaves:
        keys = [getattr(k, "name", getattr(k, "idx", getattr(k, "key", None))) for k in path]
        if len(keys) == 1:  # a dict of columns
            name = keys[0]
        else:
            name = "aBc"[keys[2]] + "".join(map(str, keys[3:])) if keys[1] == "dyn" else keys[1]
        width = int(np.prod(x.shape[1:]))
        parts.append((name, tuple(x.shape[1:]), np.dtype(x.dtype), col, col + width))
        col += width
    return treedef, parts, col


def _pack(tree, xp=np):
    """All leaves of ``tree`` side by side as one (lanes, k) float64 array (ints and bools are exact)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return xp.concatenate([xp.reshape(x, (x.shape[0], -1)).astype(xp.float64) for x in leaves], axis=1)


def _unpack(packed, spec, xp=np):
    """The inverse of :func:`_pack` for a tree with spec :func:`_spec`."""
    treedef, parts, _ = spec
    leaves = [xp.reshape(packed[:, lo:hi], (packed.shape[0],) + shape).astype(dtype)
              for _, shape, dtype, lo, hi in parts]
    return jax.tree_util.tree_unflatten(treedef, leaves)


# Steps per pool call before finished trials are harvested and refilled. The kernel's calls
# are cheap to start but each harvest costs a few JAX calls, so it takes longer blocks.
DEFAULT_BLOCK = {"kernel": 512, "fast": 256, "rules": 256}

# Lanes per host <-> JAX call of the kernel pool: classifying finished trials (one compiled size;
# each call touches only the lanes that finished) and sampling fresh ones (ahead, in bigger batches).
KERNEL_BATCH = 256
KERNEL_SAMPLE_BATCH = 2048
KERNEL_ROW_PAD = 24


def _host_matrix(columns: np.ndarray) -> np.ndarray:
    """A copy of the (k, lanes) host pool whose rows are padded apart in memory: rows 2^j lanes
    apart would share L1 cache sets (the kernel reads ~20 rows at the same lane offset), which
    halves the kernel's speed at 2048 lanes."""
    k, lanes = columns.shape
    pool = np.zeros((k, lanes + KERNEL_ROW_PAD))[:, :lanes]
    pool[...] = columns
    return pool


def _row_of(spec) -> dict[str, int]:
    """Row of each scalar leaf of a packed (Trial, Slot) pool (see :func:`_spec`)."""
    return {name: lo for name, _, _, lo, hi in spec[1] if hi == lo + 1}


def _kernel_row_index(spec, cfg: Config, rule: str) -> dict[str, int]:
    """Row of each of the kernel's arrays (:func:`dualjax.linear.kernel.argument_names`) in the host pool."""
    row = _row_of(spec)
    return {name: row[name] for name in kernel.argument_names(cfg.n, rule == "ema")}


def _kernel_rows(pool: np.ndarray, index: dict[str, int]) -> dict[str, np.ndarray]:
    """The kernel's named arrays: views of the host pool's rows."""
    return {name: pool[i] for name, i in index.items()}


def _kernel_points(trials: Trial, rule: str, cfg: Config, threads: int) -> dict[str, np.ndarray]:
    """:func:`run_points` with the compiled kernel: the given trials from their initial points
    to the end, then :func:`classify` (the fast engine's, in JAX)."""
    eng = fast_engine(rule, cfg)
    start = jax.jit(jax.vmap(lambda t: (t, init_slot(eng, cfg, t))))(trials)
    spec = _spec(start)
    pool = _host_matrix(_pack(jax.device_get(start)).T)
    rows = _kernel_rows(pool, _kernel_row_index(spec, cfg, rule))
    while kernel.active(rows, cfg).any():
        kernel.advance(rows, DEFAULT_BLOCK["kernel"], cfg, rule, threads)
    end = _unpack(np.ascontiguousarray(pool.T), spec)
    return jax.device_get(jax.jit(jax.vmap(lambda t, s: classify(eng, cfg, t, s)))(*end))


def _kernel_pool(fns: dict[str, Callable], cfg: Config, rule: str, block: int, threads: int) -> dict[str, Callable]:
    """The pool steps with the slots on the host and ``advance`` done by the compiled CPU kernel
    (:mod:`dualjax.linear.kernel`). Sampling and classification are the jitted JAX functions of
    the ``fast`` engine (``fill_packed``, ``classify_packed``), so trials and verdicts come from
    the same code; the kernel only replaces the steps in between.

    The host pool is one (k, lanes) float64 matrix: the packed (Trial, Slot) pytree of
    :func:`_pack`, transposed, so that each scalar of a slot is a contiguous row the kernel
    vectorizes over, and refilling or harvesting lanes is a column scatter or gather.
    """
    kernel.compile_kernel(cfg.n, rule == "ema")
    spec = fns["pool_spec"]
    index = _kernel_row_index(spec, cfg, rule)
    live_row = index["live"]
    ahead: dict[str, Any] = {"first": 0, "columns": np.zeros((spec[2], 0))}

    def rows(pool):
        return _kernel_rows(pool, index)

    def sample(key, index):
        """Packed fresh trials ``index`` (consecutive), (k, len(index)); sampled ahead in batches."""
        lo = int(index[0]) - ahead["first"]
        if lo < 0 or lo + len(index) > ahead["columns"].shape[1]:
            first = int(index[0])
            count = max(KERNEL_SAMPLE_BATCH, -(-len(index) // KERNEL_SAMPLE_BATCH) * KERNEL_SAMPLE_BATCH)
            parts = [np.asarray(fns["fill_packed"](key, np.arange(b, b + KERNEL_SAMPLE_BATCH, dtype=np.int32),
                                                   np.ones(KERNEL_SAMPLE_BATCH, bool)))
                     for b in range(first, first + count, KERNEL_SAMPLE_BATCH)]
            ahead.update(first=first, columns=np.concatenate(parts).T.copy())
            lo = 0
        return ahead["columns"][:, lo:lo + len(index)]

    def host_pool(columns, live):
        pool = _host_matrix(columns)
        pool[live_row] = live
        return pool

    def fill(key, index, live):
        return host_pool(sample(key, index), live)

    def advance(pool):
        kernel.advance(rows(pool), block, cfg, rule, threads)
        return pool

    def harvest(pool, occupied):
        lanes = np.flatnonzero(~kernel.active(rows(pool), cfg) & occupied)
        parts = []
        for lo in range(0, len(lanes), KERNEL_BATCH):
            take = lanes[np.minimum(np.arange(lo, lo + KERNEL_BATCH), len(lanes) - 1)]  # padded batch
            res = _unpack(np.asarray(fns["classify_packed"](pool[:, take].T)), fns["result_spec"])
            parts.append({name: col[: len(lanes) - lo] for name, col in res.items() if name != "done"})
        if not parts:
            return lanes, {}
        return lanes, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def refill(key, pool, lanes, index):
        pool[:, lanes] = sample(key, index)
        return pool

    def shrink(pool, take, live):
        return host_pool(pool[:, take], live)

    def drain(size, live, devices):
        """Any size runs without compiling: keep just the blocks of lanes that are still live."""
        need = -(-live // kernel.LANES) * kernel.LANES
        return need if need < size else None

    return {"fill": fill, "advance": advance, "harvest": harvest, "refill": refill, "shrink": shrink,
            "drain": drain, "drain_blocks": 1}


def run_points(trials: Trial, rule: str, cfg: Config = Config(), engine: str = "auto",
               threads: int | None = None) -> dict[str, np.ndarray]:
    """Run given trials (a :class:`Trial` with a leading batch axis, e.g. a grid of a₀ for a
    basin map) to the end and return :func:`classify`'s columns: by one vmapped while loop, or
    on the host by the compiled kernel (``kernel``, the ``auto`` choice on a CPU backend)."""
    check_config(cfg)
    eng = get_engine(engine, rule, cfg)
    on_cpu = jax.default_backend() == "cpu"
    threads = kernel.default_threads() if threads is None else checks.check_positive_int(threads, "threads")

    def one(trial):
        slot = init_slot(eng, cfg, trial)
        slot = jax.lax.while_loop(lambda s: slot_active(s, cfg),
                                  lambda s: advance_slot(eng, cfg, trial, s, 1), slot)
        return classify(eng, cfg, trial, slot)

    with jax.enable_x64(True):
        trials = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.int32 if np.asarray(x).dtype.kind == "i"
                                                              else jnp.float64), trials)
        if resolve_engine(engine, cfg.n, on_cpu) == "kernel":
            return _kernel_points(trials, rule, cfg, threads)
        return jax.device_get(jax.jit(jax.vmap(one))(trials))


# --------------------------------------------------------------------------- the study

def wilson(k, n, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (95 % for the default z)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # clamp the rounding at k = 0 or k = n, where an endpoint is exactly p
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def _fractions(outcome: np.ndarray) -> dict:
    total = int(outcome.size)
    res = {}
    for code, name in enumerate(OUTCOMES):
        k = int(np.sum(outcome == code))
        res[name] = {"count": k, "fraction": k / total if total else float("nan"), "ci95": list(wilson(k, total))}
    return res


def _share(mask: np.ndarray) -> dict:
    k, total = int(mask.sum()), int(mask.size)
    return {"count": k, "fraction": k / total if total else float("nan"), "ci95": list(wilson(k, total))}


def summarize(columns: dict[str, np.ndarray]) -> dict:
    """Outcome fractions (overall and given Δ ≥ 0) with Wilson 95 % intervals, the Δ ≥ 0 share,
    the E- and F-increase shares and step statistics, for one rule's trials."""
    outcome = columns["outcome"]
    nonneg = columns["delta"] >= 0
    steps = columns["steps"]
    converged = (outcome == OUTER) | (outcome == ORIGIN) | (outcome == INNER)
    by_outcome = {}
    for code, name in enumerate(OUTCOMES):
        sel = outcome == code
        if sel.any():
            by_outcome[name] = {"e_increased": float(columns["e_increased"][sel].mean()),
                                "mean_steps": float(steps[sel].mean())}
    return {
        "trials": int(outcome.size),
        "fractions": _fractions(outcome),
        "fractions_given_delta_nonneg": _fractions(outcome[nonneg]),
        "fractions_given_delta_neg": _fractions(outcome[~nonneg]),
        "delta_nonneg": _share(nonneg),
        "e_increased": _share(columns["e_increased"]),
        "e_increased_given_delta_nonneg": _share(columns["e_increased"][nonneg]),
        "f_increased": _share(columns["f_increased"]),
        "by_outcome": by_outcome,
        "steps": {"mean": float(steps.mean()), "median": float(np.median(steps)), "max": int(steps.max()),
                  "mean_converged": float(steps[converged].mean()) if converged.any() else float("nan"),
                  "total": int(steps.sum())},
    }


def study(
    trials: int,
    rules_: tuple[str, ...] | list[str] = STUDY_RULES,
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

    Returns ``{rule: columns}``; see :func:`run_trials`. Trial i of seed s is the same on any
    number of devices and with any ``chunk``/``block``/``threads``.
    """
    checks.check_positive_int(trials, "trials")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rules_ = list(rules_)
    if not rules_:
        raise ValueError("rules must name at least one of 'sg', 'ema'")
    for rule in rules_:
        if rule not in STUDY_RULES:
            raise ValueError(f"rule must be one of {list(STUDY_RULES)}, got {rule!r}")
    check_config(cfg)
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
                    bar.set_postfix_str(rule)
                out[rule] = run_trials(key, trials, rule, cfg, engine=engine, chunk=chunk, block=block,
                                       devices=devices, threads=threads, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return out


def summary(results: dict[str, dict[str, np.ndarray]], cfg: Config, seed: int, **extra) -> dict:
    """JSON-ready summary of :func:`study`'s results: per rule :func:`summarize`, plus the setup."""
    ranges_default = all(tuple(getattr(cfg, k)) == v for k, v in DEFAULT_RANGES.items())
    return {
        "config": asdict(cfg),
        "seed": seed,
        "delta_nonneg_exact": P_DELTA_NONNEG if ranges_default else None,
        "paper": {"ema": {"outer": 0.928, "origin": 0.072}, "sg": {"outer": 0.820, "origin": 0.180}},
        "rules": {rule: summarize(cols) for rule, cols in results.items()},
        **extra,
    }


CSV_COLUMNS = ("rule", "index", "rho", "tau", "lam", "delta", "r1", "r2", "outcome", "steps", "final_norm",
               "e_increased", "f_increased", "max_E_rise")


def write_trials_csv(path: str | os.PathLike, results: dict[str, dict[str, np.ndarray]]) -> None:
    """One row per (trial, rule); ``outcome`` is one of :data:`OUTCOMES`."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for rule, cols in results.items():
            outcome = np.asarray(OUTCOMES, dtype=object)[cols["outcome"]]
            for i in range(cols["outcome"].size):
                writer.writerow([
                    rule, int(cols["index"][i]), repr(float(cols["rho"][i])), repr(float(cols["tau"][i])),
                    repr(float(cols["lam"][i])), repr(float(cols["delta"][i])), repr(float(cols["r1"][i])),
                    repr(float(cols["r2"][i])), outcome[i], int(cols["steps"][i]),
                    repr(float(cols["final_norm"][i])), int(cols["e_increased"][i]), int(cols["f_increased"][i]),
                    repr(float(cols["max_E_rise"][i])),
                ])


def write_study(out_dir: str | os.PathLike, results, cfg: Config, seed: int, *, figures: bool = True,
                **extra) -> dict:
    """Write ``summary.json``, ``trials.csv`` and (optionally) the figures; return the summary."""
    os.makedirs(out_dir, exist_ok=True)
    summ = summary(results, cfg, seed, **extra)
    with open(os.path.join(out_dir, "summary.json"), "w") as fh:
        json.dump(summ, fh, indent=2, default=_json_default)
    write_trials_csv(os.path.join(out_dir, "trials.csv"), results)
    if figures:
        from dualjax import plots

        summ["figures"] = plots.study_figures(out_dir, results, summ, cfg)
        with open(os.path.join(out_dir, "summary.json"), "w") as fh:
            json.dump(summ, fh, indent=2, default=_json_default)
    return summ


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


QUICK_CONFIG = Config()


def quick_study(out_dir: str | os.PathLike, trials: int = 10_000, seed: int = 0, *,
                cfg: Config = QUICK_CONFIG, progress: bool = False, devices: int | None = None) -> dict:
    """The paper's study (SG and EMA, ρ ~ U[0,3], τ ~ U[−1,1], λ ~ U[0.01,0.1]) at a size that
    takes about a minute on one CPU: writes ``summary.json``, ``trials.csv`` and the PNG figures
    to ``out_dir`` and returns the summary dict."""
    import time

    t0 = time.perf_counter()
    results = study(trials, STUDY_RULES, cfg, seed=seed, progress=progress, devices=devices)
    elapsed = time.perf_counter() - t0
    return write_study(out_dir, results, cfg, seed, study_seconds=elapsed)

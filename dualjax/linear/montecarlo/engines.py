"""How one trial moves: the engines of the study, one step of discrete SG or EMA each.

``rules`` drives the trial with :func:`dualjax.rules.make_step` on the moment-form F of
:func:`dualjax.linear.model.objective` (autodiff, the same code path as every other study).
``fast`` is the m = 1 closed form of the same step (Lemma 4.1, ∇_a F = Bᵀr + λa,
∇_B F = r aᵀ + λB, r = ρBa − τc), written on scalars so that XLA fuses the whole step into
elementwise loops over trials; ``tests/test_montecarlo.py`` checks it equals the rules' step to
1e-12. It runs the rules with a closed form: ``rule.ema_alpha`` not None (SG, EMA with a constant
α); any other rule (plain, a scheduled EMA, DirectPred, yours) runs on ``rules``. ``kernel`` runs the fast engine's arithmetic in the pool as a compiled, lane-vectorized CPU
loop (:mod:`dualjax.linear.montecarlo.kernel`, numba): XLA splits the vmapped step into a dozen
loop fusions that each stream the pool through memory, the kernel keeps a block of trials in L1
for all its steps (3-6x faster on a CPU), on all cores. ``auto`` picks ``kernel`` on an all-CPU
mesh and ``fast`` on a GPU/TPU for n ≤ 4, ``rules`` beyond and for rules without a closed form.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import optax

from dualjax import rules
from dualjax.linear import model
from dualjax.linear.montecarlo import kernel
from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.trials import trial_moments

ENGINES = ("auto", "kernel", "fast", "rules")


class Engine(NamedTuple):
    """How one slot moves: ``init(trial) -> dyn``; ``step(trial, dyn) -> (dyn⁺, ‖increment‖²)``;
    ``measure(trial, dyn) -> (E, F, ‖(a, B)‖²)`` at the current point, F = ``None`` for SG where
    F(θ, ψ, ξ = θ) = E (saves carrying a copy); ``final(dyn) -> (a, B, c)``."""

    init: Callable
    step: Callable
    measure: Callable
    final: Callable


class FastState(NamedTuple):
    """The fast engine's per-trial state as scalars: ``a[j]``, ``B[i][j]`` and the EMA teacher
    ``c[j]`` (``None`` for SG, whose teacher is a itself). The host pool names each scalar
    ``a0``, ``B01``, ``c1``, ... (:func:`dualjax.linear.montecarlo.kernel.state_names`)."""

    a: list
    B: list
    c: list | None = None


def _m1_start(trial):
    return trial.a0[:, None], trial.B0


def rules_engine(rule: rules.TeacherRule, cfg: Config, *, start: Callable = _m1_start,
                 moments: Callable = trial_moments) -> Engine:
    """Each step is :func:`dualjax.rules.make_step` (autodiff of the moment-form F, ``optax.sgd(η)``)
    with ``rule``, any rule (plain, DirectPred and yours included; the feature moment is
    A ρ Aᵀ = ρ a aᵀ). F is tracked for a rule that carries a teacher (otherwise F = E).
    ``start(trial) -> (A₀, B₀)`` and ``moments(trial) -> Moments`` read a trial (default: the
    m = 1 :class:`~dualjax.linear.montecarlo.trials.Trial`; the general-m study passes its
    :class:`~dualjax.linear.montecarlo.ensemble.Instance`'s); ``final`` gives (a, B, c) at m = 1."""
    rules.check_rule(rule)

    def parts(trial):
        obj = model.objective(trial.lam)
        init, step = rules.make_step(obj.F, rule, optax.sgd(cfg.eta), features=obj.features)
        return obj, init, step

    def init(trial):
        _, init_fn, _ = parts(trial)
        return init_fn(*start(trial))

    def step(trial, s):
        _, _, step_fn = parts(trial)
        s2, m = step_fn(s, moments(trial))
        return s2, m["d_theta"] ** 2 + m["d_psi"] ** 2 + m["d_xi"] ** 2

    def measure(trial, s):
        obj = model.objective(trial.lam)
        mom = moments(trial)
        E = obj.E(s.theta, s.psi, mom)
        F = obj.F(s.theta, s.psi, rule.teacher(s.theta, s.teacher), mom) if rule.carries_teacher else None
        return E, F, jnp.sum(s.theta**2) + jnp.sum(s.psi**2)

    def final(s):
        c = s.teacher.xi if rule.carries_teacher else s.theta
        return s.theta[:, 0], s.psi, c[:, 0]

    return Engine(init, step, measure, final)


class ClosedForm(NamedTuple):
    """What the closed-form engines need of a rule: the EMA map's constant α (SG: 0) and whether
    a copy ξ is carried (:func:`closed_form`). Hashable: compiled pools are cached on it."""

    alpha: float
    copy: bool


def closed_form(rule: rules.TeacherRule) -> ClosedForm:
    """The rule as the map ξ_t = α ξ_{t−1} + (1 − α) θ_t on θ (ψ moved by the optimizer only), from
    its ``ema_alpha``; a rule without this closed form (``ema_alpha=None``: plain, a scheduled EMA,
    DirectPred, ...) is a ValueError: it runs on ``engine='rules'`` (``auto`` picks it)."""
    if isinstance(rule, ClosedForm):
        return rule
    rules.check_rule(rule)
    if rule.ema_alpha is None:
        raise ValueError(f"rule {rule.name!r} has no closed form for the fast / kernel engines (ema_alpha=None); "
                         "use engine='rules' (or 'auto')")
    return ClosedForm(float(rule.ema_alpha), bool(rule.carries_teacher))


def fast_engine(rule: rules.TeacherRule | ClosedForm, cfg: Config) -> Engine:
    """The m = 1 closed form of the rules' step (Lemma 4.1), on lists of per-trial scalars.

        u = B a,  r = ρ u − τ c,  a⁺ = a − η(Bᵀ r + λ a),  B⁺ = B − η(r aᵀ + λ B),
        c⁺ = a⁺ (SG)  or  α c + (1 − α) a⁺ (EMA),
        E(a, B) = F(a, B, a),  F(a, B, c) = ½ρ‖Ba‖² − τ⟨Ba, c⟩ + ½σ‖c‖² + ½λ(‖a‖² + ‖B‖²).

    with α and the copy from :func:`closed_form` (a rule without it is a ValueError). The
    increment is measured like :func:`dualjax.rules.make_step`'s metrics (without a copy the
    teacher is θ itself, so ‖Δξ‖ = ‖Δθ‖). The state is a :class:`FastState`.
    """
    form = closed_form(rule)
    n, eta, alpha, ema = cfg.n, cfg.eta, form.alpha, form.copy

    def dot(x, y):
        return sum(xi * yi for xi, yi in zip(x, y))

    def matvec(B, a):
        return [dot(row, a) for row in B]

    def init(trial):
        a = [trial.a0[j] for j in range(n)]
        B = [[trial.B0[i, j] for j in range(n)] for i in range(n)]
        return FastState(a, B, list(a) if ema else None)

    def step(trial, dyn):
        a, B = dyn.a, dyn.B
        c = dyn.c if ema else a
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
            return FastState(a2, B2, c2), dot(step_a, step_a) + d_B + dot(d_c, d_c)
        return FastState(a2, B2), 2 * dot(step_a, step_a) + d_B

    def measure(trial, dyn):
        a, B = dyn.a, dyn.B
        c = dyn.c if ema else a
        rho, tau, lam = trial.rho, trial.tau, trial.lam
        u = matvec(B, a)
        sq_a, sq_B, uu = dot(a, a), sum(dot(row, row) for row in B), dot(u, u)
        sigma = tau**2 / rho
        reg = 0.5 * lam * (sq_a + sq_B)
        E = 0.5 * rho * uu - tau * dot(u, a) + 0.5 * sigma * sq_a + reg
        F = 0.5 * rho * uu - tau * dot(u, c) + 0.5 * sigma * dot(c, c) + reg if ema else None
        return E, F, sq_a + sq_B

    def final(dyn):
        a = jnp.stack(dyn.a)
        B = jnp.stack([jnp.stack(row) for row in dyn.B])
        c = jnp.stack(dyn.c) if ema else a
        return a, B, c

    return Engine(init, step, measure, final)


def resolve_engine(engine: str, n: int, cpu: bool = True, rule: rules.TeacherRule | ClosedForm | None = None) -> str:
    """``auto`` -> ``kernel`` on an all-CPU mesh for n <= 4 when numba is importable, else ``fast``
    for n <= 4 (the scalar closed form fuses well), else ``rules``; and ``rules`` for a rule
    without a closed form (:func:`closed_form`)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "auto":
        if rule is not None and not isinstance(rule, ClosedForm) and rules.check_rule(rule).ema_alpha is None:
            return "rules"
        return ("kernel" if cpu and kernel.AVAILABLE else "fast") if n <= 4 else "rules"
    if engine == "kernel" and not cpu:
        raise ValueError("engine='kernel' runs on the host CPU; on a GPU/TPU mesh use engine='fast' or 'auto'")
    return engine


def get_engine(engine: str, rule: rules.TeacherRule, cfg: Config) -> Engine:
    """The per-trial :class:`Engine`; ``kernel`` shares the fast engine's (it only replaces the
    pool's ``advance``, with the same arithmetic)."""
    rules.check_rule(rule)
    engine = resolve_engine(engine, cfg.n, rule=rule)
    return (rules_engine if engine == "rules" else fast_engine)(rule, cfg)

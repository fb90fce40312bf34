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
:func:`general_fast_engine` is the same closed form for any m (the general-m study's ``fast``).
"""

from __future__ import annotations

import functools
import operator
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
    F(θ, ψ, ξ = θ) = E (saves carrying a copy); ``final(dyn) -> (a, B, c)``; ``state(dyn, t)``
    (the general-m engines) the same point as :func:`dualjax.rules.make_step`'s ``StepState``
    after t steps, which the end-point classification steps (``None`` where not needed)."""

    init: Callable
    step: Callable
    measure: Callable
    final: Callable
    state: Callable | None = None


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

    return Engine(init, step, measure, final, lambda s, t: s)


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


class MatrixState(NamedTuple):
    """The general-m fast engine's per-trial state as nested lists of scalars: ``A[i][k]`` (n×m),
    ``B[i][j]`` (n×n) and the EMA teacher ``C[i][k]`` (``None`` for SG, whose teacher is A)."""

    A: list
    B: list
    C: list | None = None


def _add(terms):
    """Σ terms, without the ``0 +`` of :func:`sum` (one add fewer per entry in the traced step)."""
    return functools.reduce(operator.add, terms)


def _mm(X, Y):
    """X Y of scalar lists, X (p×q), Y (q×r)."""
    return [[_add([x[j] * Y[j][k] for j in range(len(Y))]) for k in range(len(Y[0]))] for x in X]


def _tmm(X, Y):
    """Xᵀ Y of scalar lists, X (q×p), Y (q×r)."""
    return [[_add([X[j][i] * Y[j][k] for j in range(len(X))]) for k in range(len(Y[0]))] for i in range(len(X[0]))]


def _mmt(X, Y):
    """X Yᵀ of scalar lists, X (p×q), Y (r×q)."""
    return [[_add([a * b for a, b in zip(x, y)]) for y in Y] for x in X]


def _inner(X, Y):
    """The Frobenius product ⟨X, Y⟩ = tr(XᵀY) of scalar lists."""
    return _add([a * b for x, y in zip(X, Y) for a, b in zip(x, y)])


def _entries(M, p: int, q: int):
    return [[M[i, j] for j in range(q)] for i in range(p)]


def _lincomb(a, X, b, Y):
    """a X + b Y entrywise (a, b scalars)."""
    return [[a * u + b * v for u, v in zip(x, y)] for x, y in zip(X, Y)]


def general_fast_engine(rule: rules.TeacherRule | ClosedForm, cfg, *,
                        start: Callable = lambda trial: (trial.A0, trial.B0)) -> Engine:
    """The closed form of the rules' step for any m (Lemma 4.1 with ρ, τ, σ m×m), on nested lists
    of per-trial scalars like :func:`fast_engine`, so XLA fuses the vmapped step into elementwise
    loops over the trials. For F(A, B, C) = ½ tr(BAρAᵀBᵀ) − tr(BAτᵀCᵀ) + ½ tr(CσCᵀ) + ½λ(‖A‖² + ‖B‖²)
    (:func:`dualjax.linear.model.F`; ρ symmetric) and R = BAρ − Cτ (n×m),

        ∇_A F = BᵀBAρ − BᵀCτ + λA = BᵀR + λA  (n×m),   ∇_B F = BAρAᵀ − CτAᵀ + λB = RAᵀ + λB  (n×n),

    taken at C = ξ held fixed (the rules' stop-gradient), so one step of SG / EMA with ``optax.sgd(η)`` is

        A⁺ = A − η(BᵀR + λA),  B⁺ = B − η(RAᵀ + λB),  C⁺ = A⁺ (SG)  or  α C + (1 − α) A⁺ (EMA),
        E(A, B) = F(A, B, A),  F = ½⟨U, Uρ⟩ − ⟨U, Cτ⟩ + ½⟨C, Cσ⟩ + ½λ(‖A‖² + ‖B‖²),  U = BA,

    with α and the copy from :func:`closed_form` (a rule without one is a ValueError); at m = 1 it
    is :func:`fast_engine` (a = A[:, 0]). The increment is :func:`dualjax.rules.make_step`'s (SG:
    ‖ΔA‖² + ‖ΔB‖² + ‖Δξ‖² with ξ = A). ``cfg`` gives n, m and η; ``trial`` is an
    :class:`~dualjax.linear.montecarlo.ensemble.Instance` (ρ, τ, σ (m, m), λ, and
    ``start(trial) -> (A₀, B₀)``). The state is a :class:`MatrixState`; ``state(dyn, t)`` is the
    rules' ``StepState`` of the same point (for a rule object, not a bare :class:`ClosedForm`).
    ``tests/test_montecarlo_m.py`` checks the step equals the rules engine's to 1e-12 (m = 1, 2, 3).
    """
    form = closed_form(rule)
    n, m, eta, alpha, ema = cfg.n, cfg.m, cfg.eta, form.alpha, form.copy

    def init(trial):
        A0, B0 = start(trial)
        A = _entries(A0, n, m)
        return MatrixState(A, _entries(B0, n, n), [list(row) for row in A] if ema else None)

    def products(trial, dyn):
        """U = BA, Uρ and Cτ: shared by the step and measure, so XLA computes them once per step."""
        C = dyn.C if ema else dyn.A
        U = _mm(dyn.B, dyn.A)
        return C, U, _mm(U, _entries(trial.rho, m, m)), _mm(C, _entries(trial.tau, m, m))

    def step(trial, dyn):
        A, B, lam = dyn.A, dyn.B, trial.lam
        C, _, U_rho, C_tau = products(trial, dyn)
        R = _lincomb(1.0, U_rho, -1.0, C_tau)
        step_A = _lincomb(eta, _tmm(B, R), eta * lam, A)
        step_B = _lincomb(eta, _mmt(R, A), eta * lam, B)
        A2, B2 = _lincomb(1.0, A, -1.0, step_A), _lincomb(1.0, B, -1.0, step_B)
        d_A, d_B = _inner(step_A, step_A), _inner(step_B, step_B)
        if ema:
            C2 = _lincomb(alpha, C, 1 - alpha, A2)
            d_C = _lincomb(1.0, C2, -1.0, C)
            return MatrixState(A2, B2, C2), d_A + d_B + _inner(d_C, d_C)
        return MatrixState(A2, B2), 2 * d_A + d_B

    def measure(trial, dyn):
        A, B, lam = dyn.A, dyn.B, trial.lam
        C, U, U_rho, C_tau = products(trial, dyn)
        sigma = _entries(trial.sigma, m, m)
        sq = _inner(A, A) + _inner(B, B)
        quad = 0.5 * _inner(U, U_rho) + 0.5 * lam * sq
        A_tau = _mm(A, _entries(trial.tau, m, m)) if ema else C_tau
        E = quad - _inner(U, A_tau) + 0.5 * _inner(A, _mm(A, sigma))
        F = quad - _inner(U, C_tau) + 0.5 * _inner(C, _mm(C, sigma)) if ema else None
        return E, F, sq

    def matrix(rows):
        return jnp.stack([jnp.stack(row) for row in rows])

    def final(dyn):
        A = matrix(dyn.A)
        return A, matrix(dyn.B), matrix(dyn.C) if ema else A

    def state(dyn, t):
        A, B, C = final(dyn)
        s = rules.init_state(rule, optax.sgd(eta), A, B)
        return s._replace(teacher=s.teacher._replace(xi=C if ema else s.teacher.xi, count=t))

    return Engine(init, step, measure, final, None if isinstance(rule, ClosedForm) else state)


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

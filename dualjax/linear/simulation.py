"""Simulating the linear model: any rule, discrete or continuous (Lemma 4.1).

Discrete (step η, the optimizer is ``optax.sgd(η)`` unless another is given):

    A⁺ = A − η ∂F/∂A,  B⁺ = B − η ∂F/∂B,  with ξ from the rule;  EMA: C⁺ = α C + (1 − α) A⁺.

Continuous: dA/dt = −∂F/∂A, dB/dt = −∂F/∂B, and for EMA dC/dt = k(A − C), k = (1 − α)/η.

The gradients are the autodiff rules of :mod:`dualjax.rules` applied to the moment form of
F (:func:`dualjax.linear.model.objective`), the same code path the ViT trainer uses.
:func:`run` is the pure, vmappable run (the driver :func:`dualjax.dynamics.run_discrete`);
:func:`simulate` validates concrete inputs, runs it (or RK4, :func:`dualjax.dynamics.run_flow`)
in float64 and returns host arrays in a :class:`LinearRun`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dualjax import checks, dynamics, rules
from dualjax.linear import model


@dataclass(frozen=True)
class LinearRun:
    """Result of :func:`simulate`: final parameters, step count, and how the run ended."""

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    steps: int
    status: str  # "converged" | "budget" | "diverged"
    increment: float
    E_increased: bool
    F_increased: bool

    @property
    def converged(self) -> bool:
        return self.status == "converged"


def _validate(rule, A0, B0, mom, lam, eta):
    rules.check_rule(rule)
    lam = checks.check_lambda(lam, positive=False)
    eta = checks.check_positive(eta, "eta")
    A0 = np.asarray(A0, np.float64)
    B0 = np.asarray(B0, np.float64)
    m = np.shape(mom.rho)[0]
    if A0.ndim != 2 or A0.shape[1] != m:
        raise ValueError(f"A0 must have shape (n, {m}) to match rho ({m}x{m}), got {A0.shape}")
    n = A0.shape[0]
    checks.check_shape(B0, (n, n), "B0")
    return A0, B0, lam, eta


def run(rule: rules.TeacherRule, A0, B0, mom: model.Moments, lam, *, eta=0.05, max_steps: int = 100_000,
        tol: float = 1e-10, max_norm: float = 1e6,
        optimizer: optax.GradientTransformation | None = None) -> dynamics.RunResult:
    """The discrete run of :func:`simulate` as a pure function, unchecked: jit and vmap it (over
    trials of your own sampler, say; build their moments with :func:`dualjax.linear.model.make_moments`).
    The driver :func:`dualjax.dynamics.run_discrete` with ``rules.make_step`` on the moment-form
    F, tracking E and F; ``state.teacher.xi`` is the teacher C of a rule that carries one."""
    obj = model.objective(lam)
    init, step = rules.make_step(obj.F, rule, optimizer or optax.sgd(eta), features=obj.features)
    return dynamics.run_discrete(step, init(A0, B0), mom, E=obj.E, F=obj.F, rule=rule, max_steps=max_steps,
                                 tol=tol, max_norm=max_norm)


def simulate(
    rule: rules.TeacherRule,
    A0,
    B0,
    mom: model.Moments,
    lam: float,
    *,
    eta: float = 0.05,
    max_steps: int = 100_000,
    tol: float = 1e-10,
    continuous: bool = False,
    k: float | None = None,
    max_norm: float = 1e6,
    optimizer: optax.GradientTransformation | None = None,
) -> LinearRun:
    """Run ``rule`` (any :class:`~dualjax.rules.TeacherRule`) on the linear model from (A0, B0)
    until convergence, in float64 (a tolerance like 1e-10 is below float32 rounding: in float32
    the increments round to zero long before the run has converged).

    Discrete by default (step η; the rule's own momentum); ``continuous=True`` integrates the
    rule's expected field (:func:`dualjax.rules.field`) with RK4 at dt = η and measures
    convergence by ‖field‖ < tol; a rule that carries a teacher relaxes it at rate ``k``
    (default k = (1 − α)/η from the rule's constant α). Divergence (non-finite parameters or
    norm > ``max_norm``) is reported as ``status="diverged"`` with a warning naming η.
    """
    A0, B0, lam, eta = _validate(rule, A0, B0, mom, lam, eta)
    checks.check_positive_int(max_steps, "max_steps")
    with jax.enable_x64(True):
        mom = model.Moments(*(jnp.asarray(np.asarray(x, np.float64)) for x in mom))
        A0, B0 = jnp.asarray(A0), jnp.asarray(B0)
        if not continuous:
            res = jax.jit(lambda A, B, mom_: run(rule, A, B, mom_, lam, eta=eta, max_steps=max_steps, tol=tol,
                                                 max_norm=max_norm, optimizer=optimizer))(A0, B0, mom)
            A, B = res.state.theta, res.state.psi
            C = res.state.teacher.xi if rule.carries_teacher else A
        else:
            res = _flow(rule, A0, B0, mom, lam, eta=eta, max_steps=max_steps, tol=tol, k=k, max_norm=max_norm)
            A, B = res.state[0], res.state[1]
            C = res.state[2] if rule.carries_teacher else A
        A, B, C = np.asarray(A), np.asarray(B), np.asarray(C)
    status = dynamics.STATUS[int(res.status)]
    if status == "diverged":
        warnings.warn(
            f"{rule.name} dynamics diverged after {int(res.steps)} steps with eta={eta}: the step is "
            f"likely above the stability limit of the {'flow integrator' if continuous else 'discrete map'} "
            f"(see dualjax.linear.stability); try a smaller eta",
            RuntimeWarning,
            stacklevel=2,
        )
    return LinearRun(
        A=A, B=B, C=C, steps=int(res.steps), status=status,
        increment=float(res.increment), E_increased=bool(res.E_increased), F_increased=bool(res.F_increased),
    )


def _flow(rule, A0, B0, mom, lam, *, eta, max_steps, tol, k, max_norm) -> dynamics.RunResult:
    """RK4 on the rule's expected field (the teacher copy relaxing at rate k when carried)."""
    obj = model.objective(lam)
    if rule.carries_teacher:
        if k is None:
            if rule.ema_alpha is None:
                raise ValueError(f"continuous {rule.name} needs the rate k of dxi/dt = k(theta - xi): pass k=")
            k = (1 - rule.ema_alpha) / eta
        if k <= 0:
            raise ValueError(f"continuous {rule.name} needs k = (1 - alpha)/eta > 0 (alpha < 1), got k={k}")
        V3 = rules.field(rule, obj.F, k=k)
        z0 = (A0, B0, A0)
        V = lambda z: V3(z[0], z[1], z[2], mom)  # noqa: E731
    else:
        V2 = rules.field(rule, obj.F)
        z0 = (A0, B0)
        V = lambda z: V2(z[0], z[1], mom)  # noqa: E731
    E = lambda z: obj.E(z[0], z[1], mom)  # noqa: E731
    return jax.jit(lambda z: dynamics.run_flow(V, z, dt=eta, max_time=eta * max_steps, tol=tol, E=E,
                                               max_norm=max_norm))(z0)

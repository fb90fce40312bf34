"""Simulating the linear model: discrete and continuous SG / EMA / plain dynamics (Lemma 4.1).

Discrete (step η, the optimizer is ``optax.sgd(η)`` unless another is given):

    A⁺ = A − η ∂F/∂A,  B⁺ = B − η ∂F/∂B,  with ξ from the rule;  EMA: C⁺ = α C + (1 − α) A⁺.

Continuous: dA/dt = −∂F/∂A, dB/dt = −∂F/∂B, and for EMA dC/dt = k(A − C), k = (1 − α)/η.

The gradients are the autodiff rules of :mod:`dualjax.rules` applied to the moment form of
F (:func:`dualjax.linear.model.objective`), the same code path the ViT trainer uses;
:func:`simulate` is the linear model's front end to the generic drivers of
:mod:`dualjax.dynamics` (``run_discrete``, ``run_flow``), returning host arrays in a
:class:`LinearRun`.
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


def _validate(A0, B0, mom, lam, eta, alpha, rule_name):
    if rule_name not in rules.RULES:
        raise ValueError(f"unknown rule {rule_name!r}; choose one of {list(rules.RULES)}")
    lam = checks.check_lambda(lam, positive=False)
    eta = checks.check_positive(eta, "eta")
    alpha = checks.check_alpha(alpha)
    A0 = jnp.asarray(A0)
    B0 = jnp.asarray(B0)
    m = mom.rho.shape[0]
    if A0.ndim != 2 or A0.shape[1] != m:
        raise ValueError(f"A0 must have shape (n, {m}) to match rho ({m}x{m}), got {A0.shape}")
    n = A0.shape[0]
    checks.check_shape(B0, (n, n), "B0")
    return A0, B0, lam, eta, alpha


def simulate(
    rule_name: str,
    A0,
    B0,
    mom: model.Moments,
    lam: float,
    *,
    eta: float = 0.05,
    alpha: float = 0.99,
    max_steps: int = 100_000,
    tol: float = 1e-10,
    continuous: bool = False,
    max_norm: float = 1e6,
    optimizer: optax.GradientTransformation | None = None,
) -> LinearRun:
    """Run ``rule_name`` ∈ {plain, sg, ema} on the linear model from (A0, B0) until convergence.

    Discrete by default (step η, EMA momentum α); ``continuous=True`` integrates the flow
    with RK4 at dt = η (EMA rate k = (1 − α)/η) and measures convergence by ‖field‖ < tol.
    Divergence (non-finite parameters or norm > ``max_norm``) is reported as
    ``status="diverged"`` with a warning naming η.
    """
    A0, B0, lam, eta, alpha = _validate(A0, B0, mom, lam, eta, alpha, rule_name)
    checks.check_positive_int(max_steps, "max_steps")
    obj = model.objective(lam)
    if not continuous:
        rule = rules.get_rule(rule_name, alpha)
        init, step = rules.make_step(obj.F, rule, optimizer or optax.sgd(eta))

        @jax.jit
        def go(A, B, mom_):
            return dynamics.run_discrete(step, init(A, B), mom_, E=obj.E, F=obj.F, teacher=rule.teacher,
                                         max_steps=max_steps, tol=tol, max_norm=max_norm)

        res = go(A0, B0, mom)
        A, B = res.state.theta, res.state.psi
        C = res.state.teacher.xi if rule_name == "ema" else A
    else:
        if rule_name == "ema":
            k = (1 - alpha) / eta
            V3 = rules.ema_field(obj.F, k) if k > 0 else None
            if V3 is None:
                raise ValueError("continuous EMA needs alpha < 1 (k = (1 - alpha)/eta > 0)")
            z0 = (A0, B0, A0)
            V = lambda z: V3(z[0], z[1], z[2], mom)  # noqa: E731
            E = lambda z: obj.E(z[0], z[1], mom)  # noqa: E731
        else:
            V2 = rules.field(rule_name, obj.F)
            z0 = (A0, B0)
            V = lambda z: V2(z[0], z[1], mom)  # noqa: E731
            E = lambda z: obj.E(z[0], z[1], mom)  # noqa: E731
        res = jax.jit(lambda z: dynamics.run_flow(V, z, dt=eta, max_time=eta * max_steps, tol=tol,
                                                  E=E, max_norm=max_norm))(z0)
        A, B = res.state[0], res.state[1]
        C = res.state[2] if rule_name == "ema" else A
    status = dynamics.STATUS[int(res.status)]
    if status == "diverged":
        warnings.warn(
            f"{rule_name} dynamics diverged after {int(res.steps)} steps with eta={eta}: the step is "
            f"likely above the stability limit of the {'flow integrator' if continuous else 'discrete map'} "
            f"(see dualjax.linear.stability); try a smaller eta",
            RuntimeWarning,
            stacklevel=2,
        )
    return LinearRun(
        A=np.asarray(A), B=np.asarray(B), C=np.asarray(C), steps=int(res.steps), status=status,
        increment=float(res.increment), E_increased=bool(res.E_increased), F_increased=bool(res.F_increased),
    )

"""The expected continuous-time fields of the rules: what ``jax.jacfwd`` differentiates for
Prop 3.2 (Schwarz test) and Prop 4.10 (Jacobian spectra).

A rule's ``flow(F, k)`` builds its field from F(θ, ψ, ξ, batch):

    plain: V(θ, ψ) = −(∇_θ E, ∇_ψ E)(θ, ψ),               E(θ, ψ) = F(θ, ψ, θ)
    sg:    V(θ, ψ) = −(∇_θ F, ∇_ψ F)(θ, ψ, ξ)|_{ξ=θ}
    ema:   V(θ, ψ, ξ) = (−∇_θ F, −∇_ψ F, k(θ − ξ))(θ, ψ, ξ)

The SG partial gradients are taken with ξ as a *separate* argument and ξ = θ is substituted
afterwards (no stop_gradient), so that differentiating V again sees the ξ-dependence — the
construction the Schwarz test needs. The EMA system is the η → 0 limit of
ξ_t = α ξ_{t−1} + (1 − α) θ_t at a fixed rate k = (1 − α)/η. A rule without a copy of the
teacher gives ``V(theta, psi, batch)``; one with a copy ``V(theta, psi, xi, batch)``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dualjax import checks
from dualjax.rules.base import TeacherRule, check_rule


def _negate(tree):
    return jax.tree_util.tree_map(jnp.negative, tree)


def plain_flow(F: Callable[..., jax.Array], k: float | None = None):
    """Gradient flow on E: V(θ, ψ, batch) = −∇_{θ,ψ} F(θ, ψ, θ, batch)."""
    full = jax.grad(lambda th, ps, b: F(th, ps, th, b), argnums=(0, 1))
    return lambda theta, psi, batch: _negate(full(theta, psi, batch))


def sg_flow(F: Callable[..., jax.Array], k: float | None = None):
    """SG: V(θ, ψ, batch) = −(∂_θ F, ∂_ψ F)(θ, ψ, ξ, batch) at ξ = θ (ξ a separate argument)."""
    partial = jax.grad(F, argnums=(0, 1))
    return lambda theta, psi, batch: _negate(partial(theta, psi, theta, batch))


def ema_field(F: Callable[..., jax.Array], k: float):
    """The continuous-time EMA system on (θ, ψ, ξ):

        dθ/dt = −∇_θ F(θ, ψ, ξ),  dψ/dt = −∇_ψ F(θ, ψ, ξ),  dξ/dt = k(θ − ξ).

    Returns ``V(theta, psi, xi, batch) -> (dθ, dψ, dξ)``; k = 0 freezes the teacher.
    """
    k = checks.check_positive(k, "k") if k != 0 else 0.0
    partial = jax.grad(F, argnums=(0, 1))

    def V(theta, psi, xi, batch):
        g_theta, g_psi = partial(theta, psi, xi, batch)
        d_xi = jax.tree_util.tree_map(lambda t, c: k * (t - c), theta, xi)
        neg_theta, neg_psi = _negate((g_theta, g_psi))
        return neg_theta, neg_psi, d_xi

    return V


def ema_flow(F: Callable[..., jax.Array], k: float | None = None):
    """:func:`ema_field` with the rate k the caller gives (a ValueError without one)."""
    if k is None:
        raise ValueError("the EMA field needs the rate k = (1 - alpha)/eta of dxi/dt = k(theta - xi); pass k=")
    return ema_field(F, k)


def field(rule: TeacherRule, F: Callable[..., jax.Array], *, k: float | None = None):
    """The (negated) expected update field of ``rule`` as a pure function (module doc):
    ``V(theta, psi, batch)``, or ``V(theta, psi, xi, batch)`` for a rule that carries a teacher
    (rate ``k``). A rule without a ``flow`` (DirectPred sets ψ instead of moving it) is a
    ValueError."""
    check_rule(rule)
    if rule.flow is None:
        raise ValueError(f"rule {rule.name!r} has no expected continuous-time field (flow=None)")
    return rule.flow(F, k)

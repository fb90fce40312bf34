"""Prop 4.11 — the case m = 1: the two spheres of equilibria.

With scalar views (m = 1) the encoder is a vector a ∈ R^n, ρ = E[x²] > 0, τ = E[yx] and

    Δ = τ² − 4ρλ.

Non-zero SG / EMA equilibria exist iff Δ ≥ 0; they fill the spheres ‖a‖ = r with
ρ r² − |τ| r + λ = 0, i.e.

    r₁,₂ = (|τ| ∓ √Δ) / (2ρ),   r₁ r₂ = λ / ρ,   B = sign(τ) a aᵀ / r.

The outer sphere S₂ (radius r₂) is normally asymptotically stable for SG and for every
EMA rate k > 0; the inner sphere S₁ is a saddle with one unstable (radial) direction
(MATH.md §6). The discrete SG map with step η is stable at S₂ iff η < 2 / (|τ| r₂).

All functions are elementwise in (ρ, τ, λ), so they vmap and broadcast over trials.
"""

from __future__ import annotations

import jax.numpy as jnp


def discriminant(rho, tau, lam):
    """Δ = τ² − 4ρλ."""
    return jnp.square(tau) - 4.0 * rho * lam


def radii(rho, tau, lam):
    """(r₁, r₂) = ((|τ| − √Δ)/(2ρ), (|τ| + √Δ)/(2ρ)); NaN where Δ < 0 (no non-zero equilibria)."""
    delta = discriminant(rho, tau, lam)
    root = jnp.sqrt(jnp.where(delta >= 0, delta, jnp.nan))
    abs_tau = jnp.abs(tau)
    return (abs_tau - root) / (2.0 * rho), (abs_tau + root) / (2.0 * rho)


def predictor_on_sphere(a, tau, r):
    """B = sign(τ) a aᵀ / r at a point a of the sphere of radius r (shape (n, n))."""
    return jnp.sign(tau) * jnp.outer(a, a) / r


def radial_eigenvalue(rho, tau, lam, outer: bool = True):
    """The SG Jacobian's radial eigenvalue λ − ρr² = ∓ r √Δ (negative on S₂, positive on S₁)."""
    r1, r2 = radii(rho, tau, lam)
    r = r2 if outer else r1
    return lam - rho * r**2


def max_stable_step(rho, tau, lam):
    """Largest step η for which discrete SG is stable at S₂: η < 2 / (|τ| r₂) = 4ρ / (|τ|(|τ| + √Δ))."""
    _, r2 = radii(rho, tau, lam)
    return 2.0 / (jnp.abs(tau) * r2)

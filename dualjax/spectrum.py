"""Jacobian spectra of any rule's expected field, at any point of any model (Prop 4.10's instrument).

Given a rule (any :class:`~dualjax.rules.TeacherRule` with a ``flow``), an objective F(θ, ψ, ξ,
batch) (``objectives.siamese(encode, predict)`` for your own model, or the linear model's moment
form) and a point (θ, ψ[, ξ]), :func:`spectrum` takes J = DV(z) of the expected field V
(:func:`dualjax.rules.field`) by ``jax.jacfwd`` on the flattened parameters and classifies z:

* ``stable``     — every transversal eigenvalue has Re < −tol;
* ``saddle``     — ``n_unstable`` of them have Re > tol;
* ``degenerate`` — none unstable but some |Re| ≤ tol (the linearisation is inconclusive).

Symmetry. When the field is equivariant under a continuous group (O(n) acting on the embedding
for the linear model, and for any model whose loss and Ω are rotation invariant), a fixed point
lies on an orbit whose tangent directions T sit in ker J; those zeros say nothing about stability.
With ``tangent`` (an orthonormal basis of T, P × d) the verdict is read from the *transversal*
spectrum spec(NᵀJN), N ⟂ T; with only ``orbit_dim`` d the d eigenvalues nearest 0 are set aside.
``n_zero`` (eigenvalues with |μ| ≤ zero_tol·max(1, max|μ|)) against ``orbit_dim`` shows whether
the orbit accounts for every zero. :mod:`dualjax.linear.stability` is this, on the linear model,
with the orbit's exact tangent space and a symmetry reduction for large n.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np

from dualjax import integrability, rules
from dualjax.objectives import Objective
from dualjax.typing import PyTree

STABLE, SADDLE, DEGENERATE = "stable", "saddle", "degenerate"


class Spectrum(NamedTuple):
    """The spectrum at one point. ``spectrum``: every eigenvalue of J; ``transversal``: the ones
    that decide (orbit directions removed); ``tangent_residual``: ‖J T‖ / ‖J‖ (0 when the
    orbit directions are in ker J; NaN without ``tangent``)."""

    rule: str
    kind: str
    n_unstable: int
    n_zero: int
    orbit_dim: int
    max_real: float
    spectrum: np.ndarray
    transversal: np.ndarray
    tangent_residual: float
    jacobian: np.ndarray


def classify(eigs, tol: float = 1e-7) -> tuple[str, int]:
    """(class, #unstable) from a transversal spectrum: stable / saddle / degenerate (module doc)."""
    re = np.real(np.asarray(eigs))
    n_unstable = int(np.sum(re > tol))
    if n_unstable:
        return SADDLE, n_unstable
    if np.any(np.abs(re) <= tol):
        return DEGENERATE, 0
    return STABLE, 0


def transversal_spectrum(J, T) -> np.ndarray:
    """spec(NᵀJN) for N an orthonormal complement of span T (requires J T = 0)."""
    J = np.asarray(J)
    P = J.shape[0]
    if T.shape[1] == 0:
        return np.linalg.eigvals(J)
    Qf, _ = np.linalg.qr(T, mode="complete")
    N = Qf[:, T.shape[1]:]
    return np.linalg.eigvals(N.T @ J @ N) if P > T.shape[1] else np.zeros(0)


def zero_tolerance(eigs, zero_tol: float) -> float:
    """The scale-aware zero threshold: zero_tol · max(1, max|μ|)."""
    return zero_tol * max(1.0, float(np.max(np.abs(np.asarray(eigs)), initial=0.0)))


def point(rule: rules.TeacherRule, theta: PyTree, psi: PyTree, xi: PyTree | None = None) -> tuple:
    """The state z of the rule's field: (θ, ψ), or (θ, ψ, ξ) with ξ = θ by default for a rule that
    carries a teacher (a fixed point of dξ/dt = k(θ − ξ) has ξ = θ)."""
    if rules.check_rule(rule).carries_teacher:
        return theta, psi, theta if xi is None else xi
    if xi is not None:
        raise ValueError(f"rule {rule.name!r} carries no teacher copy; do not pass xi")
    return theta, psi


def jacobian(rule: rules.TeacherRule, F: Callable[..., jax.Array] | Objective, theta: PyTree, psi: PyTree, batch,
             *, k: float | None = None, xi: PyTree | None = None) -> np.ndarray:
    """J = DV(z) (P × P, float64 numpy) of the rule's expected field at z = :func:`point`, on the
    flattened parameters (``jax.flatten_util.ravel_pytree`` order). ``k``: the teacher's rate for
    a rule that carries one."""
    F = F.F if isinstance(F, Objective) else F
    V = integrability.field_at(F, batch, rule, k)
    return np.asarray(integrability.jacobian(V, point(rule, theta, psi, xi)), dtype=np.float64)


def analyze_jacobian(J, *, tangent: np.ndarray | None = None, orbit_dim: int | None = None, zero_tol: float = 1e-7,
                     rule: str = "") -> Spectrum:
    """Eigenvalues, transversal spectrum and verdict of a Jacobian J (module doc). ``tangent``
    (P × d, orthonormal) or ``orbit_dim`` d: the symmetry-orbit directions; neither: none."""
    J = np.asarray(J)
    eigs = np.linalg.eigvals(J)
    tol = zero_tolerance(eigs, zero_tol)
    if tangent is not None:
        tangent = np.asarray(tangent).reshape(J.shape[0], -1)
        d = tangent.shape[1] if orbit_dim is None else int(orbit_dim)
        residual = float(np.linalg.norm(J @ tangent) / max(np.linalg.norm(J), 1e-300))
        if J.shape[0] <= 2500:
            transversal = transversal_spectrum(J, tangent)
        else:  # deflate the dim T eigenvalues nearest 0 (the projection would cost more than eig)
            transversal = eigs[np.argsort(np.abs(eigs))[tangent.shape[1]:]]
    else:
        d = 0 if orbit_dim is None else int(orbit_dim)
        if not 0 <= d <= J.shape[0]:
            raise ValueError(f"orbit_dim must be in [0, {J.shape[0]}], got {orbit_dim}")
        residual = float("nan")
        transversal = eigs[np.argsort(np.abs(eigs))[d:]]
    kind, n_unstable = classify(transversal, tol)
    return Spectrum(rule, kind, n_unstable, int(np.sum(np.abs(eigs) <= tol)), d,
                    float(np.max(np.real(transversal), initial=-np.inf)), eigs, transversal, residual, J)


def spectrum(rule: rules.TeacherRule, F: Callable[..., jax.Array] | Objective, theta: PyTree, psi: PyTree, batch,
             *, k: float | None = None, xi: PyTree | None = None, tangent: np.ndarray | None = None,
             orbit_dim: int | None = None, zero_tol: float = 1e-7) -> Spectrum:
    """The Jacobian spectrum and verdict of ``rule``'s expected field at (θ, ψ[, ξ]) of any model
    (module doc): :func:`jacobian`, then :func:`analyze_jacobian`. Run it in float64
    (``jax.enable_x64``) for theory-grade zeros."""
    J = jacobian(rule, F, theta, psi, batch, k=k, xi=xi)
    return analyze_jacobian(J, tangent=tangent, orbit_dim=orbit_dim, zero_tol=zero_tol, rule=rule.name)

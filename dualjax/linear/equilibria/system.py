"""Prop 4.5 / Prop 4.7 — the equilibrium equations of the linear model and the existence test.

With S = AᵀA (m×m), M = Sρ + λI and λ > 0, (A, B) is an SG equilibrium (and (A, B, C = A) an EMA
one) **iff** (MATH.md §4)

    (i)  B = A τ M⁻¹ Aᵀ,        (ii)  M S M = S τᵀ S τ.

For full rank (rank A = m), (ii) is equivalent to Prop 4.5's m(m+1)/2 quadratic equations,

    (ρS + λI)(Sρ + λI) = τᵀ S τ         (τᵀ on the *left*; the transposed form is wrong),

in the N = m(m+1)/2 unknowns of the upper triangle of S (:func:`full_rank_residual`,
:func:`residual_vec`); Bézout bounds their isolated solutions by 2^N. Equation (ii) itself
(:func:`equilibrium_residual`) also covers rank S < m. Prop 4.7 (:func:`existence`,
:func:`apriori_bound`) is the a-priori test a full-rank solution must pass.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks
from dualjax.linear import model


def validated_data(mom: model.Moments | Any, lam) -> tuple[np.ndarray, np.ndarray, float]:
    """(ρ, τ, λ) as float64 numpy, validated: ρ ≻ 0, τ square, λ > 0 (needed for (i))."""
    rho = checks.check_psd(np.asarray(mom.rho), "rho", strict=True)
    tau = checks.check_square(np.asarray(mom.tau), rho.shape[0], "tau")
    lam = checks.check_lambda(lam)
    return (rho + rho.T) / 2, tau, lam


def num_unknowns(m: int) -> int:
    """N = m(m+1)/2, the number of entries of a symmetric m×m matrix."""
    return m * (m + 1) // 2


def bezout_bound(m: int) -> int:
    """Bézout's bound 2^{m(m+1)/2} on the number of isolated solutions of Prop 4.5's system."""
    return 2 ** num_unknowns(m)


def _triu(m: int):
    return np.triu_indices(m)


def sym_from_vec(x, m: int):
    """The symmetric m×m matrix whose upper triangle (row-major) is ``x`` (works on jnp/np arrays)."""
    iu = _triu(m)
    xp = jnp if isinstance(x, jax.Array) else np
    S = xp.zeros((m, m), dtype=x.dtype)
    if xp is jnp:
        S = S.at[iu].set(x)
        return S + jnp.triu(S, 1).T
    S[iu] = x
    return S + np.triu(S, 1).T


def vec_from_sym(S) -> Any:
    """Upper triangle (row-major) of a symmetric matrix."""
    return S[_triu(S.shape[-1])]


def full_rank_residual(S, rho, tau, lam):
    """Prop 4.5: (ρS + λI)(Sρ + λI) − τᵀSτ (symmetric m×m; zero at full-rank equilibria)."""
    xp = jnp if isinstance(S, jax.Array) else np
    eye = xp.eye(S.shape[-1])
    return (rho @ S + lam * eye) @ (S @ rho + lam * eye) - tau.T @ S @ tau


def residual_vec(x, rho, tau, lam, m: int):
    """Prop 4.5's system as a map ℝᴺ (or ℂᴺ) → ℝᴺ: upper triangle of :func:`full_rank_residual`
    at S = sym_from_vec(x) (the function the Newton and homotopy solvers zero)."""
    return vec_from_sym(full_rank_residual(sym_from_vec(x, m), rho, tau, lam))


def equilibrium_residual(S, rho, tau, lam):
    """Equation (ii): M S M − S τᵀ S τ with M = Sρ + λI (zero at equilibria of any rank)."""
    xp = jnp if isinstance(S, jax.Array) else np
    M = S @ rho + lam * xp.eye(S.shape[-1])
    return M @ S @ M - S @ tau.T @ S @ tau


def apriori_bound(rho, tau):
    """Prop 4.7 (MATH.md §4): every full-rank solution S ⪰ 0 has ‖S‖₂ ≤ ‖τ‖₂² / λ_min(ρ)².
    A float for one instance; an array of bounds for stacked (K, m, m) data."""
    rho = np.asarray(rho, float)
    bound = np.linalg.norm(np.asarray(tau, float), 2, axis=(-2, -1)) ** 2 / np.linalg.eigvalsh(rho)[..., 0] ** 2
    return float(bound) if np.ndim(bound) == 0 else bound


def existence(mom, lam) -> dict:
    """Prop 4.7 — a-priori existence check for full-rank (positive definite) equilibria.

    With u a top unit eigenvector of S and s = ‖S‖₂, (s λ_min(ρ) + λ)² ≤ s ‖τ‖₂², so a full-rank
    equilibrium can exist only if ‖τ‖₂² ≥ 4 λ λ_min(ρ) (for m = 1 this is exactly Δ ≥ 0), and then
    ‖S‖₂ ≤ ‖τ‖₂²/λ_min(ρ)². The condition is necessary, not sufficient: whether a solution exists
    is settled by the enumeration (:func:`~dualjax.linear.equilibria.enumerate_equilibria` fills
    in ``exists``).
    """
    rho, tau, lam = validated_data(mom, lam)
    tau_norm2 = float(np.linalg.norm(tau, 2) ** 2)
    lmin = float(np.linalg.eigvalsh(rho).min())
    necessary = tau_norm2 >= 4 * lam * lmin
    return {
        "tau_norm_sq": tau_norm2,
        "threshold_4_lam_lmin": 4 * lam * lmin,
        "necessary_condition_holds": bool(necessary),
        "S_norm_bound": tau_norm2 / lmin**2,
    }


def numerical_rank(S, tol: float = 1e-8) -> int:
    """Number of eigenvalues of the PSD matrix S above tol · max(1, ‖S‖)."""
    w = np.linalg.eigvalsh((np.asarray(S) + np.asarray(S).T) / 2)
    return int(np.sum(w > tol * max(1.0, float(np.abs(w).max()))))


def dedup_matrices(mats, tol: float = 1e-7) -> list:
    """The distinct solutions S among ``mats`` (‖S − T‖ ≤ tol (1 + ‖T‖) counts as equal), sorted by
    trace, descending: the order every solver returns its solutions in."""
    out = []
    for S in mats:
        if not any(np.linalg.norm(S - T) <= tol * (1 + np.linalg.norm(T)) for T in out):
            out.append(S)
    out.sort(key=lambda M: -np.trace(M))
    return out

"""Cor 4.6 — the equilibrium components as varieties: from a solution S to points (A, B).

A real solution S ⪰ 0 of equation (ii) of rank r gives the component

    𝓔_S = {(U W, U W τ M⁻¹ Wᵀ Uᵀ) : UᵀU = I_r},   WᵀW = S,   M = Sρ + λI,

a single orbit of (A, B) ↦ (QA, QBQᵀ), Q ∈ O(n), of dimension nr − r(r+1)/2. For full rank,
W = S^{1/2} up to rotation, so A = U√S as in the paper. :func:`field_residual` checks a point
against the SG field of Lemma 4.1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks


def gram_factor(S, rank: int | None = None, tol: float = 1e-10) -> np.ndarray:
    """W ∈ ℝ^{r×m} with WᵀW = S (r = numerical rank of S): W = Λ_r^{1/2} V_rᵀ."""
    S = np.asarray(S, float)
    w, V = np.linalg.eigh((S + S.T) / 2)
    order = np.argsort(w)[::-1]
    w, V = w[order], V[:, order]
    if rank is None:
        rank = int(np.sum(w > tol * max(1.0, float(abs(w).max()))))
    return np.sqrt(np.clip(w[:rank], 0, None))[:, None] * V[:, :rank].T


def predictor_at(A, mom, lam):
    """Equation (i): B = A τ (Sρ + λI)⁻¹ Aᵀ with S = AᵀA."""
    A = np.asarray(A, float)
    rho, tau = np.asarray(mom.rho, float), np.asarray(mom.tau, float)
    M = A.T @ A @ rho + lam * np.eye(rho.shape[0])
    return A @ tau @ np.linalg.solve(M, A.T)


def equilibrium_point(S, mom, lam, n: int, U=None, *, rank: int | None = None):
    """Cor 4.6: the point (A, B) = (U W, A τ M⁻¹ Aᵀ) of the component of S, with WᵀW = S.

    ``U`` (n×r, orthonormal columns) picks the point on the orbit; default the first r unit vectors.
    Full rank: W = S^{1/2} up to rotation, so A = U√S as in the paper.
    """
    checks.check_positive_int(n, "n")
    W = gram_factor(S, rank)
    r, m = W.shape
    if n < r:
        raise ValueError(f"n={n} is smaller than rank(S)={r}")
    U = np.eye(n, r) if U is None else np.asarray(U, float)
    checks.check_shape(U, (n, r), "U")
    A = U @ W
    return A, predictor_at(A, mom, lam)


def sample_variety(S, mom, lam, n: int, key, num: int = 8):
    """``num`` random points (A_i, B_i) of the component 𝓔_S: U Haar-random on the Stiefel manifold.

    Returns stacked arrays A (num, n, m) and B (num, n, n).
    """
    checks.check_positive_int(num, "num")
    r = gram_factor(S).shape[0]
    G = np.asarray(jax.random.normal(key, (num, n, max(r, 1)), dtype=jnp.float32), float)[..., :r]
    As, Bs = [], []
    for g in G:
        U, _ = np.linalg.qr(g) if r else (np.zeros((n, 0)), None)
        A, B = equilibrium_point(S, mom, lam, n, U)
        As.append(A)
        Bs.append(B)
    return np.stack(As), np.stack(Bs)


def field_residual(A, B, mom, lam) -> float:
    """‖SG field‖_F at (A, B) (Lemma 4.1), relative to 1 + ‖A‖² + ‖B‖²."""
    A = np.asarray(A, float)
    B = np.asarray(B, float)
    rho, tau = np.asarray(mom.rho, float), np.asarray(mom.tau, float)
    R = B @ A @ rho - A @ tau
    dA = B.T @ R + lam * A
    dB = R @ A.T + lam * B
    norm = math.sqrt(float(np.sum(dA**2) + np.sum(dB**2)))
    return norm / (1.0 + float(np.sum(A**2) + np.sum(B**2)))

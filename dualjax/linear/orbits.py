"""Cor 4.6 / Prop 4.10 — the O(n) symmetry orbits of the linear model's equilibria.

The SG and EMA fields are equivariant under (A, B, C) ↦ (QA, QBQᵀ, QC), Q ∈ O(n), so each
equilibrium lies on an orbit (Cor 4.6's component) whose tangent space

    T = {(ΩA, ΩB − BΩ, ΩC) : Ωᵀ = −Ω},   dim T = nr − r(r+1)/2 at rank A = r

(stabiliser O(n − r); MATH.md §4–5) sits in the kernel of the Jacobian J. In a basis [T, N] with
N ⟂ T, J = [[0, TᵀJN], [0, NᵀJN]], so spec J = {0}^{dim T} ∪ spec(NᵀJN): the *transversal*
spectrum spec(NᵀJN) decides the stability of the orbit as a set (Prop 4.10,
:mod:`dualjax.linear.stability`). Everything here is exact linear algebra on the group action.
"""

from __future__ import annotations

import numpy as np

from dualjax.spectrum import transversal_spectrum  # noqa: F401  (re-exported)


def orbit_dimension(n: int, r: int) -> int:
    """dim of the O(n)-orbit of a rank-r equilibrium: nr − r(r+1)/2 (stabiliser O(n − r))."""
    return n * r - r * (r + 1) // 2


def orbit_generators(A, B, C=None, *, exhaustive: bool = False, tol: float = 1e-9) -> np.ndarray:
    """Tangent vectors (ΩA, ΩB − BΩ[, ΩC]) of the O(n)-orbit, one column per generator Ω.

    ``exhaustive``: all n(n−1)/2 elementary skew generators. Otherwise only Ω = Q(e_i e_jᵀ − e_j e_iᵀ)Qᵀ
    with i < r, i < j, where Q = [U_r, U_⊥] from the SVD of A: the others (i, j ≥ r) fix the point
    (they rotate ker Aᵀ, where A, B, C vanish at an equilibrium), so this is a basis of T with
    exactly nr − r(r+1)/2 columns.
    """
    A = np.asarray(A, float)
    B = np.asarray(B, float)
    n = A.shape[0]
    if exhaustive:
        Q, pairs = np.eye(n), [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        U, s, _ = np.linalg.svd(A, full_matrices=True)
        r = int(np.sum(s > tol * max(1.0, float(s.max(initial=0.0)))))
        Q, pairs = U, [(i, j) for i in range(r) for j in range(i + 1, n)]
    cols = []
    for i, j in pairs:
        qi, qj = Q[:, i:i + 1], Q[:, j:j + 1]
        Om = qi @ qj.T - qj @ qi.T
        parts = [Om @ A, Om @ B - B @ Om] + ([Om @ np.asarray(C, float)] if C is not None else [])
        cols.append(np.concatenate([p.ravel() for p in parts]))
    size = A.size + B.size + (np.asarray(C).size if C is not None else 0)
    return np.stack(cols, axis=1) if cols else np.zeros((size, 0))


def orbit_tangent(A, B, C=None, *, exhaustive: bool = False, tol: float = 1e-9) -> np.ndarray:
    """Orthonormal basis (P × dim T) of the orbit's tangent space (numerical rank via SVD)."""
    G = orbit_generators(A, B, C, exhaustive=exhaustive)
    if G.shape[1] == 0:
        return G
    U, s, _ = np.linalg.svd(G, full_matrices=False)
    rank = int(np.sum(s > tol * max(1.0, float(s[0]))))
    return U[:, :rank]

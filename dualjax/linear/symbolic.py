"""Symbolic (sympy) companions of the linear theory.

* :func:`mixed_partials` — Prop 3.2 in exact arithmetic: the Jacobian of the expected SG field of a
  small linear model, V = −(∇_A F, ∇_B F)|_{C=A}, has ∂V_i/∂z_j ≠ ∂V_j/∂z_i (Schwarz fails), while
  for the plain rule (V = −∇E) every mixed pair agrees.
* :func:`block_formulas` — the closed forms of MATH.md §3 for the skew part, X[H] = −BᵀHτ and
  Y[H] = −HτAᵀ (∂_C of the A- and B-gradients), checked symbolically.
* :func:`full_rank_system` / :func:`equilibrium_system` — Prop 4.5's polynomial system in the
  entries of S (the input of the exact solver :func:`dualjax.linear.equilibria.solve_exact`), and
  equation (ii) M S M = S τᵀ S τ for any rank.
"""

from __future__ import annotations

import sympy as sp


def _matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}{i}{j}", real=True))


def _sym_matrix(name: str, m: int) -> sp.Matrix:
    return sp.Matrix(m, m, lambda i, j: sp.Symbol(f"{name}{min(i, j)}{max(i, j)}", real=True))


def linear_F(A, B, C, rho, tau, sigma, lam):
    """F(A, B, C) = ½ tr(BAρAᵀBᵀ) − tr(BAτᵀCᵀ) + ½ tr(CσCᵀ) + λ(‖A‖² + ‖B‖²)/2 (MATH.md §0)."""
    BA = B * A
    sq = lambda M: sum(v**2 for v in M)  # noqa: E731
    return (sp.Rational(1, 2) * (BA * rho * BA.T).trace() - (BA * tau.T * C.T).trace()
            + sp.Rational(1, 2) * (C * sigma * C.T).trace() + lam / 2 * (sq(A) + sq(B)))


def fields(n: int = 2, m: int = 1, *, symbolic_data: bool = True):
    """(z, V_sg, V_plain, data): the symbols z = vec(A) ⊕ vec(B) and both fields as sympy vectors.

    V_sg = −(∂F/∂A, ∂F/∂B)(A, B, C)|_{C=A} (partials first, then C = A); V_plain = −∇E, E = F(A, B, A).
    ``symbolic_data``: ρ (symmetric), τ, λ as symbols; else fixed small rationals.
    """
    A, B, C = _matrix("a", n, m), _matrix("b", n, n), _matrix("c", n, m)
    if symbolic_data:
        rho, tau, sigma = _sym_matrix("rho", m), _matrix("tau", m, m), _sym_matrix("sigma", m)
        lam = sp.Symbol("lam", positive=True)
    else:
        rho = sp.Matrix(m, m, lambda i, j: sp.Rational(2 if i == j else 1, 3))
        tau = sp.Matrix(m, m, lambda i, j: sp.Rational(3 + i - 2 * j, 4))
        sigma = sp.eye(m)
        lam = sp.Rational(1, 10)
    z = list(A) + list(B)
    F = linear_F(A, B, C, rho, tau, sigma, lam)
    subs = dict(zip(list(C), list(A)))
    V_sg = [-sp.diff(F, v).subs(subs) for v in z]
    E = F.subs(subs)
    V_plain = [-sp.diff(E, v) for v in z]
    return z, sp.Matrix(V_sg), sp.Matrix(V_plain), {"A": A, "B": B, "rho": rho, "tau": tau, "lam": lam}


def mixed_partials(n: int = 2, m: int = 1, *, symbolic_data: bool = True) -> dict:
    """Schwarz test in exact arithmetic: the antisymmetric part K = J − Jᵀ of both fields.

    Returns ``sg_skew`` and ``plain_skew`` (sympy matrices, simplified), the list of index pairs
    (i, j) where the SG mixed partials differ, and an example pair with its two partials.
    """
    z, V_sg, V_plain, data = fields(n, m, symbolic_data=symbolic_data)
    J_sg = V_sg.jacobian(z)
    J_plain = V_plain.jacobian(z)
    K_sg = (J_sg - J_sg.T).applyfunc(sp.expand)
    K_plain = (J_plain - J_plain.T).applyfunc(sp.expand)
    differ = [(i, j) for i in range(len(z)) for j in range(i + 1, len(z)) if K_sg[i, j] != 0]
    example = None
    if differ:
        i, j = differ[0]
        example = {"z_i": z[i], "z_j": z[j], "dVi_dzj": sp.factor(J_sg[i, j]), "dVj_dzi": sp.factor(J_sg[j, i])}
    return {
        "z": z,
        "sg_skew": K_sg,
        "plain_skew": K_plain,
        "sg_differ": differ,
        "plain_symmetric": K_plain.is_zero_matrix,
        "example": example,
        "data": data,
    }


def block_formulas(n: int = 2, m: int = 2) -> dict:
    """MATH.md §3 linear case: ∂_C(∇_A F)[H] = −BᵀHτ and ∂_C(∇_B F)[H] = −HτAᵀ (both differences 0)."""
    A, B, C = _matrix("a", n, m), _matrix("b", n, n), _matrix("c", n, m)
    H = _matrix("h", n, m)
    rho, tau, sigma = _sym_matrix("rho", m), _matrix("tau", m, m), _sym_matrix("sigma", m)
    lam = sp.Symbol("lam", positive=True)
    F = linear_F(A, B, C, rho, tau, sigma, lam)
    t = sp.Symbol("t")
    shift = dict(zip(list(C), list(C + t * H)))
    gA = sp.Matrix(n, m, lambda i, j: sp.diff(F, A[i, j]))
    gB = sp.Matrix(n, n, lambda i, j: sp.diff(F, B[i, j]))
    X = sp.diff(gA.subs(shift), t).subs(t, 0)
    Y = sp.diff(gB.subs(shift), t).subs(t, 0)
    return {
        "X_minus_formula": (X - (-B.T * H * tau)).applyfunc(sp.expand),
        "Y_minus_formula": (Y - (-H * tau * A.T)).applyfunc(sp.expand),
    }


def full_rank_system(rho, tau, lam):
    """Prop 4.5: the m(m+1)/2 polynomials (upper triangle) of (ρS + λI)(Sρ + λI) − τᵀSτ, and S's symbols."""
    rho, tau = sp.Matrix(rho), sp.Matrix(tau)
    m = rho.shape[0]
    syms = [sp.Symbol(f"s{i}{j}") for i in range(m) for j in range(i, m)]
    S = sp.zeros(m)
    k = 0
    for i in range(m):
        for j in range(i, m):
            S[i, j] = S[j, i] = syms[k]
            k += 1
    I = sp.eye(m)
    E = (rho * S + lam * I) * (S * rho + lam * I) - tau.T * S * tau
    return [sp.expand(E[i, j]) for i in range(m) for j in range(i, m)], syms, S


def equilibrium_system(rho, tau, lam):
    """Equation (ii): the m² polynomials of M S M − S τᵀ S τ, M = Sρ + λI (any rank)."""
    _, syms, S = full_rank_system(rho, tau, lam)
    rho, tau = sp.Matrix(rho), sp.Matrix(tau)
    M = S * rho + lam * sp.eye(rho.shape[0])
    E = M * S * M - S * tau.T * S * tau
    return [sp.expand(e) for e in E], syms, S


def m1_solutions(rho, tau, lam):
    """m = 1 exactly: the roots s = r² of (ρs + λ)² = τ²s, i.e. r₁,₂ = (|τ| ∓ √Δ)/(2ρ) (Prop 4.11)."""
    eqs, syms, _ = full_rank_system([[rho]], [[tau]], lam)
    return sp.solve(eqs[0], syms[0])

"""sympy: Schwarz's mixed partials for the linear SG / plain fields, and the polynomial system for S."""

import numpy as np
import sympy as sp

from dualjax.linear import equilibria as eq
from dualjax.linear import model
from dualjax.linear import stability as st
from dualjax.linear import symbolic


def test_sg_mixed_partials_differ_plain_agree():
    res = symbolic.mixed_partials(2, 1)
    assert res["plain_symmetric"]
    assert len(res["sg_differ"]) > 0
    ex = res["example"]
    assert sp.expand(ex["dVi_dzj"] - ex["dVj_dzi"]) != 0
    # the difference involves τ only: with τ = 0 the SG field would be integrable (Y ≡ 0 ⇒ τ = 0)
    tau = [s for s in res["sg_skew"].free_symbols if s.name.startswith("tau")]
    assert tau and res["sg_skew"].subs({t: 0 for t in tau}).is_zero_matrix


def test_block_formulas():
    res = symbolic.block_formulas(2, 2)
    assert res["X_minus_formula"].is_zero_matrix and res["Y_minus_formula"].is_zero_matrix


def test_symbolic_jacobian_equals_jacfwd():
    z, V_sg, _, data = symbolic.fields(3, 2, symbolic_data=False)
    J_sym = V_sg.jacobian(z)
    rng = np.random.default_rng(0)
    vals = rng.standard_normal(len(z))
    J_num = np.asarray(J_sym.subs(dict(zip(z, vals))), dtype=float)
    n, m = 3, 2
    A, B = vals[: n * m].reshape(n, m), vals[n * m:].reshape(n, n)
    mom = model.Moments(np.asarray(data["rho"], float), np.asarray(data["tau"], float), np.eye(m))
    np.testing.assert_allclose(st.sg_jacobian(A, B, mom, float(data["lam"])), J_num, atol=1e-12)


def test_polynomial_system_matches_numeric_residual():
    rho = [[sp.Rational(3, 2), sp.Rational(1, 4)], [sp.Rational(1, 4), 1]]
    tau = [[1, sp.Rational(-1, 3)], [sp.Rational(1, 2), sp.Rational(2, 3)]]
    lam = sp.Rational(1, 20)
    polys, syms, _ = symbolic.full_rank_system(rho, tau, lam)
    polys2, _, _ = symbolic.equilibrium_system(rho, tau, lam)
    vals = {s: v for s, v in zip(syms, [0.7, -0.2, 1.1])}
    S = np.array([[0.7, -0.2], [-0.2, 1.1]])
    r, t = np.asarray(rho, float), np.asarray(tau, float)
    np.testing.assert_allclose([float(p.subs(vals)) for p in polys], eq.vec_from_sym(eq.full_rank_residual(S, r, t, 0.05)))
    np.testing.assert_allclose([float(p.subs(vals)) for p in polys2], eq.equilibrium_residual(S, r, t, 0.05).ravel())
    # independent elimination by resultants: every s₁₁ of the exact (Gröbner) solver's real
    # solutions is a real root of res(res(p₁, p₂, s₀₀), res(p₁, p₃, s₀₀), s₀₁) ∈ ℚ[s₁₁]
    a, b, c = syms
    R = sp.resultant(sp.resultant(polys[0], polys[1], a), sp.resultant(polys[0], polys[2], a), b)
    roots = [float(x) for x in sp.Poly(sp.sqf_part(R), c).real_roots()]
    ex = eq.solve_exact(r, t, 0.05)
    assert len(ex.real) == 2 and ex.complex_count == 6
    for S in ex.real:
        assert min(abs(S[1, 1] - x) for x in roots) < 1e-10


def test_m1_roots_are_the_squared_radii():
    rho, tau, lam = sp.Rational(6, 5), sp.Rational(-4, 5), sp.Rational(1, 20)
    roots = sorted(float(r) for r in symbolic.m1_solutions(rho, tau, lam))
    r1, r2 = (float(r) for r in eq.radii(float(rho), float(tau), float(lam)))
    np.testing.assert_allclose(roots, [r1**2, r2**2], rtol=1e-13)


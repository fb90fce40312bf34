"""Prop 4.5 exactly — every solution S of the full-rank system by a Gröbner basis over ℚ (sympy).

The polynomials are :func:`dualjax.linear.symbolic.full_rank_system` on rationalised data:
grevlex Gröbner basis, then FGLM to lex; for generic data the lex basis is in shape-lemma form
(s_N univariate of degree D, s_i = h_i(s_N)), so D is the exact complex count (2, 6, 24 for
m = 1, 2, 3) and the real roots are isolated exactly, then polished by Newton on the float data.
< 1 s for m = 2; for m = 3 8–15 s on small-integer data but minutes on float data rationalised to
denominators ~100 (coefficient growth), so m = 3 defaults to homotopy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from dualjax.linear.equilibria.newton import polish
from dualjax.linear.equilibria.system import num_unknowns, sym_from_vec


@dataclass(frozen=True)
class ExactSolution:
    """Result of :func:`solve_exact`.

    complex_count: number of complex solutions with multiplicity (= degree of the lex univariate).
    real: the real symmetric solutions, polished on the original data (sorted by trace, descending).
    seconds: wall time of the Gröbner / FGLM step.
    rational_data: the (ρ, τ, λ) actually used by the exact computation.
    """

    complex_count: int
    real: list
    seconds: float
    rational_data: tuple


def _rationalize(a, max_den):
    return [[Fraction(float(v)).limit_denominator(max_den) for v in row] for row in np.atleast_2d(a)]


def _shape_form(G, gens, last):
    """(univariate in ``last``, {v: h_v(last)}, last) if the lex basis is in shape-lemma form, else None."""
    import sympy as sp

    lex = G.fglm("lex") if len(gens) > 1 else G
    polys = [sp.Poly(g, *gens) for g in lex.exprs]
    uni = [p for p in polys if p.free_symbols <= {last}]
    if len(uni) != 1 or len(polys) != len(gens):
        return None
    back = {}
    for p in polys:
        if p is uni[0]:
            continue
        lead = [v for v in gens if v != last and p.degree(v) == 1]
        expr = p.as_expr()
        if len(lead) != 1 or any(p.degree(v) for v in gens if v not in (lead[0], last)):
            return None
        v = lead[0]
        coeff = expr.coeff(v)
        if coeff.free_symbols:
            return None
        back[v] = -(expr - coeff * v) / coeff
    univariate = sp.Poly(uni[0].as_expr(), last)
    if sp.degree(sp.gcd(univariate, univariate.diff(last))) > 0:  # repeated roots: not radical
        return None
    return univariate, back, last


def solve_exact(rho, tau, lam, *, max_denominator: int = 100, digits: int = 40) -> ExactSolution:
    """All solutions of Prop 4.5's system by Gröbner basis over ℚ (sympy).

    The data are rationalised (``Fraction.limit_denominator(max_denominator)``; exact when the
    data are such rationals already). grevlex Gröbner basis, then FGLM to lex; for generic data
    the lex basis is in shape-lemma form (s_N univariate of degree D, s_i = h_i(s_N)), so D is the
    exact complex count and the real roots of the univariate are isolated exactly (Sturm /
    interval arithmetic). Each real root is evaluated to ``digits`` digits and then polished by
    Newton on the *given* float data, so that residuals refer to the data asked about.
    """
    # sympy takes seconds to import; only this solver needs it
    import sympy as sp

    from dualjax.linear import symbolic

    rho = np.asarray(rho, float)
    tau = np.asarray(tau, float)
    m = rho.shape[0]
    N = num_unknowns(m)
    R = sp.Matrix(_rationalize(rho, max_denominator))
    R = (R + R.T) / 2
    T = sp.Matrix(_rationalize(tau, max_denominator))
    L = sp.Rational(Fraction(float(lam)).limit_denominator(max_denominator * 100))
    eqs, s, _ = symbolic.full_rank_system(R, T, L)
    t0 = time.perf_counter()
    G = sp.groebner(eqs, *s, order="grevlex", domain="QQ")
    if not G.is_zero_dimensional:
        raise ValueError("the solution set of Prop 4.5's system is not finite for these data (non-generic)")
    shape = _shape_form(G, list(s), s[-1])
    rng = np.random.default_rng(0)
    for _ in range(3):  # not in shape position: separate the roots by a random linear form u
        if shape is not None:
            break
        u = sp.Symbol("u")
        c = [int(v) for v in rng.integers(1, 7, N)]
        Gu = sp.groebner(eqs + [u - sum(ci * si for ci, si in zip(c, s))], *s, u, order="grevlex", domain="QQ")
        shape = _shape_form(Gu, list(s) + [u], u)
    if shape is None:
        raise ValueError("could not bring the lex basis into shape position (non-radical or non-generic data); "
                         "use solve_homotopy")
    univariate, back, last = shape
    seconds = time.perf_counter() - t0
    real = []
    for root in univariate.real_roots(multiple=True):
        val = sp.N(root, digits)
        x = [float(sp.N(back[v].subs(last, val), digits)) if v != last else float(val) for v in s]
        Sx = sym_from_vec(np.asarray(x), m)
        real.append(polish(Sx, rho, tau, float(lam)))
    real.sort(key=lambda M: -np.trace(M))
    return ExactSolution(int(univariate.degree()), real, seconds, (R, T, L))

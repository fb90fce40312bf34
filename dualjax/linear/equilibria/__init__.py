"""Prop 4.5 / Cor 4.6 / Prop 4.7 / Prop 4.11 — the SG and EMA equilibria of the linear model.

With S = AᵀA (m×m), M = Sρ + λI and λ > 0, (A, B) is an SG equilibrium (and (A, B, C = A) an EMA
one) **iff** (MATH.md §4)

    (i)  B = A τ M⁻¹ Aᵀ,        (ii)  M S M = S τᵀ S τ;

for full rank, (ii) is Prop 4.5's system (ρS + λI)(Sρ + λI) = τᵀ S τ of m(m+1)/2 quadratics, with
at most 2^{m(m+1)/2} isolated solutions (Bézout); generic data give 2, 6, 24 complex solutions for
m = 1, 2, 3 (exact) and 124 for m = 4 (homotopy, measured), so the (m+1)! pattern of m ≤ 3 does
not continue. Real S ≻ 0 give Cor 4.6's components 𝓔 = {(U√S, U√S τ M⁻¹ √S Uᵀ) : UᵀU = I_m}, of
dimension nm − m(m+1)/2; rank-deficient ones (rank S = r < m) have orbits of dimension
nr − r(r+1)/2.

Modules (everything public is re-exported here: ``from dualjax.linear import equilibria as eq``):

* ``system``      — Prop 4.5's equation and equation (ii) as residuals, Prop 4.7's existence test;
* ``varieties``   — Cor 4.6: the points (A, B) = (U W, A τ M⁻¹ Aᵀ) of the component of S = WᵀW;
* ``exact``       — :func:`solve_exact`, sympy Gröbner basis over ℚ (exact counts; m ≤ 3);
* ``homotopy``    — :func:`solve_homotopy`, total-degree homotopy continuation in JAX (m ≤ 4);
* ``newton``      — Newton polish, many-start :func:`solve_newton` (large m, real roots only) and
  :func:`rank_deficient_solutions` (Levenberg–Marquardt on S = WᵀW; indicative);
* ``enumeration`` — :func:`enumerate_equilibria`: every PSD equilibrium with rank and residuals;
* ``batched``     — :func:`enumerate_batch`: the same for K instances at once (parameter homotopy from
  a generic complex start system, lane-wise Levenberg–Marquardt for rank r < m), for the general-m
  Monte Carlo.

Prop 4.11's m = 1 closed forms (:mod:`dualjax.linear.spheres`) are re-exported too.
"""

from dualjax.linear.equilibria.batched import BatchEnumeration, enumerate_batch, start_system
from dualjax.linear.equilibria.enumeration import Enumeration, Equilibrium, enumerate_equilibria
from dualjax.linear.equilibria.exact import ExactSolution, solve_exact
from dualjax.linear.equilibria.homotopy import (
    OBSERVED_COMPLEX_COUNTS,
    HomotopySolution,
    expected_complex_count,
    solve_homotopy,
)
from dualjax.linear.equilibria.newton import newton_batch, polish, rank_deficient_solutions, solve_newton
from dualjax.linear.equilibria.system import (
    apriori_bound,
    bezout_bound,
    dedup_matrices,
    equilibrium_residual,
    existence,
    full_rank_residual,
    num_unknowns,
    numerical_rank,
    residual_vec,
    sym_from_vec,
    validated_data,
    vec_from_sym,
)
from dualjax.linear.equilibria.varieties import (
    equilibrium_point,
    field_residual,
    gram_factor,
    predictor_at,
    sample_variety,
)
from dualjax.linear.spheres import (
    discriminant,
    max_stable_step,
    predictor_on_sphere,
    radial_eigenvalue,
    radii,
)

__all__ = [
    "OBSERVED_COMPLEX_COUNTS", "BatchEnumeration", "Enumeration", "Equilibrium", "ExactSolution", "HomotopySolution",
    "apriori_bound", "bezout_bound", "dedup_matrices", "discriminant", "enumerate_batch", "enumerate_equilibria",
    "equilibrium_point", "equilibrium_residual", "existence", "expected_complex_count",
    "field_residual", "full_rank_residual", "gram_factor", "max_stable_step", "newton_batch",
    "num_unknowns", "numerical_rank", "polish", "predictor_at", "predictor_on_sphere",
    "radial_eigenvalue", "radii", "rank_deficient_solutions", "residual_vec",
    "sample_variety", "solve_exact", "solve_homotopy", "solve_newton", "start_system", "sym_from_vec",
    "validated_data", "vec_from_sym",
]

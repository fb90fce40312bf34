"""Prop 4.5 / Cor 4.6 / Prop 4.7 / Prop 4.11: the equilibrium solvers against each other and the field."""

import jax
import numpy as np
import pytest

from dualjax.linear import equilibria as eq
from dualjax.linear import model

LAM = 0.05


def _gauss(seed, m):
    mom = model.random_moments(jax.random.PRNGKey(seed), m, kind="gauss")
    return model.Moments(*(np.asarray(x) for x in mom))


def _match(Ss, Ts, tol=1e-8):
    assert len(Ss) == len(Ts)
    for S in Ss:
        assert min(np.linalg.norm(S - T) / (1 + np.linalg.norm(T)) for T in Ts) < tol


def test_every_equilibrium_zeroes_the_field_and_BtB_equals_AAt():
    mom = _gauss(2, 2)  # an instance with 4 positive definite solutions
    enum = eq.enumerate_equilibria(mom, LAM, n=4, starts=64)
    assert len(enum.positive_definite) == 4
    assert {e.rank for e in enum.equilibria} == {0, 1, 2}
    for k, e in enumerate(enum.equilibria):
        assert e.residual < 1e-9 and e.field_residual < 1e-9
        As, Bs = eq.sample_variety(e.S, mom, LAM, 5, jax.random.PRNGKey(k), 3)
        for A, B in zip(As, Bs):
            np.testing.assert_allclose(A.T @ A, e.S, atol=1e-9 * (1 + np.abs(e.S).max()))
            assert eq.field_residual(A, B, mom, LAM) < 1e-9
            # Lemma (MATH.md §4): BᵀB = AAᵀ at every equilibrium, BBᵀ in general not
            np.testing.assert_allclose(B.T @ B, A @ A.T, atol=1e-9 * (1 + np.abs(e.S).max()))
    # the points of one component are genuinely different (a manifold, not a point)
    As, _ = eq.sample_variety(enum.positive_definite[0].S, mom, LAM, 5, jax.random.PRNGKey(9), 2)
    assert np.linalg.norm(As[0] - As[1]) > 1e-3


def test_transposed_equation_is_not_the_equilibrium_condition():
    mom = _gauss(2, 2)
    S = eq.solve_exact(mom.rho, mom.tau, LAM).real[0]
    rho, tau = mom.rho, mom.tau
    wrong = (rho @ S + LAM * np.eye(2)) @ (S @ rho + LAM * np.eye(2)) - tau @ S @ tau.T
    assert np.linalg.norm(eq.full_rank_residual(S, rho, tau, LAM)) < 1e-9 * (1 + np.linalg.norm(S) ** 2)
    assert np.linalg.norm(wrong) > 1e-3


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_exact_and_homotopy_agree_m2(seed):
    rng = np.random.default_rng(seed)
    L = rng.integers(-3, 4, (2, 2))
    rho = (L @ L.T + np.eye(2)) / 2
    tau = rng.integers(-4, 5, (2, 2)) / 2
    while abs(np.linalg.det(tau)) < 0.5:  # singular τ is non-generic (solution counts drop)
        tau = rng.integers(-4, 5, (2, 2)) / 2
    ex = eq.solve_exact(rho, tau, LAM)
    ho = eq.solve_homotopy(rho, tau, LAM, seed=seed)
    assert ex.complex_count == ho.complex_count == 6 < eq.bezout_bound(2)
    _match(ex.real, ho.real)
    nw = eq.solve_newton(rho, tau, LAM, seed=seed, starts=128)
    assert len(nw) <= len(ex.real)
    if nw:
        _match(nw, ex.real)


def test_exact_and_homotopy_agree_m3():
    # small integer data keep the Gröbner basis over ℚ fast (~8 s)
    rho = np.array([[2.0, 1.0, 1.0], [1.0, 4.0, 1.0], [1.0, 1.0, 2.0]])
    tau = np.array([[0.0, -1.0, -1.0], [1.0, 0.0, 0.0], [-1.0, 1.0, -1.0]])
    ex = eq.solve_exact(rho, tau, 0.1)
    ho = eq.solve_homotopy(rho, tau, 0.1, seed=1)
    assert ex.complex_count == ho.complex_count == 24
    assert len(ex.real) == 4
    _match(ex.real, ho.real)
    for S in ex.real:
        assert np.linalg.eigvalsh(S).min() > 0
        assert np.linalg.norm(eq.full_rank_residual(S, rho, tau, 0.1)) < 1e-9 * (1 + np.linalg.norm(S) ** 2)


@pytest.mark.parametrize("rho,tau", [(1.0, 0.8), (2.5, -0.9), (0.3, 0.5)])
def test_m1_closed_form_agrees_with_general_solvers(rho, tau):
    r1, r2 = (float(r) for r in eq.radii(rho, tau, LAM))
    closed = sorted([r1**2, r2**2])
    ex = eq.solve_exact(np.array([[rho]]), np.array([[tau]]), LAM)
    ho = eq.solve_homotopy(np.array([[rho]]), np.array([[tau]]), LAM)
    assert ex.complex_count == ho.complex_count == 2
    np.testing.assert_allclose(sorted(S[0, 0] for S in ex.real), closed, rtol=1e-12)
    np.testing.assert_allclose(sorted(S[0, 0] for S in ho.real), closed, rtol=1e-12)
    np.testing.assert_allclose(r1 * r2, LAM / rho, rtol=1e-12)
    # the Cor 4.6 point is on the sphere, with B = sign(τ) a aᵀ / r
    mom = model.moments(rho, tau)
    A, B = eq.equilibrium_point(np.array([[r2**2]]), mom, LAM, 3)
    np.testing.assert_allclose(B, np.asarray(eq.predictor_on_sphere(A[:, 0], tau, r2)), atol=1e-12)
    assert eq.field_residual(A, B, mom, LAM) < 1e-12


def test_commuting_data_give_the_inner_outer_products():
    """ρ, τ diagonal: the real solutions are diag(r_{i,1}² or r_{i,2}²), the 2^m m=1 choices."""
    rho, tau = np.diag([1.0, 0.6]), np.diag([0.9, -0.7])
    ex = eq.solve_exact(rho, tau, LAM)
    choices = [np.diag([a, b]) for a in (float(r) ** 2 for r in eq.radii(1.0, 0.9, LAM))
               for b in (float(r) ** 2 for r in eq.radii(0.6, -0.7, LAM))]
    _match(ex.real, choices, 1e-10)


def test_existence_check_reports_no_positive_definite_solution():
    mom = model.moments(np.eye(2), 0.1 * np.array([[1.0, 0.2], [-0.3, 0.5]]))
    ex = eq.existence(mom, 0.1)
    assert not ex["necessary_condition_holds"]
    enum = eq.enumerate_equilibria(mom, 0.1, n=3, starts=32)
    assert enum.positive_definite == [] and not enum.existence["exists"]
    assert [e.rank for e in enum.equilibria] == [0]  # only the origin (collapse)
    # a-priori bound ‖S‖ ≤ ‖τ‖²/λ_min(ρ)² holds on every real solution when they exist
    mom2 = _gauss(2, 2)
    bound = eq.existence(mom2, LAM)["S_norm_bound"]
    for S in eq.solve_exact(mom2.rho, mom2.tau, LAM).real:
        assert np.linalg.norm(S, 2) <= bound


def test_rank_deficient_equilibria_solve_equation_ii():
    mom = _gauss(2, 2)
    sols = eq.rank_deficient_solutions(mom.rho, mom.tau, LAM, 1, starts=64)
    assert len(sols) >= 1
    for S in sols:
        assert eq.numerical_rank(S) == 1
        assert np.linalg.norm(eq.equilibrium_residual(S, mom.rho, mom.tau, LAM)) < 1e-9 * (1 + np.linalg.norm(S) ** 2)
        A, B = eq.equilibrium_point(S, mom, LAM, 4)
        assert np.linalg.matrix_rank(A, tol=1e-8) == 1
        assert eq.field_residual(A, B, mom, LAM) < 1e-9
        # not a solution of the full-rank equation (that one needs S invertible)
        assert np.linalg.norm(eq.full_rank_residual(S, mom.rho, mom.tau, LAM)) > 1e-6


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="lam"):
        eq.enumerate_equilibria(model.moments(1.0, 0.5), 0.0)
    with pytest.raises(ValueError, match="rho"):
        eq.existence(model.Moments(np.array([[1.0, 2.0], [2.0, 1.0]]), np.eye(2), np.eye(2)), 0.1)
    with pytest.raises(ValueError, match="n > m"):
        eq.enumerate_equilibria(model.moments(np.eye(2), np.eye(2)), 0.1, n=2)
    with pytest.raises(ValueError, match="method"):
        eq.enumerate_equilibria(model.moments(1.0, 0.5), 0.1, method="magic")


def test_newton_pieces_shared_by_the_solvers():
    """The public building blocks: residual_vec is Prop 4.5's system on the upper triangle (numpy and
    complex jnp alike), newton_batch pulls perturbed roots back onto the exact ones, and
    dedup_matrices merges them and sorts by trace."""
    mom = _gauss(2, 2)
    rho, tau = mom.rho, mom.tau
    S = np.array([[0.7, -0.2], [-0.2, 1.1]])
    x = eq.vec_from_sym(S)
    np.testing.assert_array_equal(eq.sym_from_vec(x, 2), S)
    full = eq.full_rank_residual(S, rho, tau, LAM)
    np.testing.assert_allclose(eq.residual_vec(x, rho, tau, LAM, 2), [full[0, 0], full[0, 1], full[1, 1]])
    with jax.enable_x64(True):
        xc = jax.numpy.asarray(x, jax.numpy.complex128)
        np.testing.assert_allclose(np.asarray(eq.residual_vec(xc, rho.astype(complex), tau.astype(complex), LAM, 2)),
                                   eq.residual_vec(x, rho, tau, LAM, 2), rtol=1e-13)
        roots = eq.solve_exact(rho, tau, LAM).real
        xs = np.stack([eq.vec_from_sym(R) * (1 + 1e-3 * (-1) ** k) for k, R in enumerate(roots)])
        ends = np.asarray(eq.newton_batch(jax.numpy.asarray(xs), jax.numpy.asarray(rho), jax.numpy.asarray(tau), LAM,
                                          m=2, iters=8))
    back = [eq.sym_from_vec(e, 2) for e in ends]
    _match(back, roots, 1e-10)
    merged = eq.dedup_matrices(back + [R + 1e-12 for R in roots[::-1]])
    assert len(merged) == len(roots)
    assert [np.trace(R) for R in merged] == sorted((np.trace(R) for R in merged), reverse=True)

"""Prop 4.10 / 4.11: Jacobians, orbit zeros, classification, discrete step limits, simulations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import rules
from dualjax.linear import equilibria as eq
from dualjax.linear import model, orbits, simulation
from dualjax.linear import stability as st

LAM = 0.05
MOM = model.Moments(np.array([[1.0, 0.3], [0.3, 0.8]]), np.array([[0.9, 0.2], [-0.1, 0.7]]), np.eye(2))


@pytest.fixture(scope="module")
def enum():
    with jax.enable_x64(True):
        return eq.enumerate_equilibria(MOM, LAM, n=4, starts=64)


def test_jacobians_match_finite_differences(key):
    A, B = model.init_params(key, 3, 2)
    A, B = np.asarray(A), np.asarray(B)
    J = st.sg_jacobian(A, B, MOM, LAM)
    Jfd = st.finite_difference_jacobian(st.flat_sg_field(MOM, LAM, 3, 2), np.r_[A.ravel(), B.ravel()])
    np.testing.assert_allclose(J, Jfd, atol=1e-8)
    C = A + 0.1
    Je = st.ema_jacobian(A, B, C, MOM, LAM, 0.7)

    def flat_ema(z):
        Az, Bz, Cz = z[:6].reshape(3, 2), z[6:15].reshape(3, 3), z[15:].reshape(3, 2)
        out = model.ema_field(jnp.asarray(Az), jnp.asarray(Bz), jnp.asarray(Cz), MOM, LAM, 0.7)
        return np.concatenate([np.asarray(o).ravel() for o in out])

    Jefd = st.finite_difference_jacobian(flat_ema, np.r_[A.ravel(), B.ravel(), C.ravel()])
    np.testing.assert_allclose(Je, Jefd, atol=1e-8)


def test_ema_map_jacobian_is_the_T_matrix_of_math_md(key):
    """T = [[I + ηJ_z, ηJ_C], [(1 − α)P(I + ηJ_z), αI + (1 − α)ηPJ_C]] (MATH.md §5)."""
    A, B = (np.asarray(x) for x in model.init_params(key, 3, 2))
    C = A - 0.2
    eta, alpha = 0.07, 0.9
    T = st.ema_map_jacobian(A, B, C, MOM, LAM, eta, alpha)
    Jfull = st.ema_jacobian(A, B, C, MOM, LAM, 0.0)
    z = A.size + B.size
    Jz, JC = Jfull[:z, :z], Jfull[:z, z:]
    P = np.eye(z)[: A.size]
    top = np.hstack([np.eye(z) + eta * Jz, eta * JC])
    bottom = np.hstack([(1 - alpha) * P @ (np.eye(z) + eta * Jz), alpha * np.eye(A.size) + (1 - alpha) * eta * P @ JC])
    np.testing.assert_allclose(T, np.vstack([top, bottom]), atol=1e-12)


def test_orbit_tangent_dimension_and_zero_eigenvalues(enum):
    n = 4
    for e in enum.equilibria:
        A, B = eq.equilibrium_point(e.S, MOM, LAM, n)
        r = e.rank
        # exact tangent space of A -> QA, B -> QBQᵀ from all n(n-1)/2 generators
        T_all = orbits.orbit_tangent(A, B, exhaustive=True)
        T = orbits.orbit_tangent(A, B)
        assert T_all.shape[1] == T.shape[1] == orbits.orbit_dimension(n, r) == n * r - r * (r + 1) // 2
        J = st.sg_jacobian(A, B, MOM, LAM)
        assert np.linalg.norm(J @ T_all) < 1e-10 * (1 + np.linalg.norm(J))
        # zero eigenvalues of J counted independently of T
        eigs = np.linalg.eigvals(J)
        assert int(np.sum(np.abs(eigs) < 1e-7)) == orbits.orbit_dimension(n, r)
        for rule in (rules.sg(), rules.ema()):
            rep = st.analyze(e.S, MOM, LAM, n, rule=rule, method="dense")
            assert rep.zeros_match_orbit and rep.tangent_residual < 1e-10


def test_reduced_analysis_equals_dense(enum):
    for e in enum.equilibria:
        for rule in (rules.sg(), rules.ema()):
            d = st.analyze(e.S, MOM, LAM, 5, rule=rule, k=0.3, method="dense")
            r = st.analyze(e.S, MOM, LAM, 5, rule=rule, k=0.3, method="reduced")
            assert d.spectrum.size == r.spectrum.size
            np.testing.assert_allclose(np.sort_complex(d.spectrum), np.sort_complex(r.spectrum), atol=1e-9)
            assert (d.kind, d.n_unstable, d.n_zero) == (r.kind, r.n_unstable, r.n_zero)
            assert r.extra["block_coupling"] < 1e-10


def test_m1_outer_sphere_stable_inner_saddle():
    rho, tau, n = 1.3, -0.9, 4
    mom = model.moments(rho, tau)
    r1, r2 = (float(r) for r in eq.radii(rho, tau, LAM))
    delta = float(eq.discriminant(rho, tau, LAM))
    outer = st.analyze(np.array([[r2**2]]), mom, LAM, n, method="dense")
    inner = st.analyze(np.array([[r1**2]]), mom, LAM, n, method="dense")
    assert outer.kind == st.STABLE and (inner.kind, inner.n_unstable) == (st.SADDLE, 1)
    # radial eigenvalue λ − ρr² = ∓ r√Δ (MATH.md §6)
    assert np.min(np.abs(outer.spectrum - (-r2 * np.sqrt(delta)))) < 1e-10
    assert np.min(np.abs(inner.spectrum - (r1 * np.sqrt(delta)))) < 1e-10
    np.testing.assert_allclose(inner.max_real, r1 * np.sqrt(delta), rtol=1e-10)
    # discrete SG: η_max = 2/(|τ| r₂) from the spectrum
    np.testing.assert_allclose(outer.eta_max, float(eq.max_stable_step(rho, tau, LAM)), rtol=1e-10)
    assert st.sg_step_radius(outer.transversal, 0.99 * outer.eta_max) < 1 < st.sg_step_radius(
        outer.transversal, 1.01 * outer.eta_max)
    for k in (0.05, 1.0, 20.0):
        oe = st.analyze(np.array([[r2**2]]), mom, LAM, n, rule=rules.ema(), k=k)
        ie = st.analyze(np.array([[r1**2]]), mom, LAM, n, rule=rules.ema(), k=k)
        assert oe.kind == st.STABLE and (ie.kind, ie.n_unstable) == (st.SADDLE, 1)
        # roots of μ² + (2p + k)μ + k(p − λ) = 0, p = ρr²
        p = rho * r2**2
        for mu in np.roots([1.0, 2 * p + k, k * (p - LAM)]):
            assert np.min(np.abs(oe.spectrum - mu)) < 1e-9


def test_classification_of_m2_instance(enum):
    kinds = {}
    for e in enum.equilibria:
        rep = st.analyze(e.S, MOM, LAM, 4)
        kinds.setdefault(e.rank, []).append((rep.kind, rep.n_unstable))
    # full rank: the Loewner-maximal solution is stable, the other components are saddles (m > 1 too)
    assert kinds[2][0] == (st.STABLE, 0) and all(k == st.SADDLE for k, _ in kinds[2][1:])
    assert kinds[0] == [(st.STABLE, 0)]
    assert len(kinds[2]) == 4


def test_discrete_step_limits(enum):
    S = enum.equilibria[0].S
    rep = st.analyze(S, MOM, LAM, 4)
    assert st.sg_step_radius(rep.transversal, 0.98 * rep.eta_max) < 1 < st.sg_step_radius(rep.transversal,
                                                                                          1.02 * rep.eta_max)
    eta_ema = st.ema_eta_max(S, MOM, LAM, 4, 0.9, eta_hi=4 * rep.eta_max, iters=25)
    assert st.ema_step_radius(S, MOM, LAM, 4, 0.97 * eta_ema, 0.9) < 1
    assert st.ema_step_radius(S, MOM, LAM, 4, 1.03 * eta_ema, 0.9) > 1
    # α = 0 is SG: the EMA map's transversal radius reduces to that of I + ηJ (plus the copied teacher)
    np.testing.assert_allclose(st.ema_step_radius(S, MOM, LAM, 4, 0.5 * rep.eta_max, 0.0),
                               st.sg_step_radius(rep.transversal, 0.5 * rep.eta_max), rtol=1e-9)


def test_trajectories_end_on_stable_equilibria(enum):
    stable = {i: st.analyze(e.S, MOM, LAM, 4).kind for i, e in enumerate(enum.equilibria)}
    for seed, scale in [(0, 0.5), (1, 0.05), (2, 1.5)]:
        A0, B0 = model.init_params(jax.random.PRNGKey(seed), 4, 2, scale=scale)
        for rule in (rules.sg(), rules.ema(0.9)):
            run = simulation.simulate(rule, A0, B0, MOM, LAM, eta=0.1, max_steps=60_000, tol=1e-10)
            assert run.converged
            S = run.A.T @ run.A
            dist = [np.linalg.norm(S - e.S) / (1 + np.linalg.norm(e.S)) for e in enum.equilibria]
            i = int(np.argmin(dist))
            assert dist[i] < 1e-6 and stable[i] == st.STABLE


def test_bad_input():
    with pytest.raises(ValueError, match="rule must be a dualjax.rules.TeacherRule, got 'adam'"):
        st.analyze(np.eye(2), MOM, LAM, 4, rule="adam")
    with pytest.raises(ValueError, match="k"):
        st.analyze(np.eye(2), MOM, LAM, 4, rule=rules.ema(), k=-1.0)
    with pytest.raises(ValueError, match="'directpred' has no expected continuous-time field"):
        st.analyze(np.eye(2), MOM, LAM, 4, rule=rules.directpred())
    with pytest.raises(ValueError, match="n > m"):
        st.analyze(np.eye(2), MOM, LAM, 2)

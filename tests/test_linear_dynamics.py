"""Dynamics of the linear model: Lemma 4.3 (plain collapses), non-trivial SG/EMA equilibria,
Prop 3.1 (E increases along SG/EMA), and the input validation of the foundation."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import dynamics, rules
from dualjax.linear import model, spheres
from dualjax.linear.simulation import simulate

RHO, TAU, LAM = 1.0, 0.8, 0.05  # m = 1, Δ = 0.44 > 0: spheres r₁ ≈ 0.068, r₂ ≈ 0.732


def _m1(n=4, scale=0.5, seed=0):
    mom = model.moments(RHO, TAU)
    A0, B0 = model.init_params(jax.random.PRNGKey(seed), n, 1, scale=scale)
    return mom, A0, B0


@pytest.mark.parametrize("seed", range(3))
def test_plain_gradient_flow_collapses_lemma_4_3(seed):
    """‖A(t)‖ ≤ e^{−λt} ‖A(0)‖ along the flow, and (A, B) → (0, 0) — also for the discrete map."""
    mom = model.random_moments(jax.random.PRNGKey(seed), 2, kind="aug")
    lam = 0.1
    A0, B0 = model.init_params(jax.random.PRNGKey(100 + seed), 4, 2, scale=3.0)
    V = rules.field(rules.plain(), model.objective(lam).F)
    step = jax.jit(lambda z: dynamics.rk4_step(lambda w: V(w[0], w[1], mom), z, 0.01))
    z = (A0, B0)
    a0 = float(jnp.linalg.norm(A0))
    for t in range(1, 2001):
        z = step(z)
        if t % 200 == 0:
            assert float(jnp.linalg.norm(z[0])) <= np.exp(-lam * t * 0.01) * a0 * (1 + 1e-9)
    run = simulate(rules.plain(), A0, B0, mom, lam, eta=0.05, max_steps=200_000, tol=1e-12)
    assert run.status == "converged"
    assert np.linalg.norm(run.A) < 1e-8 and np.linalg.norm(run.B) < 1e-6
    assert not run.E_increased  # gradient descent on E with a small step is monotone


@pytest.mark.parametrize("rule_name", ["sg", "ema"])
@pytest.mark.parametrize("continuous", [False, True])
def test_sg_ema_reach_outer_sphere_m1(rule_name, continuous):
    mom, A0, B0 = _m1()
    run = simulate(rules.resolve(rule_name, momentum=0.9), A0, B0, mom, LAM, eta=0.05, max_steps=100_000, tol=1e-11,
                   continuous=continuous)
    assert run.status == "converged"
    _, r2 = spheres.radii(RHO, TAU, LAM)
    np.testing.assert_allclose(np.linalg.norm(run.A), float(r2), rtol=1e-7)
    np.testing.assert_allclose(run.B.T @ run.B, run.A @ run.A.T, atol=1e-8)
    np.testing.assert_allclose(run.B, spheres.predictor_on_sphere(run.A[:, 0], TAU, r2), atol=1e-8)


@pytest.mark.parametrize("rule_name", ["sg", "ema"])
def test_sg_ema_nontrivial_equilibrium_m2(rule_name):
    """m = 2: the end point is an equilibrium (field ≈ 0) of full rank with Bᵀ B = A Aᵀ (MATH.md §4)."""
    mom = model.moments([[1.0, 0.2], [0.2, 0.8]], [[0.9, 0.1], [-0.05, 0.7]])
    lam = 0.05
    A0, B0 = model.init_params(jax.random.PRNGKey(1), 4, 2, scale=1.0)
    run = simulate(rules.resolve(rule_name, momentum=0.9), A0, B0, mom, lam, eta=0.05, max_steps=200_000, tol=1e-12)
    assert run.status == "converged"
    assert np.linalg.matrix_rank(run.A, tol=1e-6) == 2
    fA, fB = model.sg_field(jnp.asarray(run.A), jnp.asarray(run.B), mom, lam)
    assert float(jnp.linalg.norm(fA)) + float(jnp.linalg.norm(fB)) < 1e-9
    np.testing.assert_allclose(run.B.T @ run.B, run.A @ run.A.T, atol=1e-9)
    np.testing.assert_allclose(run.C, run.A, atol=1e-9)
    # Prop 4.5: S = AᵀA solves (ρS + λI)(Sρ + λI) = τᵀ S τ
    S = run.A.T @ run.A
    rho, tau = np.asarray(mom.rho), np.asarray(mom.tau)
    lhs = (rho @ S + lam * np.eye(2)) @ (S @ rho + lam * np.eye(2))
    np.testing.assert_allclose(lhs, tau.T @ S @ tau, atol=1e-9)


@pytest.mark.parametrize("rule_name", ["sg", "ema"])
def test_E_increases_along_sg_and_ema_prop_3_1(rule_name):
    """From a small init the run ends on S₂ where E > E(θ₀): E must have increased (and the
    origin, E's unique minimum, is not where it ends)."""
    mom, A0, B0 = _m1(scale=0.15)
    obj = model.objective(LAM)
    run = simulate(rules.resolve(rule_name, momentum=0.99), A0, B0, mom, LAM, eta=0.05, max_steps=200_000, tol=1e-11)
    assert run.status == "converged"
    _, r2 = spheres.radii(RHO, TAU, LAM)
    np.testing.assert_allclose(np.linalg.norm(run.A), float(r2), rtol=1e-6)
    assert run.E_increased
    assert float(obj.E(jnp.asarray(run.A), jnp.asarray(run.B), mom)) > float(obj.E(A0, B0, mom))
    # the same run under plain GD never increases E and collapses
    plain = simulate(rules.plain(), A0, B0, mom, LAM, eta=0.05, max_steps=200_000, tol=1e-12)
    assert not plain.E_increased and np.linalg.norm(plain.A) < 1e-8


def test_trajectory_records_E_and_F_of_the_snapshot():
    mom, A0, B0 = _m1()
    obj = model.objective(LAM)
    rule = rules.ema(0.9)
    init, step = rules.make_step(obj.F, rule, __import__("optax").sgd(0.05))
    final, snaps = jax.jit(lambda s: dynamics.trajectory(step, s, mom, num_steps=100, every=10, E=obj.E, F=obj.F,
                                                         rule=rule))(init(A0, B0))
    assert snaps["theta"].shape == (10, 4, 1) and snaps["E"].shape == snaps["F"].shape == (10,)
    np.testing.assert_allclose(snaps["E"][-1], obj.E(final.theta, final.psi, mom), rtol=1e-12)
    np.testing.assert_allclose(snaps["F"][-1], obj.F(final.theta, final.psi, final.teacher.xi, mom), rtol=1e-12)
    np.testing.assert_allclose(snaps["theta"][-1], final.theta)
    with pytest.raises(ValueError, match="tracking F.*needs the rule"):
        dynamics.trajectory(step, init(A0, B0), mom, num_steps=10, E=obj.E, F=obj.F)
    with pytest.raises(ValueError, match="tracking F.*needs the rule"):
        dynamics.run_discrete(step, init(A0, B0), mom, E=obj.E, F=obj.F, max_steps=10, tol=1e-9)


def test_rose_is_an_increase_beyond_rounding():
    """rose(new, old) ⇔ new − old > E_RTOL·|old| + E_ATOL, for either sign of old."""
    rng = np.random.default_rng(0)
    old = rng.choice([-1.0, 1.0], 2000) * 10.0 ** rng.uniform(-16, 3, 2000)
    margin = dynamics.E_RTOL * np.abs(old) + dynamics.E_ATOL
    step = margin * rng.choice([0.5, 2.0], 2000) * rng.choice([-1.0, 1.0], 2000)
    new = old + step
    np.testing.assert_array_equal(np.asarray(dynamics.rose(jnp.asarray(new), jnp.asarray(old))), step > margin)
    assert not dynamics.rose(1.0 + 1e-12, 1.0) and dynamics.rose(1.0 + 1e-9, 1.0)  # noise vs a real rise


def test_budget_and_divergence_reported():
    mom, A0, B0 = _m1()
    run = simulate(rules.sg(), A0, B0, mom, LAM, eta=0.05, max_steps=10, tol=1e-12)
    assert run.status == "budget" and run.steps == 10
    with pytest.warns(RuntimeWarning, match="diverged.*eta=5.0"):
        run = simulate(rules.sg(), A0 * 10, B0 * 10, mom, LAM, eta=5.0, max_steps=1000)
    assert run.status == "diverged"
    assert run.steps < 1000


def test_bad_inputs_raise_named_errors():
    mom, A0, B0 = _m1()
    with pytest.raises(ValueError, match="lam must be >= 0.*-0.1"):
        simulate(rules.sg(), A0, B0, mom, -0.1)
    with pytest.raises(ValueError, match="alpha.*1.2"):
        simulate(rules.ema(1.2), A0, B0, mom, LAM)
    with pytest.raises(ValueError, match="eta must be.*-0.01"):
        simulate(rules.sg(), A0, B0, mom, LAM, eta=-0.01)
    with pytest.raises(ValueError, match="rho must be positive semi-definite"):
        model.moments([[1.0, 0.0], [0.0, -0.5]], np.eye(2))
    with pytest.raises(ValueError, match="rho must be symmetric"):
        model.moments([[1.0, 0.3], [0.0, 1.0]], np.eye(2))
    with pytest.raises(ValueError, match=r"tau must have shape \(2, 2\)"):
        model.moments(np.eye(2), np.eye(3))
    with pytest.raises(ValueError, match=r"A0 must have shape \(n, 1\)"):
        simulate(rules.sg(), np.ones((4, 2)), B0, mom, LAM)
    with pytest.raises(ValueError, match=r"B0 must have shape \(4, 4\)"):
        simulate(rules.sg(), A0, np.ones((3, 3)), mom, LAM)
    with pytest.raises(ValueError, match="n > m"):
        model.init_params(jax.random.PRNGKey(0), 2, 2)
    with pytest.raises(ValueError, match="rule must be a dualjax.rules.TeacherRule, got 'sg'"):
        simulate("sg", A0, B0, mom, LAM)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate(rules.sg(), A0, B0, mom, LAM, max_steps=5)  # valid input: no warning

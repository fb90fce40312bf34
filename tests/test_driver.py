"""The one driver (dualjax.dynamics): against a plain Python loop of make_step (the old per-purpose
loops' semantics, computed independently here), with a fixed batch and a data stream, its snapshots,
and against the Monte Carlo's accelerated engines (XLA closed form and the compiled kernel)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dualjax import dynamics, rules
from dualjax.linear import model, simulation
from dualjax.linear import montecarlo as mc


def _python_loop(step, state, batch_at, *, E, F, rule, max_steps, tol, max_norm=1e6):
    """One step at a time on the host: step, measure ‖Δ‖, stop on tol / budget / divergence; E and F
    of each new point θ_t on the batch of the step that follows."""
    def values(s, t):
        batch = batch_at(t)
        return float(E(s.theta, s.psi, batch)), float(F(s.theta, s.psi, rule.teacher(s.theta, s.teacher), batch))

    E_prev, F_prev = values(state, 0)
    e_up = f_up = False
    inc, t, status = np.inf, 0, "budget"
    while t < max_steps and inc >= tol:
        state, m = step(state, batch_at(t))
        t += 1
        inc = float(np.sqrt(m["d_theta"] ** 2 + m["d_psi"] ** 2 + m["d_xi"] ** 2))
        norm = float(optax.tree_utils.tree_norm((state.theta, state.psi)))
        if not np.isfinite(norm) or norm > max_norm:
            status = "diverged"
            break
        E_new, F_new = values(state, t)
        e_up |= bool(dynamics.rose(E_new, E_prev))
        f_up |= bool(dynamics.rose(F_new, F_prev))
        E_prev, F_prev = E_new, F_new
    if status != "diverged" and inc < tol:
        status = "converged"
    return state, t, status, e_up, f_up


def _linear(rule, eta=0.05, scale=0.5, lam=0.05):
    mom = model.moments([[1.0, 0.2], [0.2, 0.8]], [[0.9, 0.1], [-0.05, 0.7]])
    A0, B0 = model.init_params(jax.random.PRNGKey(1), 4, 2, scale=scale)
    obj = model.objective(lam)
    init, step = rules.make_step(obj.F, rule, optax.sgd(eta), features=obj.features)
    return obj, init(A0, B0), step, mom


@pytest.mark.parametrize("rule, eta, scale, lam, max_steps, status", [
    (rules.sg(), 0.3, 0.5, 0.05, 3000, "converged"),  # ~1,100 steps
    (rules.ema(0.9), 0.3, 0.5, 0.05, 3000, "converged"),  # F rises
    (rules.plain(), 0.3, 0.5, 0.2, 3000, "converged"),  # collapse
    (rules.sg(), 3.0, 3.0, 0.05, 500, "diverged"),
])
def test_driver_equals_a_python_loop_of_make_step(rule, eta, scale, lam, max_steps, status):
    with jax.enable_x64(True):
        obj, s0, step, mom = _linear(rule, eta, scale, lam)
        res = jax.jit(lambda s: dynamics.run_discrete(step, s, mom, E=obj.E, F=obj.F, rule=rule, max_steps=max_steps,
                                                      tol=1e-9))(s0)
        ref, t, ref_status, e_up, f_up = _python_loop(jax.jit(step), s0, lambda t: mom, E=obj.E, F=obj.F, rule=rule,
                                                      max_steps=max_steps, tol=1e-9)
    assert dynamics.STATUS[int(res.status)] == ref_status == status
    assert int(res.steps) == t and bool(res.E_increased) == e_up and bool(res.F_increased) == f_up
    for x, y in zip(jax.tree_util.tree_leaves((res.state.theta, res.state.psi, res.state.teacher)),
                    jax.tree_util.tree_leaves((ref.theta, ref.psi, ref.teacher))):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-300)


def test_driver_with_a_data_stream_and_snapshots_of_one_point():
    """batch_fn(key, t) gives step t's batch; trajectory's E and F are those of the snapshot's own state."""
    with jax.enable_x64(True):
        lam, rule = 0.05, rules.ema(0.8)
        obj = model.sample_objective(lam)

        def batch_fn(key, t):
            kx, kn = jax.random.split(jax.random.fold_in(key, t))
            x = jax.random.normal(kx, (64, 2))
            return x, x + 0.3 * jax.random.normal(kn, x.shape)

        key = jax.random.PRNGKey(3)
        A0, B0 = model.init_params(jax.random.PRNGKey(4), 3, 2)
        init, step = rules.make_step(obj.F, rule, optax.sgd(0.05))
        res = jax.jit(lambda s: dynamics.run_discrete(step, s, batch_fn, E=obj.E, F=obj.F, rule=rule, max_steps=30,
                                                      tol=1e-12, key=key))(init(A0, B0))
        batch_at = jax.jit(lambda t: batch_fn(key, t))
        ref, t, status, e_up, f_up = _python_loop(jax.jit(step), init(A0, B0), batch_at, E=obj.E, F=obj.F, rule=rule,
                                                  max_steps=30, tol=1e-12)
        assert (int(res.steps), dynamics.STATUS[int(res.status)]) == (t, status) == (30, "budget")
        assert (bool(res.E_increased), bool(res.F_increased)) == (e_up, f_up)
        np.testing.assert_allclose(res.state.theta, ref.theta, rtol=1e-12)
        _, snaps = jax.jit(lambda s: dynamics.trajectory(step, s, batch_fn, num_steps=30, every=10, E=obj.E, F=obj.F,
                                                         rule=rule, key=key))(init(A0, B0))
        s = init(A0, B0)
        for t in range(30):
            s, _ = jax.jit(step)(s, batch_at(t))
            if (t + 1) % 10 == 0:
                i, batch = (t + 1) // 10 - 1, batch_at(t + 1)
                np.testing.assert_allclose(snaps["theta"][i], s.theta, rtol=1e-12)
                np.testing.assert_allclose(snaps["E"][i], obj.E(s.theta, s.psi, batch), rtol=1e-12)
                np.testing.assert_allclose(snaps["F"][i], obj.F(s.theta, s.psi, s.teacher.xi, batch), rtol=1e-12)
        with pytest.raises(ValueError, match="needs key="):
            dynamics.run_discrete(step, s, batch_fn, E=obj.E, max_steps=2, tol=1e-9)


# The small, quickly converging study of test_montecarlo: every trial ends well within the budget.
CFG = mc.Config(n=2, eta=0.1, init_scale=0.5, max_steps=6000, lam_range=(0.05, 0.1))


@pytest.mark.parametrize("rule", [rules.sg(), rules.ema(0.9)])
def test_driver_agrees_with_the_accelerated_monte_carlo_engines(rule):
    trials = jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(6), i, CFG))(jnp.arange(200))
    with jax.enable_x64(True):
        def one(t):  # the driver through the public linear API, vmapped over trials
            mom = model.make_moments(t.rho, t.tau, t.tau**2 / t.rho)
            return simulation.run(rule, t.a0[:, None], t.B0, mom, t.lam, eta=CFG.eta, max_steps=CFG.max_steps,
                                  tol=CFG.tol, max_norm=CFG.max_norm)

        driver = jax.jit(jax.vmap(one))(jax.tree_util.tree_map(jnp.asarray, trials))
    autodiff = mc.run_points(trials, rule, CFG, engine="rules")  # the driver's masked loop per trial
    np.testing.assert_array_equal(np.asarray(driver.steps), autodiff["steps"])
    np.testing.assert_allclose(np.linalg.norm(np.asarray(driver.state.theta)[:, :, 0], axis=1), autodiff["final_norm"],
                               rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(driver.E_increased), autodiff["e_increased"])
    for engine in ("fast", "kernel"):
        closed = mc.run_points(trials, rule, CFG, engine=engine)
        assert (closed["outcome"] == autodiff["outcome"]).mean() >= 0.99, engine
        assert np.mean(np.abs(closed["steps"] - autodiff["steps"]) <= 2) >= 0.99, engine
    counts = np.bincount(autodiff["outcome"], minlength=len(mc.OUTCOMES))
    assert counts[mc.OUTER] > 30 and counts[mc.ORIGIN] > 15  # both basins exercised

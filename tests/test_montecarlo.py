"""The m = 1 Monte Carlo study: engine equivalence, classification, determinism across devices,
an independent NumPy re-simulation, and input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dualjax import dynamics, rules
from dualjax.linear import model, spheres
from dualjax.linear import montecarlo as mc

# A small, quickly converging configuration for the driver tests, and its rules (EMA α = 0.9).
SMALL = mc.Config(n=2, eta=0.1, init_scale=0.5, max_steps=6000, lam_range=(0.05, 0.1))


def rule_of(name, alpha=0.9):
    """The rule called ``name`` (the EMA with momentum ``alpha``)."""
    return rules.resolve(name, momentum=alpha)


@pytest.mark.parametrize("rule", ["sg", "ema"])
@pytest.mark.parametrize("n", [2, 3])
def test_fast_step_equals_rules_autodiff_step(rule, n):
    """The closed-form m = 1 step is the rules' autodiff step (rules.make_step + optax.sgd)."""
    cfg = mc.Config(n=n, eta=0.07)
    rule = rule_of(rule, 0.8)
    trial = mc.sample_trial(jax.random.PRNGKey(3), 5, cfg)
    fast, slow = mc.fast_engine(rule, cfg), mc.rules_engine(rule, cfg)
    dyn_f, dyn_s = fast.init(trial), slow.init(trial)
    for _ in range(5):
        (E_f, F_f, sq_f), (E_s, F_s, sq_s) = fast.measure(trial, dyn_f), slow.measure(trial, dyn_s)
        np.testing.assert_allclose([E_f, sq_f], [E_s, sq_s], rtol=1e-12, atol=1e-15)
        if rule.carries_teacher:
            np.testing.assert_allclose(F_f, F_s, rtol=1e-12, atol=1e-15)
        else:  # SG carries no F: F(θ, ψ, ξ = θ) is E
            assert F_f is None and F_s is None
        dyn_f, inc_f = fast.step(trial, dyn_f)
        dyn_s, inc_s = slow.step(trial, dyn_s)
        for x, y in zip(fast.final(dyn_f), slow.final(dyn_s)):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(inc_f, inc_s, rtol=1e-12, atol=1e-15)
    # and the rules' step is the foundation's make_step itself
    obj = model.objective(trial.lam)
    init, step = rules.make_step(obj.F, rule, optax.sgd(cfg.eta))
    s = init(trial.a0[:, None], trial.B0)
    for _ in range(5):
        s, _ = step(s, mc.trial_moments(trial))
    np.testing.assert_allclose(s.theta[:, 0], fast.final(dyn_f)[0], rtol=0, atol=1e-12)


HAND_CFG = mc.Config(n=2, max_steps=20_000)


def _hand_picked():
    # ρ = 0.5, τ = 0.6, λ = 0.1: Δ = 0.16, r₁ = 0.2, r₂ = 1.0 (Prop 4.11).
    rho, tau, lam = 0.5, 0.6, 0.1
    e1 = np.array([1.0, 0.0])
    a_in = 0.2 * e1
    cases = {
        # near S₂, predictor near its equilibrium value
        "outer": (rho, tau, lam, [0.8, 0.3], 0.7 * np.outer(e1, e1)),
        # exactly on the saddle sphere S₁ with B = sign(τ) a aᵀ / r₁: an equilibrium, so it stops there
        "inner": (rho, tau, lam, a_in, np.sign(tau) * np.outer(a_in, a_in) / 0.2),
        # Δ = 0.09 − 0.4 < 0: the origin is the only equilibrium
        "origin": (2.0, 0.3, 0.05, [0.5, -0.2], 0.3 * np.eye(2)),
        # Δ < 0 and λ = 0.01: the collapse contracts by (1 − ηλ) per step, too slow for 20,000 steps
        "not_converged": (2.0, 0.1, 0.01, [0.5, 0.5], 0.1 * np.eye(2)),
        # a huge start: the step overshoots and the norm explodes
        "diverged": (3.0, 1.0, 0.05, [10.0, 10.0], 10 * np.eye(2)),
    }
    cols = list(zip(*cases.values()))
    batch = mc.Trial(jnp.arange(len(cases), dtype=jnp.int32), *(jnp.asarray(np.array(c, np.float64)) for c in cols))
    return list(cases), batch, (0.2, 1.0)


@pytest.mark.parametrize("engine", ["kernel", "fast", "rules"])
@pytest.mark.parametrize("rule", ["sg", "ema"])
def test_classification_one_instance_per_outcome(rule, engine):
    names, batch, (r1, r2) = _hand_picked()
    cfg = HAND_CFG
    # the radii used above are Prop 4.11's closed form
    np.testing.assert_allclose(spheres.radii(0.5, 0.6, 0.1), (r1, r2), rtol=1e-14)
    teacher = rule_of(rule, 0.99)
    res = mc.run_points(batch, teacher, cfg, engine=engine)
    assert [mc.OUTCOMES[int(o)] for o in res["outcome"]] == names

    # the same verdicts from the foundation's own loop (dynamics.run_discrete)
    def reference(trial):
        obj = model.objective(trial.lam)
        init, step = rules.make_step(obj.F, teacher, optax.sgd(cfg.eta))
        return dynamics.run_discrete(step, init(trial.a0[:, None], trial.B0), mc.trial_moments(trial), E=obj.E,
                                     max_steps=cfg.max_steps, tol=cfg.tol, max_norm=cfg.max_norm)

    ref = jax.jit(jax.vmap(reference))(batch)
    status = [dynamics.STATUS[int(s)] for s in ref.status]
    assert status == ["converged"] * 3 + ["budget", "diverged"]
    np.testing.assert_array_equal(ref.steps, res["steps"])
    norms = np.linalg.norm(np.asarray(ref.state.theta)[:3, :, 0], axis=1)
    np.testing.assert_allclose(norms, [r2, r1, 0.0], atol=1e-4)
    np.testing.assert_allclose(res["final_norm"][:3], norms, rtol=1e-9, atol=1e-12)


def test_run_trial_is_a_pure_vmappable_function():
    key = jax.random.PRNGKey(7)
    idx = jnp.arange(16)
    cols = jax.jit(jax.vmap(lambda i: mc.run_trial(key, i, rules.sg(), SMALL)))(idx)
    pool = mc.run_trials(key, 16, rules.sg(), SMALL, chunk=8, block=64)
    for name in ("outcome", "steps", "rho", "e_increased"):
        np.testing.assert_array_equal(np.asarray(cols[name]), pool[name])
    # a different XLA program (one step per loop iteration): equal up to rounding
    np.testing.assert_allclose(np.asarray(cols["final_norm"]), pool["final_norm"], rtol=1e-12, atol=1e-15)


def _csv_bytes(path, results):
    mc.write_trials_csv(path, results)
    return path.read_bytes()


def test_fixed_seed_results_identical_on_1_and_8_devices(tmp_path):
    """The XLA pool sharded over 8 devices gives the same columns and a byte-identical trials.csv
    (the kernel's host pool is checked in test_montecarlo_kernel)."""
    assert len(jax.devices()) >= 8
    key = jax.random.PRNGKey(11)
    runs = {}
    for rule in ("sg", "ema"):
        one = mc.run_trials(key, 96, rule_of(rule), SMALL, engine="fast", devices=1, chunk=32, block=128)
        eight = mc.run_trials(key, 96, rule_of(rule), SMALL, engine="fast", devices=8, chunk=8, block=128)
        for name in one:
            np.testing.assert_array_equal(one[name], eight[name], err_msg=f"{rule}:{name}")
        s1, s8 = mc.summarize(one), mc.summarize(eight)
        assert s1["fractions"] == s8["fractions"]
        runs[rule] = one, eight
    csv1 = _csv_bytes(tmp_path / "one.csv", {rule: one for rule, (one, _) in runs.items()})
    csv8 = _csv_bytes(tmp_path / "eight.csv", {rule: eight for rule, (_, eight) in runs.items()})
    assert csv1 == csv8 and csv1.count(b"\n") == 1 + 2 * 96


def _numpy_simulation(rho, tau, lam, a0, B0, rule, cfg, alpha=0.9):
    """Independent vectorized NumPy SG / EMA (MATH.md §1), same stopping and classification rules."""
    a, B = a0.copy(), B0.copy()
    c = a.copy()
    T = a.shape[0]
    steps = np.zeros(T, np.int64)
    inc2 = np.full(T, np.inf)
    bad = np.zeros(T, bool)
    rho_, tau_, lam_ = rho[:, None], tau[:, None], lam[:, None]
    for _ in range(cfg.max_steps):
        act = (inc2 >= cfg.tol**2) & ~bad
        if not act.any():
            break
        teacher = c if rule == "ema" else a
        u = np.einsum("tij,tj->ti", B, a)
        r = rho_ * u - tau_ * teacher
        da = cfg.eta * (np.einsum("tij,ti->tj", B, r) + lam_ * a)
        dB = cfg.eta * (r[:, :, None] * a[:, None, :] + lam_[:, :, None] * B)
        a_new, B_new = a - da, B - dB
        if rule == "ema":
            c_new = alpha * c + (1 - alpha) * a_new
            new_inc2 = (da**2).sum(1) + (dB**2).sum((1, 2)) + ((c_new - c) ** 2).sum(1)
        else:
            c_new = a_new
            new_inc2 = 2 * (da**2).sum(1) + (dB**2).sum((1, 2))
        sq = (a_new**2).sum(1) + (B_new**2).sum((1, 2))
        a = np.where(act[:, None], a_new, a)
        B = np.where(act[:, None, None], B_new, B)
        c = np.where(act[:, None], c_new, c)
        inc2 = np.where(act, new_inc2, inc2)
        bad = bad | (act & (~np.isfinite(sq) | (sq > cfg.max_norm**2)))
        steps += act
    norm = np.linalg.norm(a, axis=1)
    delta = tau**2 - 4 * rho * lam
    root = np.sqrt(np.maximum(delta, 0))
    r1, r2 = (np.abs(tau) - root) / (2 * rho), (np.abs(tau) + root) / (2 * rho)
    out = np.full(T, "not_converged", object)
    conv = (inc2 < cfg.tol**2) & ~bad
    out[conv & (norm < cfg.origin_tol)] = "origin"
    out[conv & (delta >= 0) & (np.abs(norm - r1) <= cfg.rtol * (1 + r1))] = "inner"
    out[conv & (delta >= 0) & (np.abs(norm - r2) <= cfg.rtol * (1 + r2))] = "outer"
    out[bad] = "diverged"
    return out, steps


@pytest.mark.parametrize("engine", ["kernel", "fast"])
@pytest.mark.parametrize("rule", ["sg", "ema"])
def test_fractions_match_independent_numpy_simulation(rule, engine):
    trials = 200
    key = jax.random.PRNGKey(5)
    ours = mc.run_trials(key, trials, rule_of(rule), SMALL, engine=engine, chunk=64)
    sampled = jax.jit(jax.vmap(lambda i: mc.sample_trial(key, i, SMALL)))(jnp.arange(trials))
    rho, tau, lam, a0, B0 = (np.asarray(x) for x in sampled[1:])
    np.testing.assert_array_equal(rho, ours["rho"])
    outcome, steps = _numpy_simulation(rho, tau, lam, a0, B0, rule, SMALL)
    ours_names = np.asarray(mc.OUTCOMES, object)[ours["outcome"]]
    assert (outcome == ours_names).mean() >= 0.99
    assert np.abs(steps - ours["steps"]).max() <= 2
    for name in mc.OUTCOMES:
        assert abs((outcome == name).mean() - (ours_names == name).mean()) <= 1 / trials + 1e-12
    assert (ours_names == "outer").sum() > 20 and (ours_names == "origin").sum() > 20  # both outcomes exercised


def test_delta_nonneg_probability_closed_form():
    # P(Δ ≥ 0) = E_{τ,λ}[min(1, τ²/(12λ))] (ρ ~ U[0,3]); midpoint rule in (τ, λ), τ ↦ |τ| by symmetry.
    k = 2000
    t = (np.arange(k) + 0.5) / k
    lam = 0.01 + 0.09 * (np.arange(k) + 0.5) / k
    p = np.minimum(1.0, t[:, None] ** 2 / (12 * lam[None, :])).mean()
    assert abs(p - mc.P_DELTA_NONNEG) < 1e-6
    assert abs(mc.P_DELTA_NONNEG - 0.47667) < 5e-6


def test_wilson_interval_endpoints_solve_the_score_equation():
    z = 1.959963984540054
    for k, n in [(0, 10), (8, 10), (4810, 10000), (3, 7)]:
        lo, hi = mc.wilson(k, n)
        assert 0 <= lo <= k / n <= hi <= 1
        for p in (lo, hi):
            if 0 < p < 1:  # (p̂ − p)² = z² p(1 − p)/n at both ends
                assert abs((k / n - p) ** 2 - z**2 * p * (1 - p) / n) < 1e-12
    np.testing.assert_allclose(mc.wilson(0, 10), (0.0, 0.27753279986288), atol=1e-10)


def test_summary_fractions_and_conditioning():
    cols = {"outcome": np.array([0, 0, 1, 1, 1, 3]), "delta": np.array([1.0, 0.5, 0.1, -1, -2, 0.2]),
            "steps": np.array([10, 20, 30, 40, 50, 60]), "e_increased": np.array([1, 1, 0, 0, 0, 1], bool),
            "f_increased": np.zeros(6, bool)}
    s = mc.summarize(cols)
    assert s["fractions"]["outer"]["fraction"] == pytest.approx(2 / 6)
    assert s["fractions_given_delta_nonneg"]["outer"]["fraction"] == pytest.approx(2 / 4)
    assert s["fractions_given_delta_nonneg"]["origin"]["count"] == 1
    assert s["delta_nonneg"]["fraction"] == pytest.approx(4 / 6)
    assert s["e_increased"]["count"] == 3


def test_rho_is_never_zero_and_samples_lie_in_range():
    cfg = mc.Config(rho_range=(0.0, 1e-300))  # the lower end 0 is allowed; ρ is drawn from (0, 1e-300]
    trial = jax.jit(jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(0), i, cfg)))(jnp.arange(256))
    assert np.all(np.asarray(trial.rho) > 0)
    t2 = jax.jit(jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(0), i, mc.Config())))(jnp.arange(4096))
    assert 0 < float(t2.rho.min()) and float(t2.rho.max()) <= 3
    assert -1 <= float(t2.tau.min()) and float(t2.tau.max()) < 1
    assert 0.01 <= float(t2.lam.min()) and float(t2.lam.max()) < 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cfg": mc.Config(rho_range=(-1.0, 3.0))}, "rho_range"),
        ({"cfg": mc.Config(rho_range=(-2.0, 0.0))}, "rho_range"),
        ({"cfg": mc.Config(lam_range=(0.0, 0.1))}, "lam_range"),
        ({"cfg": mc.Config(lam_range=(-0.1, 0.1))}, "lam_range"),
        ({"cfg": mc.Config(tau_range=(1.0, -1.0))}, "tau_range"),
        ({"rules_": [rules.ema(0.9), rules.ema(0.99)]}, "distinct names"),
        ({"cfg": mc.Config(eta=0.0)}, "eta"),
        ({"cfg": mc.Config(n=1)}, "n"),
        ({"trials": 0}, "trials"),
        ({"trials": -5}, "trials"),
        ({"rules_": ["sgd"]}, "rule must be a dualjax.rules.TeacherRule, got 'sgd'"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    args = {"trials": 10, "rules_": [rules.sg()], "cfg": SMALL, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        mc.study(args["trials"], args["rules_"], args["cfg"], seed=args["seed"])


def test_e_increase_is_recorded_along_trajectories():
    """MATH.md §7: a run that ends on S₂ with E(end) > E(θ₀) must have raised E somewhere."""
    cfg = SMALL
    key = jax.random.PRNGKey(2)
    out = mc.run_trials(key, 200, rules.sg(), cfg, chunk=64)
    checked = 0
    for i in np.flatnonzero(out["outcome"] == mc.OUTER):
        t = mc.sample_trial(key, int(i), cfg)
        mom = mc.trial_moments(t)
        E0 = float(model.F(t.a0[:, None], t.B0, t.a0[:, None], mom, t.lam))
        r2 = float(out["r2"][i])
        a = jnp.zeros((cfg.n, 1)).at[0, 0].set(r2)
        E_end = float(model.F(a, spheres.predictor_on_sphere(a[:, 0], t.tau, r2), a, mom, t.lam))
        if E_end > E0 * (1 + 1e-6):
            assert out["e_increased"][i] and out["max_E_rise"][i] > 0
            checked += 1
    assert checked >= 5
    collapsed = (out["outcome"] == mc.ORIGIN) & (out["delta"] < 0)
    assert collapsed.sum() > 5

"""The Monte Carlo over general m (issue 16): the m = 1 study reproduced, the batched equilibria against
the single-instance solvers, a hand-built m = 2 instance whose basins are known, the end points
against Prop 4.5, plain collapse, the Jacobian check against dualjax.linear.stability, the files."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dualjax import cli, rules
from dualjax.claims import prop4_10_dynamic
from dualjax.linear import equilibria, model, stability
from dualjax.linear import montecarlo as mc
from dualjax.linear.equilibria import batched
from dualjax.linear.montecarlo import endpoints, general, general_figures

# One m = 2 configuration and one set of rule objects for every test here (and the CLI's defaults
# at --m 2 --n 3), so the pools and checks compile once.
CFG2 = mc.GeneralConfig(m=2, n=3)
SG, EMA = rules.sg(), rules.ema(0.99)


def _mapped_to_m1(cols):
    """The general study's outcomes in the m = 1 study's names: full rank on the Loewner max is 'outer'."""
    names = np.asarray(mc.GENERAL_OUTCOMES)[cols["outcome"]]
    return np.where(names == "full_rank", np.where(cols["loewner_max"], "outer", "inner"), names)


def test_m1_is_the_paper_study_trial_by_trial():
    """At m = 1 the default ensemble draws the m = 1 study's trials, and the outcomes and step counts
    are the same, SG and EMA (outer ↔ full rank on the Loewner-maximal component)."""
    cfg1 = mc.Config(n=2, eta=0.1, max_steps=20_000)
    cfg = mc.GeneralConfig(m=1, n=2, eta=0.1, max_steps=20_000)
    key = jax.random.PRNGKey(3)
    t, inst = mc.sample_trial(key, 7, cfg1), mc.sample_instance(key, 7, cfg, mc.SAMPLERS["paper"])
    for a, b in ((t.rho, inst.rho[0, 0]), (t.tau, inst.tau[0, 0]), (t.lam, inst.lam), (t.a0, inst.A0[:, 0]),
                 (t.B0, inst.B0)):
        np.testing.assert_array_equal(a, b)
    pair = [rules.sg(), rules.ema(0.9)]
    old = mc.study(64, pair, cfg1, seed=3, engine="rules")
    new = mc.general_study(64, pair, cfg, seed=3, components=0)
    for name in ("rho", "tau", "lam"):  # every trial's data (the starts: trial 7 above, and the step counts below)
        np.testing.assert_array_equal(new.columns["sg"][name].reshape(64), old["sg"][name])
    for rule in ("sg", "ema"):
        expected = np.asarray(mc.OUTCOMES)[old[rule]["outcome"]]
        np.testing.assert_array_equal(_mapped_to_m1(new.columns[rule]), expected)
        np.testing.assert_array_equal(new.columns[rule]["steps"], old[rule]["steps"])
        assert {"outer", "origin"} <= set(expected)
        # every converged end point is a stable equilibrium of the map the trial ran
        at_eq = new.columns[rule]["outcome"] <= endpoints.ORIGIN
        assert np.all(new.columns[rule]["jacobian"][at_eq] == 0)


def _trace(eng, trial, steps=3):
    """E, F, ‖(A, B)‖² before each step, the increments, (A, B, C) and the flattened StepState after each
    step (eager: jitting the unrolled scalar steps compiles for longer than they run)."""
    dyn, out = eng.init(trial), []
    for t in range(1, steps + 1):
        measured = eng.measure(trial, dyn)
        dyn, inc = eng.step(trial, dyn)
        A, B, C = (x.reshape(x.shape[0], -1) for x in eng.final(dyn))  # m = 1's a, c as columns
        state = endpoints.flatten_state(eng.state(dyn, jnp.int32(t))) if eng.state else None
        out.append((measured, inc, (A, B, C), state))
    return out


@pytest.mark.parametrize("m", [1, 2, 3])
def test_fast_engine_step_is_the_rules_step(m):
    """The closed form (∇_A F = BᵀR + λA, ∇_B F = RAᵀ + λB, R = BAρ − Cτ) equals the autodiff step of
    rules.make_step to 1e-12 in float64, SG and EMA: E, F, ‖(A, B)‖², the increment, (A, B, C) and the
    StepState the end-point check steps; at m = 1 it is the m = 1 study's fast engine on the same trial."""
    cfg = mc.GeneralConfig(m=m, n=m + 2, eta=0.07)
    rng = np.random.default_rng(m)  # a generic instance, drawn without JAX (no sampler to compile)
    G = rng.standard_normal((m, m))
    rho, tau, lam = G @ G.T + 0.5 * np.eye(m), rng.uniform(-1, 1, (m, m)), 0.05
    sigma = tau @ np.linalg.solve(rho, tau.T)
    A0, B0 = rng.uniform(-1, 1, (cfg.n, m)), rng.uniform(-1, 1, (cfg.n, cfg.n)) / np.sqrt(cfg.n)
    inst = mc.Instance(np.int32(0), rho, tau, np.float64(lam), (sigma + sigma.T) / 2, A0, B0)
    for rule in (SG, rules.ema(0.8)):
        fast = _trace(general.general_engine(rule, cfg, "fast"), inst)
        refs = [_trace(general.general_engine(rule, cfg, "rules"), inst)]
        if m == 1:
            trial = mc.Trial(np.int32(0), *(np.float64(x[0, 0]) for x in (rho, tau)), np.float64(lam), A0[:, 0], B0)
            refs.append(_trace(mc.fast_engine(rule, mc.Config(n=cfg.n, eta=cfg.eta)), trial))
        for ref in refs:
            for (mea, inc, final, state), (mea2, inc2, final2, state2) in zip(fast, ref):
                assert (mea[1] is None) == (mea2[1] is None) == (not rule.carries_teacher)
                np.testing.assert_allclose([x for x in mea if x is not None], [x for x in mea2 if x is not None],
                                           rtol=1e-12, atol=1e-15)
                np.testing.assert_allclose(inc, inc2, rtol=1e-12, atol=1e-15)
                for x, y in zip(final, final2):
                    np.testing.assert_allclose(x, y, rtol=0, atol=1e-12)
                if state2 is not None:
                    np.testing.assert_allclose(state[0], state2[0], rtol=0, atol=1e-12)
                    np.testing.assert_array_equal(state[1], state2[1])


def test_engine_choice():
    """auto: the closed form for SG / EMA up to n = 4, autodiff beyond and for rules without one
    (plain); a bad name, the closed form of plain or too few given instances is a ValueError naming it."""
    assert general.resolve_general_engine("auto", SG, 4) == "fast"
    assert general.resolve_general_engine("auto", EMA, 5) == "rules"
    assert general.resolve_general_engine("auto", rules.plain(), 3) == "rules"
    assert general.resolve_general_engine("fast", SG, 6) == "fast"
    with pytest.raises(ValueError, match="kernel"):
        general.resolve_general_engine("kernel", SG, 3)
    with pytest.raises(ValueError, match="plain"):
        mc.general_study(4, [rules.plain()], CFG2, engine="fast")
    with pytest.raises(ValueError, match="fewer than trials=5"):
        mc.run_rule(None, 5, SG, CFG2, instances=mc.Instance(*(np.zeros(2),) * 7))


def test_batched_enumeration_matches_the_single_instance_solvers():
    """Every PD solution of Prop 4.5 found by the exact (Gröbner) solver, instance by instance, and the
    Loewner maximum is one: S_max − S ⪰ 0 for every other full-rank S; m = 1 is Prop 4.11."""
    moms = [model.random_moments(jax.random.PRNGKey(s), 2, kind="gauss") for s in (0, 5)]  # 0 and 4 PD solutions
    rho, tau = np.stack([np.asarray(x.rho) for x in moms]), np.stack([np.asarray(x.tau) for x in moms])
    lam = np.full(2, 0.05)
    enum = batched.enumerate_batch(rho, tau, lam)
    assert enum.complete.all() and np.all(enum.complex_found == 6)
    with_max = 0
    for k, mom in enumerate(moms):
        ref = equilibria.enumerate_equilibria(mom, 0.05, method="exact", rank_deficient=False)
        ref_pd = sorted(ref.positive_definite, key=lambda e: -np.trace(e.S))
        ours = [enum.S[k, i] for i in range(enum.count[k]) if enum.rank[k, i] == 2]
        assert len(ours) == len(ref_pd)
        for S, e in zip(ours, ref_pd):
            np.testing.assert_allclose(S, e.S, atol=1e-9)
        assert np.all(enum.residual[k, : enum.count[k]] < 1e-10)
        if enum.loewner_max[k] >= 0:
            with_max += 1
            S_max = enum.S[k, enum.loewner_max[k]]
            assert all(np.linalg.eigvalsh(S_max - S).min() > -1e-9 for S in ours)
        assert enum.rank[k, enum.count[k] - 1] == 0  # the origin is always there
    assert with_max >= 1
    e1 = batched.enumerate_batch(np.array([[[0.5]]]), np.array([[[0.6]]]), np.array([0.1]))
    np.testing.assert_allclose(e1.S[0, :2, 0, 0], [1.0, 0.04], rtol=1e-12)  # r₂², r₁² of Prop 4.11
    assert e1.loewner_max[0] == 0


def test_lane_forms_equal_the_solvers_equations_and_lanes_run_to_their_own_end():
    """lanes.py's broadcast forms are system.residual_vec, newton.rank_residual and a linear solve
    (m = 3, real and complex); iterate_lanes runs each lane to its own stopping point."""
    from dualjax.linear.equilibria import lanes
    from dualjax.linear.equilibria.newton import rank_residual

    rng = np.random.default_rng(0)
    G = rng.standard_normal((3, 3))
    rho, tau, lam = G @ G.T + np.eye(3), rng.standard_normal((3, 3)), 0.07
    x, w = rng.standard_normal(6) + 1j * rng.standard_normal(6), rng.standard_normal(6)
    A, b = rng.standard_normal((5, 5)), rng.standard_normal(5)

    @jax.jit  # one compilation instead of one per eager operation
    def forms(x, w, A, b, rho, tau):
        return (lanes.prop45_residual(x, rho, tau, lam, 3), equilibria.residual_vec(x, rho, tau, lam, 3),
                lanes.rank_residual_small(w, rho, tau, lam, 2), rank_residual(w, rho, tau, lam, 2),
                lanes.small_solve(A, b))

    with jax.enable_x64(True):
        ours_ii, ref_ii, ours_w, ref_w, solved = forms(x, w, A, b, rho, tau)
    np.testing.assert_allclose(ours_ii, ref_ii, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_w, ref_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solved, np.linalg.solve(A, b), rtol=1e-10)
    target = np.arange(700) % 37  # lane i stops after target[i] steps; 700 lanes > one chunk

    def lane_step(lane):
        count, goal = lane
        return lanes.freeze(count < goal, count + 1, count), goal

    state, _ = lanes.iterate_lanes(lanes.block_fn(lane_step, 4), (np.zeros(700, np.int32), target),
                                   lambda s: s[0] < s[1], max_rounds=100)
    np.testing.assert_array_equal(state, target)


# Near-decoupled m = 2 data: the m = 1 spheres per direction are r = {0.2, 1} and {0.110, 1.140}, so
# the components are S ≈ diag(s₁, s₂), s₁ ∈ {0, 0.04, 1}, s₂ ∈ {0, 0.012, 1.300}: 4 of full rank, 4 of
# rank 1, the origin; the off-diagonal 0.01 in τ makes the data generic (the homotopy finds all 6 roots).
RHO, TAU, LAM = np.diag([0.5, 0.8]), np.array([[0.6, 0.01], [0.0, 1.0]]), 0.1


def _starts_at(comps, cfg, eps, key):
    """Instances starting at the Cor 4.6 point of each component, plus eps · Gaussian noise."""
    mom = model.moments(RHO, TAU)
    A0, B0 = [], []
    for i, (S, _) in enumerate(comps):
        A, B = equilibria.equilibrium_point(S, mom, LAM, cfg.n)
        ka, kb = jax.random.split(jax.random.fold_in(key, i))
        A0.append(A + eps * np.asarray(jax.random.normal(ka, A.shape)))
        B0.append(B + eps * np.asarray(jax.random.normal(kb, B.shape)))
    K = len(comps)
    sigma = np.asarray(mom.sigma)
    return mc.Instance(np.arange(K, dtype=np.int32), np.tile(RHO, (K, 1, 1)), np.tile(TAU, (K, 1, 1)),
                       np.full(K, LAM), np.tile(sigma, (K, 1, 1)), np.stack(A0), np.stack(B0))


def test_hand_built_m2_instance_starts_near_each_component():
    """Started near a stable component, a trial is classified as that component (full rank with the
    Loewner flag, partial of rank 1, or the origin); started near a saddle it leaves (for a stable one,
    or is still on its way after the budget); started exactly on a saddle it stays, and the Jacobian
    check calls it a saddle."""
    enum = batched.enumerate_batch(RHO[None], TAU[None], np.array([LAM]))
    comps = [(enum.S[0, i], int(enum.rank[0, i])) for i in range(enum.count[0])]
    assert [r for _, r in comps] == [2, 2, 2, 2, 1, 1, 1, 1, 0]
    np.testing.assert_allclose(np.diag(comps[0][0]), [1.0, 1.3005], atol=0.01)  # the "outer, outer" one
    assert enum.loewner_max[0] == 0
    mom = model.moments(RHO, TAU)
    stable = [stability.analyze(S, mom, LAM, CFG2.n).kind == stability.STABLE for S, _ in comps]
    assert stable[0] and stable[-1] and 0 < sum(stable) < len(comps)
    K = len(comps)
    tiled = {"rank": np.tile(enum.rank, (K, 1)), "S": np.tile(enum.S, (K, 1, 1, 1))}
    enum_k = enum._replace(S=tiled["S"], rank=tiled["rank"], count=np.repeat(enum.count, K),
                           residual=np.tile(enum.residual, (K, 1)), loewner_max=np.repeat(enum.loewner_max, K),
                           complex_found=np.repeat(enum.complex_found, K), complete=np.repeat(enum.complete, K))
    for rule in (SG, EMA):
        rule_name = rule.name
        near = endpoints.classify_endpoints(rule, CFG2, mc.run_instances(
            _starts_at(comps, CFG2, 1e-2, jax.random.PRNGKey(1)), rule, CFG2), enum_k)
        on = endpoints.classify_endpoints(rule, CFG2, mc.run_instances(
            _starts_at(comps, CFG2, 0.0, jax.random.PRNGKey(1)), rule, CFG2), enum_k)
        for i, ((S, r), st) in enumerate(zip(comps, stable)):
            if st:
                assert near["component"][i] == i, (rule_name, i, near["component"][i])
                assert near["rank"][i] == r and near["jacobian"][i] == 0
                assert near["outcome"][i] == {2: endpoints.FULL_RANK, 1: endpoints.PARTIAL, 0: endpoints.ORIGIN}[r]
                assert near["loewner_max"][i] == (i == 0)
            else:
                assert near["component"][i] != i
                assert near["jacobian"][i] == 0 or near["outcome"][i] == endpoints.NOT_CONVERGED
                assert on["component"][i] == i and on["jacobian"][i] == 1 and on["n_unstable"][i] >= 1


@pytest.fixture(scope="module")
def study_m2():
    return mc.general_study(40, [SG, EMA, rules.plain()], CFG2, seed=1)


def test_full_rank_end_points_solve_prop45_and_are_enumerated(study_m2):
    """Every trial classified full_rank has S = AᵀA solving Prop 4.5's equation to 1e-6 and matches an
    enumerated component; partial ends have rank r < m; no end point is a saddle."""
    enum = study_m2.enumeration
    seen = set()
    for rule in ("sg", "ema"):
        c = study_m2.columns[rule]
        full = np.flatnonzero(c["outcome"] == endpoints.FULL_RANK)
        assert full.size >= 5
        for i in full:
            S = c["S"][i]
            res = equilibria.full_rank_residual(S, c["rho"][i], c["tau"][i], c["lam"][i])
            assert np.linalg.norm(res) <= 1e-6 * (1 + np.linalg.norm(S)) ** 2
            k = c["component"][i]
            assert k >= 0 and enum.rank[i, k] == 2
            np.testing.assert_allclose(S, enum.S[i, k], atol=1e-4 * (1 + np.linalg.norm(S)))
        partial = c["outcome"] == endpoints.PARTIAL
        assert np.all(c["rank"][partial] == 1)
        at_eq = c["outcome"] <= endpoints.ORIGIN
        assert np.all(c["jacobian"][at_eq] == 0)
        seen |= set(np.asarray(mc.GENERAL_OUTCOMES)[c["outcome"]])
    assert {"full_rank", "origin"} <= seen


def test_plain_always_collapses(study_m2):
    """Lemma 4.3: gradient descent on E ends at the origin in every trial (rank 0, a stable point)."""
    c = study_m2.columns["plain"]
    assert np.all(c["outcome"] == endpoints.ORIGIN) and np.all(c["rank"] == 0)


def test_step_map_jacobian_agrees_with_stability_analyze():
    """The end-point check (the discrete map's Jacobian by central differences, orbit directions dropped)
    gives Prop 4.10's verdict of dualjax.linear.stability at every component, SG and EMA (small η)."""
    mom = model.moments(RHO, TAU)
    enum = batched.enumerate_batch(RHO[None], TAU[None], np.array([LAM]))
    comps = [(enum.S[0, i], int(enum.rank[0, i])) for i in range(enum.count[0])]
    for rule, k in ((SG, None), (EMA, (1 - EMA.ema_alpha) / CFG2.eta)):
        init, _ = rules.make_step(model.objective(LAM).F, rule, optax.sgd(CFG2.eta))
        states = [endpoints.flatten_state(init(*(jnp.asarray(x) for x in equilibria.equilibrium_point(S, mom, LAM, CFG2.n))))
                  for S, _ in comps]
        z, zi = np.stack([np.asarray(s[0]) for s in states]), np.stack([np.asarray(s[1]) for s in states])
        K = len(comps)
        data = {"rho": np.tile(RHO, (K, 1, 1)), "tau": np.tile(TAU, (K, 1, 1)), "lam": np.full(K, LAM),
                "sigma": np.tile(np.asarray(mom.sigma), (K, 1, 1))}
        drop = np.asarray([stability.orbit_dimension(CFG2.n, r) for _, r in comps])
        _, res, cls, n_unstable = endpoints.fixed_points(rule, CFG2, z, zi, data, drop)
        assert np.all(res < 1e-12)
        for (S, _), c in zip(comps, cls):
            ref = stability.analyze(S, mom, LAM, CFG2.n, rule=rule, **({} if k is None else {"k": k}))
            assert endpoints.JACOBIAN[c] == ref.kind


def test_summary_csv_and_figures(study_m2, tmp_path):
    """summary.json: fractions sum to 1, Wilson intervals hold the fraction, per rank; trials.csv: the
    issue's columns, JSON m×m matrices, agreeing with the summary; the figures are written."""
    summ = mc.write_general_study(tmp_path, study_m2)
    assert json.loads((tmp_path / "summary.json").read_text())["rules"].keys() == {"sg", "ema", "plain"}
    for rule, s in summ["rules"].items():
        fr = s["fractions"]
        assert abs(sum(fr[k]["fraction"] for k in mc.GENERAL_OUTCOMES) - 1) < 1e-12
        assert abs(fr["full_rank_loewner_max"]["fraction"] + fr["full_rank_other"]["fraction"]
                   + fr["full_rank_unmatched"]["fraction"] - fr["full_rank"]["fraction"]) < 1e-12
        for v in list(fr.values()) + list(s["by_rank"].values()):
            assert v["ci95"][0] <= v["fraction"] <= v["ci95"][1]
    with open(tmp_path / "trials.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 40
    required = {"rule", "trial", "m", "n", "lam", "rho", "tau", "outcome", "rank", "S", "loewner_max", "steps",
                "final_residual"}
    assert required <= set(rows[0])
    assert np.asarray(json.loads(rows[0]["S"])).shape == (2, 2) and np.asarray(json.loads(rows[0]["tau"])).shape == (2, 2)
    n_partial = sum(r["rule"] == "sg" and r["outcome"] == "partial" for r in rows)
    assert n_partial == summ["rules"]["sg"]["fractions"]["partial"]["count"]
    assert set(summ["figures"]) == {"outcomes", "endpoints"}
    assert all((tmp_path / f"{k}.png").stat().st_size > 0 for k in summ["figures"])
    vs_m = general_figures.plot_fractions_vs_m({2: summ, 3: summ}, tmp_path / "vs_m.png")
    assert (tmp_path / "vs_m.png").exists() and vs_m.endswith("vs_m.png")


def test_cli_general_study_and_bad_input(tmp_path, capsys):
    args = ["montecarlo", "--m", "2", "--n", "3", "--trials", "12", "--rules", "sg", "--seed", "2", "--no-figures"]
    assert cli.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert '"full_rank_loewner_max"' in capsys.readouterr().out
    with open(tmp_path / "a" / "trials.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 12
    assert cli.main(["montecarlo", "--m", "2", "--n", "2", "--trials", "4", "--out", str(tmp_path / "b")]) == 2
    assert "n must exceed m" in capsys.readouterr().err
    assert cli.main(["montecarlo", "--m", "2", "--rules", "sg,foo", "--trials", "4", "--out", str(tmp_path / "c")]) == 2
    assert "foo" in capsys.readouterr().err


def test_samplers_and_rules_as_objects():
    """Every ensemble gives ρ ≻ 0 and square τ (``paper`` is checked by every study: enumerate_batch
    refuses ρ not positive definite), a user sampler is called with the trial's keys; rule names must
    be distinct (a renamed rule object is fine)."""
    key = jax.random.PRNGKey(0)
    draw = jax.jit(jax.vmap(lambda k: [mc.SAMPLERS[name](*jax.random.split(k, 3), 2, CFG2)
                                       for name in ("wishart", "aug")]))
    for rho, tau, lam in draw(jax.random.split(key, 20)):  # one compile for both samplers
        assert np.linalg.eigvalsh(np.asarray(rho)).min() > 0 and tau.shape == (20, 2, 2) and lam.shape == (20,)

    def fixed(k_rho, k_tau, k_lam, m, cfg):
        return jnp.eye(m), 0.9 * jnp.eye(m), jax.random.uniform(k_lam, (), minval=0.01, maxval=0.1)

    inst = mc.sample_instances(key, np.arange(4), CFG2, fixed)
    np.testing.assert_allclose(inst.tau, np.tile(0.9 * np.eye(2), (4, 1, 1)))
    assert len(set(np.asarray(inst.lam).tolist())) == 4 and inst.A0.shape == (4, 3, 2)
    assert [r.name for r in mc.resolve_rules([SG, rules.ema(0.9)._replace(name="ema90")])] == ["sg", "ema90"]
    assert [r.name for r in mc.resolve_rules(None)] == ["sg", "ema"]
    with pytest.raises(ValueError, match="distinct"):
        mc.resolve_rules([SG, rules.sg()])
    with pytest.raises(ValueError, match="TeacherRule"):
        mc.resolve_rules(["sg"])
    with pytest.raises(ValueError, match="ensemble"):
        mc.check_general_config(mc.GeneralConfig(ensemble="nope"))


def test_claim_row_verdict():
    """The report row judges the summary's 'saddles only for m = 1' from what the dynamics reached."""
    base = {"m": 2, "trials": 100, "full_rank_loewner_max": 0.4, "full_rank_other": 0.0, "partial": 0.3,
            "origin": 0.3, "ended_at_saddle": 0, "saddle_components": 50, "instances_with_saddle_pd": 30}
    row = prop4_10_dynamic.row({"results": [dict(base, rule="sg"), dict(base, rule="ema")], "seconds": 1.0})
    assert row.verdict == "partly"
    bad = dict(base, full_rank_other=0.05, ended_at_saddle=5)
    assert prop4_10_dynamic.row({"results": [dict(bad, rule="sg")], "seconds": 1.0}).verdict == "not reproduced"

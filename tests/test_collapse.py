"""The collapse monitor: effective rank against its closed form, invariances, the linear model's
rank at rank-r equilibria (Prop 4.5), ``dualjax diagnose`` on features and on runs, bad input."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from dualjax import checks, collapse, diagnosis, rules
from dualjax.cli import main


def _orthonormal(rng, n, k):
    return np.linalg.qr(rng.standard_normal((n, k)))[0]


def _features(rng, sigma, n=500, d=64):
    """N × D features with singular values exactly ``sigma``: U diag(σ) Vᵀ."""
    k = len(sigma)
    return _orthonormal(rng, n, k) @ np.diag(sigma) @ _orthonormal(rng, d, k).T


@checks.float64
def test_effective_rank_equals_closed_form_and_is_rotation_invariant():
    rng = np.random.default_rng(0)
    for sigma in ([1.0] * 5, [3.0, 2.0, 1.0], 0.7 ** np.arange(20), [5.0, 1e-3, 1e-3]):
        sigma = np.asarray(sigma, float)
        p = sigma / sigma.sum()
        closed = np.exp(-np.sum(p * np.log(p)))  # RankMe on the known spectrum
        Z = _features(rng, sigma)
        got = float(collapse.effective_rank(jnp.asarray(Z)))
        # the Gram path resolves σ to √ε σ₁: the 64 − k zero singular values add ~1e-6
        np.testing.assert_allclose(got, closed, rtol=1e-5)
        Q, P = _orthonormal(rng, 64, 64), _orthonormal(rng, 500, 500)  # feature space and sample space
        np.testing.assert_allclose(float(collapse.effective_rank(jnp.asarray(Z @ Q))), closed, rtol=1e-5)
        np.testing.assert_allclose(float(collapse.effective_rank(jnp.asarray(P @ Z))), closed, rtol=1e-5)
        assert int(collapse.numerical_rank(jnp.asarray(Z), atol=0.0)) == len(sigma)
    np.testing.assert_allclose(float(collapse.spectrum_rank(jnp.full(7, 2.0))), 7.0, rtol=1e-12)
    np.testing.assert_allclose(float(collapse.spectrum_rank(jnp.array([2.0, 2.0, 0.0]))), 2.0, rtol=1e-12)
    assert float(collapse.effective_rank(jnp.zeros((10, 4)))) == 0.0
    assert int(collapse.numerical_rank(jnp.zeros((10, 4)))) == 0
    # tokens (B, K, D) are rows like samples
    Z = _features(rng, [1.0, 2.0, 3.0], n=40, d=8)
    np.testing.assert_allclose(float(collapse.effective_rank(jnp.asarray(Z.reshape(4, 10, 8)))),
                               float(collapse.effective_rank(jnp.asarray(Z))), rtol=1e-12)


def test_float32_spectrum_of_collapsed_features_is_accurate():
    """The Gram path used inside the train step, in float32, against a float64 SVD."""
    rng = np.random.default_rng(1)
    c = rng.standard_normal(96)
    for noise in (0.5, 0.01, 0.003):
        Z = c + noise * rng.standard_normal((1024, 96)) * np.linspace(0.01, 1, 96)
        s = np.linalg.svd(Z, compute_uv=False)
        p = s / s.sum()
        exact = np.exp(-np.sum(p * np.log(p)))
        got = float(jax.jit(collapse.effective_rank)(jnp.asarray(Z, jnp.float32)))
        np.testing.assert_allclose(got, exact, rtol=1e-2)


@checks.float64
def test_covariance_token_std_and_cosine_match_numpy():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 7, 5)) * np.arange(1, 6)
    w = np.linalg.eigvalsh(np.cov(z.reshape(-1, 5).T, bias=True))[::-1]
    np.testing.assert_allclose(np.asarray(collapse.covariance_top(jnp.asarray(z), 4)), w[:4], rtol=1e-10)
    pstd = np.mean([np.sqrt(z[b].var(axis=0) + 1e-4) for b in range(3)])  # the reference: per clip, over tokens
    np.testing.assert_allclose(float(collapse.token_std(jnp.asarray(z))), pstd, rtol=1e-12)
    y = rng.standard_normal((3, 7, 5))
    cos = np.mean(np.sum(z * y, -1) / (np.linalg.norm(z, axis=-1) * np.linalg.norm(y, axis=-1)))
    np.testing.assert_allclose(float(collapse.mean_cosine(jnp.asarray(z), jnp.asarray(y))), cos, rtol=1e-12)
    # two rows: the covariance has rank 1, the rest is zero-padded
    top = np.asarray(collapse.covariance_top(jnp.asarray(z[0, :2]), 4))
    np.testing.assert_allclose(top[0], np.sum((z[0, 0] - z[0, 1]) ** 2) / 4, rtol=1e-10)
    np.testing.assert_allclose(top[1:], 0, atol=1e-12)


def test_rule_flags_rank_fraction_and_std_floor():
    rule = collapse.Rule(rank_fraction=0.2, std_floor=0.1)
    records = [{"step": 0, "rank_teacher": 50.0, "std_target": 0.5}]
    ref = collapse.reference(records)
    assert ref == 50.0 and collapse.check(records[0], ref, rule) == []
    assert collapse.check({"rank_teacher": 10.5, "std_target": 0.5}, ref, rule) == []
    assert len(collapse.check({"rank_teacher": 9.9, "std_target": 0.5}, ref, rule)) == 1
    assert len(collapse.check({"rank_teacher": 9.9, "std_target": 0.09}, ref, rule)) == 2
    assert collapse.reference([{"step": 0, "F": 1.0}]) is None  # a run logged without the monitor


# ---------------------------------------------------------------------------- the linear model

@checks.float64
def test_linear_trials_ending_on_a_rank_r_equilibrium_report_rank_r():
    """Prop 4.5 (rank S = r): SG / EMA started near a rank-1 equilibrium of an m = 2 instance (in its
    invariant set {A = U W}) end on it with rank 1; from a generic start they end at full rank 2;
    plain gradient descent ends at the origin, rank 0 (Lemma 4.3)."""
    from dualjax.linear import equilibria as eq
    from dualjax.linear import model
    from dualjax.linear.simulation import simulate

    rho, tau, lam, n = np.array([[1.0, 0.2], [0.2, 0.8]]), np.array([[0.9, 0.1], [-0.05, 0.7]]), 0.05, 4
    mom = model.moments(rho, tau)
    S1 = eq.rank_deficient_solutions(rho, tau, lam, 1, starts=16)[0]  # the largest-trace rank-1 solution
    assert eq.numerical_rank(S1) == 1
    A, B = eq.equilibrium_point(S1, mom, lam, n)  # U = first unit vector: the other rows stay exactly 0
    dA, dB = np.zeros_like(A), np.zeros_like(B)
    dA[0], dB[0, 0] = [0.05, -0.03], 0.05
    for rule in (rules.sg(), rules.ema()):
        run = simulate(rule, A + dA, B + dB, mom, lam, eta=0.05, max_steps=100_000, tol=1e-12)
        assert run.converged
        assert int(collapse.numerical_rank(jnp.asarray(run.A))) == 1
        np.testing.assert_allclose(run.A.T @ run.A, S1, atol=1e-8)  # the same rank-1 equilibrium
    A0, B0 = model.init_params(jax.random.PRNGKey(0), n, 2, scale=0.5)
    full = simulate(rules.sg(), A0, B0, mom, lam, eta=0.05, max_steps=100_000, tol=1e-12)
    assert full.converged and int(collapse.numerical_rank(jnp.asarray(full.A))) == 2
    assert np.linalg.norm(eq.equilibrium_residual(full.A.T @ full.A, rho, tau, lam)) < 1e-8
    plain = simulate(rules.plain(), A0, B0, mom, lam, eta=0.05, max_steps=100_000, tol=1e-12)
    assert int(collapse.numerical_rank(jnp.asarray(plain.A))) == 0
    assert float(collapse.effective_rank(jnp.asarray(plain.A))) < 1.5  # rank-0 up to rounding


# ---------------------------------------------------------------------------- dualjax diagnose

def test_diagnose_features_reports_rank_3_in_64_dimensions(tmp_path, capsys):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((400, 3)) @ _orthonormal(rng, 64, 3).T  # rank 3, roughly equal spectrum
    z = (z + 1e-7 * rng.standard_normal(z.shape)).astype(np.float32)  # float32 noise, as dumped features
    np.save(tmp_path / "a.npy", z)
    labels = (z[:, 0] > 0).astype(int)
    np.savez(tmp_path / "b.npz", features=z[:, :] * 0 + z[0], labels=labels)  # later "checkpoint": one point
    assert main(["diagnose", "--features", str(tmp_path / "a.npy"), str(tmp_path / "b.npz"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    a, b = out["files"]
    assert a["numerical_rank"] == 3 and a["dims"] == 64 and a["rows"] == 400
    s = np.linalg.svd(z.astype(np.float64), compute_uv=False)  # the float32 noise counts too, a little
    p = s / s.sum()
    np.testing.assert_allclose(a["effective_rank"], np.exp(-np.sum(p * np.log(p))), rtol=1e-5)
    assert 2.7 < a["effective_rank"] <= 3.0
    assert b["varying"] < 1e-6 and b["ncm_accuracy"] <= b["chance"] + 1e-12  # one point: no class information
    assert out["verdict"] == "collapsed" and out["flagged"] == [1]
    assert (tmp_path / "collapse_features.png").stat().st_size > 0
    # text form: the verdict first
    assert main(["diagnose", "--features", str(tmp_path / "a.npy"), "--out", str(tmp_path / "f.png")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("RANK-DEFICIENT") and "numerical rank 3" in text


@checks.float64
def test_label_metrics_nearest_class_mean_leave_one_out():
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 20)
    x = rng.standard_normal((60, 5)) * 0.1 + 3 * np.eye(5)[y]  # separated clusters
    rep = diagnosis.features_report(x, y)
    assert rep["ncm_accuracy"] == 1.0 and rep["between_class"] > 0.95 and rep["classes"] == 3
    x = rng.standard_normal((60, 5))
    rep = diagnosis.features_report(x, y)
    # leave-one-out by brute force
    hits = 0
    for i in range(60):
        keep = np.arange(60) != i
        means = np.stack([x[keep & (y == c)].mean(0) for c in range(3)])
        hits += int(np.argmin(np.sum((means - x[i]) ** 2, 1)) == y[i])
    assert rep["ncm_accuracy"] == hits / 60


def _bad(tmp_path, capsys, args):
    assert main(["diagnose", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dualjax diagnose: ") and "\n" not in err
    return err


def test_diagnose_bad_input_gets_one_line_and_exit_2(tmp_path, capsys):
    z = np.ones((5, 4))
    z[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", z)
    assert "1 of 20 values are NaN or infinite (first at index (2, 1))" in _bad(
        tmp_path, capsys, ["--features", str(tmp_path / "nan.npy")])
    np.save(tmp_path / "flat.npy", np.ones(7))
    assert "shape (samples, dims)" in _bad(tmp_path, capsys, ["--features", str(tmp_path / "flat.npy")])
    np.save(tmp_path / "one.npy", np.ones((1, 4)))
    assert "at least 2 samples" in _bad(tmp_path, capsys, ["--features", str(tmp_path / "one.npy")])
    assert "no such file" in _bad(tmp_path, capsys, ["--features", str(tmp_path / "missing.npy")])
    (tmp_path / "junk.npy").write_text("not numpy")
    assert "not a readable NumPy file" in _bad(tmp_path, capsys, ["--features", str(tmp_path / "junk.npy")])
    np.savez(tmp_path / "two.npz", x=np.ones((3, 2)), y=np.ones((3, 2)))
    assert "--key" in _bad(tmp_path, capsys, ["--features", str(tmp_path / "two.npz")])
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).standard_normal((6, 3)))
    np.save(tmp_path / "lab.npy", np.arange(5))
    assert "one label per sample, shape (6,)" in _bad(
        tmp_path, capsys, ["--features", str(tmp_path / "ok.npy"), "--labels", str(tmp_path / "lab.npy")])
    assert "either RUN_DIR or --features" in _bad(tmp_path, capsys, [])
    assert "no such run directory" in _bad(tmp_path, capsys, [str(tmp_path / "nope")])
    (tmp_path / "run").mkdir()
    assert "metrics.jsonl: no such file" in _bad(tmp_path, capsys, [str(tmp_path / "run")])
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 0, "F": 1}\n{oops\n')
    assert "line 2 is not JSON" in _bad(tmp_path, capsys, [str(tmp_path / "run")])


def test_diagnose_run_verdicts_from_records(tmp_path, capsys):
    """Hand-made records: a run whose teacher rank falls from 50 to 5 is flagged from the first
    record below 10 with the drop located; E rising under SG is reported as Prop 3.1, not collapse."""
    ranks = [50, 49, 45, 30, 9, 6, 5]
    recs = [{"step": 10 * i, "F": 0.5, "E": 0.5 - 0.05 * i if i < 3 else 0.4 + 0.05 * i, "d_theta": 0.1,
             "d_psi": 0.1, "d_xi": 0.1, "lr": 1e-3, "rank_teacher": float(r), "rank_student": float(r),
             "rank_pred": 2.0, "std_target": 0.5, "std_pred": 0.05, "cos_student_teacher": 1.0}
            for i, r in enumerate(ranks)]
    for r in recs:
        r["collapse"] = bool(collapse.check(r, 50.0))
    d = diagnosis.diagnose_run(recs, "sg")
    assert d["verdict"] == "collapsed" and d["first_collapse_step"] == 40 and d["collapsed_records"] == 3
    assert [(x["from_step"], x["step"]) for x in d["rank_drops"]] == [(20, 30), (30, 40), (40, 50)]
    assert any("Prop 3.1" in line for line in d["lines"])
    healthy = [dict(r, rank_teacher=50.0 - i) for i, r in enumerate(recs)]
    assert diagnosis.diagnose_run(healthy, "ema")["verdict"] == "no collapse"
    partial = [dict(r, rank_teacher=50.0 - 5 * i) for i, r in enumerate(recs)]
    assert diagnosis.diagnose_run(partial, "sg")["verdict"] == "partial rank drop"
    recovered = [dict(r, rank_teacher=50.0 if i != 3 else 5.0) for i, r in enumerate(recs)]
    assert diagnosis.diagnose_run(recovered, "sg")["verdict"] == "collapsed, then recovered"
    old = [{k: v for k, v in r.items() if k in ("step", "F", "E", "d_theta", "lr")} for r in recs]
    assert diagnosis.diagnose_run(old, "sg")["verdict"] == "no collapse metrics"
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "config.json").write_text(json.dumps({"teacher": "sg"}))
    assert main(["diagnose", str(run)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("COLLAPSED: flagged from step 40") and "rank drop: step 30 -> 40" in text
    assert (run / "collapse.png").stat().st_size > 0

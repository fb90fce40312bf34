"""The claims package (registry, runner, verdicts), the report, and `dualjax reproduce` / `dualjax linear`."""

import importlib
import json
import math
import re

import numpy as np
import pytest

from dualjax import claims, cli
from dualjax.claims import fig2, lemma4_3, prop3_2, prop4_7, prop4_10, prop4_11, synthetic
from dualjax.claims.report import ClaimResult, write_report


def test_report_renders_every_row_and_embeds_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_path = tmp_path / "f.png"
    plt.plot([0, 1]); plt.savefig(fig_path); plt.close()
    rows = [ClaimResult("a", "Claim A", "paper says a", "we saw a", "reproduced", "because", [str(fig_path)]),
            ClaimResult("b", "Claim | B", "paper says b", "we saw b", "partly", "half")]
    paths = write_report(rows, {"mode": "quick", "seconds": 1.0}, tmp_path)
    md = paths["md"].read_text()
    assert "Claim A" in md and "Claim \\| B" in md and "**partly**" in md and "f.png" in md
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and html.count("<tr>") == 3
    data = json.loads(paths["json"].read_text())
    assert [c["verdict"] for c in data["claims"]] == ["reproduced", "partly"]
    with pytest.raises(ValueError, match="verdict must be one of"):
        ClaimResult("c", "C", "", "", "maybe", "")


def test_reproduce_cli_one_claim(tmp_path, capsys):
    rc = cli.main(["reproduce", "--out", str(tmp_path), "--only", "prop3.1"])
    assert rc == 0
    data = json.loads((tmp_path / "report.json").read_text())
    (claim,) = data["claims"]
    assert claim["key"] == "prop3.1" and claim["verdict"] == "reproduced"
    # the same init under plain GD collapses (Lemma 4.3) while E decreases
    plain = claim["data"]["rules"]["plain"]
    assert plain["final_norm_A"] < 1e-6 and not plain["E_increased"]
    # each end point is checked against the equation of its rank: (ii) at the origin (where Prop 4.5's
    # full-rank equation would leave λ²), Prop 4.5 at SG's and EMA's full-rank end points
    assert plain["rank_A"] == 0 and plain["equation"].startswith("(ii)") and plain["equation_residual"] < 1e-10
    for name in ("sg", "ema"):
        end = claim["data"]["rules"][name]
        assert end["rank_A"] == 1 and end["equation"] == "Prop 4.5 (full rank)" and end["equation_residual"] < 1e-6
    assert (tmp_path / "linear" / "linear_dynamics.png").stat().st_size > 10_000
    assert cli.main(["reproduce", "--out", str(tmp_path / "x"), "--only", "prop9.9"]) == 2
    assert "unknown claim(s) ['prop9.9']" in capsys.readouterr().err
    assert set(p.name for p in tmp_path.iterdir()) <= set(claims.OUTPUTS)  # OUTPUTS names what it wrote


def test_registry_names_one_module_per_claim_in_report_order():
    assert list(claims.CLAIMS) == ["prop3.1", "prop3.2", "lemma4.3", "prop4.5", "prop4.7", "prop4.10",
                                   "prop4.10-dynamic", "prop4.11", "synthetic", "fig2"]
    assert len(set(claims.CLAIMS.values())) == len(claims.CLAIMS)
    for key in claims.CLAIMS:
        module = claims.claim_module(key)
        assert module.KEY == key and module.TITLE and module.PAPER
        assert callable(module.measure) and callable(module.row)
    with pytest.raises(ValueError, match="unknown claim.*prop9.9"):
        claims.claim_module("prop9.9")


def test_a_failing_claim_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    module = importlib.import_module("dualjax.claims.prop4_11")

    def broken(out_dir, full=False):
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "measure", broken)
    (res,) = claims.run_all(tmp_path, only=["prop4.11"], progress=lambda msg: None)
    assert res.verdict == "failed to run" and "boom" in res.measured


def test_prop4_11_measures_the_closed_forms(tmp_path):
    rho, tau, lam = 1.0, 0.8, 0.05
    r = prop4_11.measure(tmp_path)
    delta = tau**2 - 4 * rho * lam
    r2 = (abs(tau) + math.sqrt(delta)) / (2 * rho)
    np.testing.assert_allclose(r["m1_outer"]["radial_eig"], -r2 * math.sqrt(delta), rtol=1e-12)
    np.testing.assert_allclose(r["m1_outer"]["eta_max_closed_form"], 2 / (abs(tau) * r2), rtol=1e-12)
    assert prop4_11.row(r).verdict == "reproduced"
    wrong = {**r, "m1_inner": {**r["m1_inner"], "n_unstable": 2}}
    assert prop4_11.row(wrong).verdict == "not reproduced"


# ----------------------------------------------------------------------------- verdicts from measurements

def _schwarz(sg_exact=0.5, sg_probe=0.49, se=0.01, plain=1e-16):
    one = {"params": 40, "sg_exact": sg_exact, "sg_probe": sg_probe, "sg_probe_se": se,
           "sg_bilinear_relative_median": 0.3, "plain_exact": plain}
    return {"linear_n6_m4": one, "tanh_mlp_6_16_4": dict(one)}


@pytest.mark.parametrize("measured, verdict", [
    (_schwarz(), "reproduced"),
    (_schwarz(sg_exact=0.05, sg_probe=0.05), "not reproduced"),  # near-symmetric J: could be a gradient
    (_schwarz(plain=1e-6), "not reproduced"),  # the control ∇E must be symmetric to rounding
    (_schwarz(sg_probe=0.3), "not reproduced"),  # probe 20 standard errors off the exact value
])
def test_prop3_2_verdict_is_the_schwarz_test(measured, verdict):
    assert prop3_2.row(measured).verdict == verdict


@pytest.mark.parametrize("norms, collapsed, verdict", [([1e-9, 3e-8], 2, "reproduced"), ([1e-9, 0.8], 1, "not reproduced")])
def test_lemma4_3_verdict_needs_every_run_collapsed(norms, collapsed, verdict):
    res = lemma4_3.row({"norms": norms, "statuses": ["converged"] * 2, "E_increased": [False, False]})
    assert res.verdict == verdict and res.measured.startswith(f"{collapsed}/2 random instances")


@pytest.mark.parametrize("counts, verdict", [
    ({"gauss": [1, 2], "aug": [1, 1]}, "reproduced"),
    ({"gauss": [0, 2], "aug": [1, 0]}, "partly"),
    ({"gauss": [0, 0], "aug": [0, 0]}, "not reproduced"),
])
def test_prop4_7_verdict_counts_instances_with_a_pd_solution(counts, verdict):
    res = prop4_7.row({"pd_counts": counts, "necessary_condition_holds": 4, "figure": "f.png"})
    assert res.verdict == verdict and res.figures == ["f.png"]


@pytest.mark.parametrize("stable, saddle, mismatches, verdict", [
    (3, 0, 0, "reproduced"), (3, 2, 0, "partly"), (3, 0, 1, "not reproduced"), (0, 4, 0, "not reproduced"),
])
def test_prop4_10_verdict(stable, saddle, mismatches, verdict):
    r = {"m2_instances_with_pd": 3, "m2_class_counts_all_ranks": {"stable": stable, "saddle": saddle, "degenerate": 0},
         "m2_zero_vs_orbit_mismatches": mismatches, "m2_max_stable_pd_per_instance": 1}
    assert prop4_10.row(r).verdict == verdict


def _study(sg_outer, ema_outer, inner=0, not_converged=0):
    """A summary.json as write_study makes it, with the given percentages on S₂ given Δ ≥ 0."""
    def rule(outer):
        def table(o):
            share = {"outer": outer / 100, "origin": 1 - outer / 100}.get(o, 0.0)
            return {"fraction": share, "count": round(share * 1000)}

        frac = {o: table(o) for o in ("outer", "origin", "inner", "not_converged", "diverged")}
        frac["inner"] = {"fraction": inner / 1000, "count": inner}
        frac["not_converged"] = {"fraction": not_converged / 1000, "count": not_converged}
        return {"fractions": frac, "fractions_given_delta_nonneg": frac, "delta_nonneg": {"fraction": 0.477},
                "e_increased": {"fraction": 0.3, "count": 300}}

    return {"config": {"n": 2, "eta": 0.05, "init_scale": 1.0}, "delta_nonneg_exact": 0.4767,
            "rule_settings": {"sg": {"ema_alpha": 0.0}, "ema": {"ema_alpha": 0.99}},
            "rules": {"sg": rule(sg_outer), "ema": rule(ema_outer)}, "figures": {"a": "a.png"}}


@pytest.mark.parametrize("study, verdict", [
    (_study(82.5, 92.0), "reproduced"),
    (_study(82.5, 92.0, not_converged=3), "partly"),  # 'all trials converged' fails
    (_study(90.0, 93.0), "partly"),  # the paper's SG number missed by 8 points
    (_study(90.0, 85.0), "not reproduced"),  # EMA below SG
    (_study(82.5, 92.0, inner=1), "not reproduced"),  # a trial ended on the saddle S₁
])
def test_synthetic_verdict(study, verdict):
    res = synthetic.row(study)
    assert res.verdict == verdict and res.figures == ["a.png"]


def _vjepa_run(E, d_theta, probes):
    """A figure2.json entry (rundir.series + summary) with these E, ‖Δθ‖ (lr 1e-3) and probes."""
    steps = len(E)
    summary = {"steps": steps, "E_min": min(E), "E_argmin_step": int(np.argmin(E)), "E_last": E[-1],
               "probe_top1": [[t, p] for t, p in probes]}
    return {"steps": list(range(steps)), "E": E, "d_theta": d_theta, "lr": [1e-3] * steps,
            "probe_top1": [[t, p] for t, p in probes], "random_init_top1": dict(probes).get(0), "summary": summary}


def _fig2_measured(runs):
    return {"preset": "tiny", "steps": 8, "runs": runs, "figure": "fig.png", "dataset": "shapes", "num_classes": 16,
            "chance": 1 / 16, "config": {"frames": 8, "size": 32}, "across_seeds": {}}


def test_fig2_facts_and_verdict():
    bowl = [1.0, 0.5, 0.4, 0.3, 0.35, 0.4, 0.45, 0.5]  # E bottoms out at step 3 and rises again
    steady = [0.01] * 8
    vanishing = [0.01, 0.01, 0.01, 0.01, 1e-6, 1e-6, 1e-7, 1e-7]
    sg = _vjepa_run(bowl, steady, [(0, 0.2), (7, 0.3)])
    ema = _vjepa_run(bowl, steady, [(0, 0.2), (7, 0.4)])
    f = fig2.facts(sg)
    assert f["E_bottoms_early"] and f["E_min_step"] == 3 and f["increments_persist"] and f["random_init_top1"] == 0.2
    assert not fig2.facts(_vjepa_run(bowl, vanishing, []))["increments_persist"]
    assert not fig2.facts(_vjepa_run(sorted(bowl, reverse=True), steady, []))["E_bottoms_early"]
    measured = _fig2_measured({"sg": {"0": sg}, "ema": {"0": ema}})
    res = fig2.row(measured)
    assert res.verdict == "reproduced"
    assert res.data["random_init_top1"] == {"sg": 0.2, "ema": 0.2} and res.data["probe_top1"] == {"sg": 0.3, "ema": 0.4}
    assert res.data["per_seed"]["ema"]["0"] == {"random_init_top1": 0.2, "probe_top1": 0.4}
    assert "random init→last 20.0→30.0 % (SG), 20.0→40.0 % (EMA); chance 6.25 %" in res.measured
    measured["runs"]["ema"]["0"] = _vjepa_run(bowl, steady, [(0, 0.2), (7, 0.25)])  # EMA no better than SG
    assert fig2.row(measured).verdict == "partly"
    # several seeds: the probes are averaged over seeds, each seed's E and increments must pass
    two = _fig2_measured({"sg": {"0": sg, "1": _vjepa_run(bowl, steady, [(0, 0.3), (7, 0.1)])},
                          "ema": {"0": ema, "1": _vjepa_run(bowl, steady, [(0, 0.3), (7, 0.3)])}})
    res = fig2.row(two)
    assert res.verdict == "reproduced" and res.data["probe_top1"] == pytest.approx({"sg": 0.2, "ema": 0.35})
    assert res.data["random_init_top1"] == pytest.approx({"sg": 0.25, "ema": 0.25})
    assert res.data["per_seed"]["sg"]["1"] == {"random_init_top1": 0.3, "probe_top1": 0.1}
    two["runs"]["sg"]["1"] = _vjepa_run(sorted(bowl, reverse=True), steady, [(0, 0.3), (7, 0.1)])
    assert fig2.row(two).verdict == "partly"  # one seed of SG does not bottom out early


# ----------------------------------------------------------------------------- dualjax linear

def test_linear_cli_errors_name_the_value(tmp_path, capsys):
    for argv, message in (
            (["--lam", "-0.5"], r"lam must be > 0.*-0.5"),
            (["--rho", "[[1, 0], [0, -1]]", "--tau", "[[1, 0], [0, 1]]"], "rho must be positive"),
            (["--rho", "[[1, 0]"], "--rho must be a JSON")):
        assert cli.main(["linear", *argv, "--out", str(tmp_path / "lin")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dualjax linear: error: ") and re.search(message, err)
    assert not (tmp_path / "lin").exists()
    assert cli.main(["nonsense-command"]) == 2
    assert "unknown command 'nonsense-command'" in capsys.readouterr().err

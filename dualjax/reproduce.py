"""``dualjax reproduce``: every claim of the paper, measured, in one run.

Each claim is a function ``claim_xxx(out_dir, full) -> ClaimResult`` that runs a study at a
quick size (``full=False``, the whole run takes minutes on a laptop CPU) or at the paper's
size (``full=True``) and compares what it measured with what the paper states. The verdict
is computed from the measurement, never written in advance.
"""

from __future__ import annotations

import functools
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from dualjax.report import ClaimResult


# --------------------------------------------------------------------------- Prop 3.1 and Lemma 4.3

def _linear_example(out_dir: Path) -> dict:
    from dualjax.commands.linear import run_linear

    return run_linear(np.array([[1.0]]), np.array([[0.8]]), 0.05, n=4, eta=0.05, alpha=0.99, init_scale=0.15,
                      steps=20_000, seed=0, out=str(out_dir / "linear"))


def claim_prop_3_1(out_dir: Path, full: bool) -> ClaimResult:
    """Prop 3.1: SG / EMA do not minimize E, yet avoid collapse at convergence."""
    s = _linear_example(out_dir)
    sg, ema = s["rules"]["sg"], s["rules"]["ema"]
    nontrivial = all(r["status"] == "converged" and abs(r["final_norm_A"] - s["r2"]) < 1e-6 for r in (sg, ema))
    increased = sg["E_increased"] and ema["E_increased"]
    above = sg["E_final"] > s["E0"] and ema["E_final"] > s["E0"]
    ok = nontrivial and increased and above
    measured = (
        f"m=1 example (ρ=1, τ=0.8, λ=0.05, n=4, init scale 0.15): SG and EMA converge to the outer sphere "
        f"‖A‖={sg['final_norm_A']:.4f} (r₂={s['r2']:.4f}); E rose along both runs ({increased}); "
        f"final E={sg['E_final']:.4f} > E(θ₀)={s['E0']:.4f} > min E = 0 (the origin)."
    )
    return ClaimResult(
        "prop3.1", "Prop 3.1 — SG/EMA do not minimize E, avoid collapse", 
        "SG and EMA generally neither minimize Ē nor land at its (collapsed) global minimum.",
        measured, "reproduced" if ok else "not reproduced",
        "E's unique minimum is the origin (Lemma 4.3); SG/EMA end on S₂ with E above its starting value."
        if ok else "the example did not show the expected behaviour; see report.json",
        figures=[s["figure"]], data=s,
    )


def claim_lemma_4_3(out_dir: Path, full: bool) -> ClaimResult:
    """Lemma 4.3: gradient flow on E collapses to A = 0, B = 0 from every start."""
    import jax

    from dualjax.linear import model
    from dualjax.linear.dynamics import simulate

    trials = 40 if full else 12
    norms, statuses, rises = [], [], []
    with jax.enable_x64(True):
        for i in range(trials):
            k1, k2 = jax.random.split(jax.random.PRNGKey(1000 + i))
            m = 1 + i % 3
            n = m + 1 + i % 4
            mom = model.random_moments(k1, m, kind="aug" if i % 2 else "gauss")
            lam = 0.01 + 0.09 * (i / max(trials - 1, 1))
            A0, B0 = model.init_params(k2, n, m, scale=1.0 + 2.0 * (i % 3))
            run = simulate("plain", A0, B0, mom, lam, eta=0.02, max_steps=400_000, tol=1e-12)
            norms.append(float(np.linalg.norm(run.A)) + float(np.linalg.norm(run.B)))
            statuses.append(run.status)
            rises.append(run.E_increased)
    collapsed = sum(n < 1e-6 for n in norms)
    ok = collapsed == trials
    measured = (f"{collapsed}/{trials} random instances (m ≤ 3, n ≤ 6, λ ∈ [0.01, 0.1], init scale up to 5) "
                f"reach ‖A‖+‖B‖ < 1e-6 under plain GD (max {max(norms):.1e}); E never rose: {not any(rises)}. "
                f"Same inits under SG/EMA: see Prop 3.1 and the Monte Carlo rows.")
    return ClaimResult(
        "lemma4.3", "Lemma 4.3 — gradient flow on E collapses",
        "Gradient flow on the original objective E necessarily leads to A → 0 (collapse).",
        measured, "reproduced" if ok else "not reproduced",
        "‖A(t)‖ ≤ e^{−λt}‖A(0)‖ (Euler identity on the degree-2 part, MATH.md §2); checked along every run."
        if ok else "some runs did not collapse; see report.json",
        data={"norms": norms, "statuses": statuses, "E_increased": rises},
    )


# --------------------------------------------------------------------------- Prop 3.2

def claim_prop_3_2(out_dir: Path, full: bool) -> ClaimResult:
    """Prop 3.2: the expected SG field is not a gradient field (Schwarz test)."""
    from dualjax import integrability

    r = integrability.quick_check(0)
    lin, mlp = r["linear_n6_m4"], r["tanh_mlp_6_16_4"]
    sg_asym = min(lin["sg_exact"], mlp["sg_exact"])
    plain = max(lin["plain_exact"], mlp["plain_exact"])
    probe_ok = all(abs(v["sg_probe"] - v["sg_exact"]) < 4 * v["sg_probe_se"] + 0.02 for v in (lin, mlp))
    ok = sg_asym > 0.1 and plain < 1e-12 and probe_ok
    measured = (f"‖J−Jᵀ‖/‖J‖ of the expected SG field: {lin['sg_exact']:.3f} (linear n=6, m=4, {lin['params']} params), "
                f"{mlp['sg_exact']:.3f} (tanh-MLP, {mlp['params']} params); matrix-free jvp/vjp probe "
                f"{lin['sg_probe']:.3f} ± {lin['sg_probe_se']:.3f} and {mlp['sg_probe']:.3f} ± {mlp['sg_probe_se']:.3f}; "
                f"control (plain rule = ∇E): {plain:.1e}.")
    return ClaimResult(
        "prop3.2", "Prop 3.2 — the SG field is not a gradient field",
        "With the half squared loss and Ω = λ(‖θ‖²+‖ψ‖²)/2 the expected SG/EMA fields are generically not gradients of any smooth function.",
        measured, "reproduced" if ok else "not reproduced",
        "A gradient field has a symmetric Jacobian; SG's is far from symmetric while ∇E's is symmetric to rounding. "
        "Sympy's mixed partials confirm it symbolically (tests/test_symbolic.py).", data=r)


# --------------------------------------------------------------------------- Prop 4.5 / Cor 4.6

def claim_prop_4_5(out_dir: Path, full: bool) -> ClaimResult:
    """Prop 4.5 / Cor 4.6: equilibria are the varieties {A = U√S_k}, S_k solving a quadratic matrix equation."""
    from dualjax.linear import equilibria

    r = equilibria.quick_check(0)
    ok = (r["exact_vs_homotopy_max_diff"] < 1e-8 and r["max_field_residual_on_varieties"] < 1e-9
          and r["max_BtB_minus_AAt"] < 1e-9 and r["positive_definite"] >= 1
          and r["complex_solutions_exact"] <= r["bezout_bound"])
    measured = (f"m=2 instance: {r['complex_solutions_exact']} complex solutions (sympy Gröbner; homotopy finds "
                f"{r['complex_solutions_homotopy']}, max difference {r['exact_vs_homotopy_max_diff']:.1e}) vs the bound "
                f"2^{{m(m+1)/2}} = {r['bezout_bound']}; {r['real_full_rank']} real, {r['positive_definite']} positive definite; "
                f"equilibria by rank {r['by_rank']}. On points A = U√S, B = Aτ(Sρ+λI)⁻¹Aᵀ sampled on every variety: "
                f"field ≤ {r['max_field_residual_on_varieties']:.1e}, ‖BᵀB − AAᵀ‖ ≤ {r['max_BtB_minus_AAt']:.1e}.")
    return ClaimResult(
        "prop4.5", "Prop 4.5 / Cor 4.6 — equilibria as algebraic varieties",
        "With S = AᵀA, full-rank equilibria solve m(m+1)/2 quadratic equations in S (at most 2^{m(m+1)/2} solutions); "
        "the equilibrium set is a union of varieties {U√S_k : UᵀU = I}; BᵀB = AAᵀ.",
        measured, "reproduced" if ok else "not reproduced",
        "The equation is (ρS+λI)(Sρ+λI) = τᵀSτ (τᵀ on the left; the transposed form is wrong for non-symmetric τ). "
        "The finite complex count is below Bézout's bound: 2, 6, 24 for m = 1, 2, 3 (124 at m = 4, so not (m+1)!), "
        "see docs/theory.md.", data=r)


# --------------------------------------------------------------------------- Prop 4.7

def claim_prop_4_7(out_dir: Path, full: bool) -> ClaimResult:
    """Prop 4.7: full-rank equilibria exist for generic data."""
    import jax

    from dualjax.linear import equilibria, model

    per_kind = 100 if full else 30
    counts: dict[str, list[int]] = {}
    necessary = 0
    with jax.enable_x64(True):
        for kind in ("gauss", "aug"):
            counts[kind] = []
            for i in range(per_kind):
                mom = model.random_moments(jax.random.PRNGKey(50_000 + i), 2, kind=kind)
                rho, tau = np.asarray(mom.rho), np.asarray(mom.tau)
                necessary += equilibria.existence(mom, 0.05)["necessary_condition_holds"]
                sol = equilibria.solve_homotopy(rho, tau, 0.05, seed=i)
                counts[kind].append(sum(np.linalg.eigvalsh(S).min() > 0 for S in sol.real))
    total = 2 * per_kind
    exist = sum(c > 0 for v in counts.values() for c in v)
    fig = out_dir / "prop4_7_pd_counts.png"
    _bar_counts(counts, fig, "m = 2, λ = 0.05: number of positive definite equilibria per random instance")
    measured = (f"{exist}/{total} random m=2 instances (λ=0.05; {per_kind} with Gaussian τ, {per_kind} with "
                f"augmentation-like τ = (I+0.3G)ρ) have a positive definite equilibrium; the necessary condition "
                f"‖τ‖² ≥ 4λλ_min(ρ) holds in {necessary}/{total}.")
    verdict = "partly" if 0 < exist < total else ("reproduced" if exist == total else "not reproduced")
    return ClaimResult(
        "prop4.7", "Prop 4.7 — existence of full-rank equilibria",
        "Full-rank equilibria exist under generic data (Brouwer fixed point + implicit function theorem).",
        measured, verdict,
        "Existence holds on an open set of data, not for all generic data: a sizeable fraction of instances has no "
        "real solution at all (then SG/EMA can only collapse or partially collapse). The summary does not state "
        "the hypotheses; for m = 1 the exact condition is Δ = τ² − 4ρλ ≥ 0.",
        figures=[str(fig)], data={"pd_counts": counts, "necessary_condition_holds": necessary})


def _bar_counts(counts: dict[str, list[int]], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    top = max(max(v) for v in counts.values())
    xs = np.arange(top + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(counts)
    for i, (kind, values) in enumerate(counts.items()):
        ax.bar(xs + i * width, [values.count(x) for x in xs], width, label=kind)
    ax.set_xticks(xs + width * (len(counts) - 1) / 2, [str(x) for x in xs])
    ax.set_xlabel("positive definite solutions S")
    ax.set_ylabel("instances")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- Prop 4.10 and 4.11

@functools.lru_cache(maxsize=1)
def _stability_check() -> dict:
    from dualjax.linear import stability

    return stability.quick_check(0)


def claim_prop_4_10(out_dir: Path, full: bool) -> ClaimResult:
    """Prop 4.10: equilibria of SG and EMA are (generically) asymptotically stable."""
    r = _stability_check()
    c = r["m2_class_counts_all_ranks"]
    measured = (f"m=2, n=4, {r['m2_instances_with_pd']} instances with PD equilibria: {c['stable']} stable, "
                f"{c['saddle']} saddle, {c['degenerate']} degenerate equilibrium components (all ranks); at most "
                f"{r['m2_max_stable_pd_per_instance']} stable full-rank component per instance; zero eigenvalues = "
                f"orbit dimension nr − r(r+1)/2 everywhere ({r['m2_zero_vs_orbit_mismatches']} mismatches).")
    ok_structure = r["m2_zero_vs_orbit_mismatches"] == 0 and c["stable"] > 0
    verdict = "partly" if ok_structure and c["saddle"] > 0 else ("reproduced" if ok_structure else "not reproduced")
    return ClaimResult(
        "prop4.10", "Prop 4.10 — asymptotic stability of equilibria",
        "SG and EMA equilibria are asymptotically stable in the generic case (all Jacobian eigenvalues with negative "
        "real part), even for α = 1; saddles appear only when m = 1, never when m > 1.",
        measured, verdict,
        "Stability holds for one component per instance (the Loewner-maximal S) and as a set (the orbit directions "
        "are exact zeros), but the other full-rank components are saddles for m = 2, 3, against the summary's "
        "'never when m > 1'. At α = 1 the teacher is frozen and the Jacobian gains nm zero eigenvalues, so "
        "asymptotic stability cannot hold literally (MATH.md §5).", data=r)


def claim_prop_4_11(out_dir: Path, full: bool) -> ClaimResult:
    """Prop 4.11: m = 1 — two spheres, the outer stable, the inner a saddle."""
    r = _stability_check()
    o, i = r["m1_outer"], r["m1_inner"]
    ok = (o["sg"] == "stable" and o["ema"] == "stable" and i["sg"] == "saddle" and i["ema"] == "saddle"
          and i["n_unstable"] == 1 and abs(o["eta_max"] - o["eta_max_closed_form"]) < 1e-8 * o["eta_max_closed_form"])
    measured = (f"ρ=1, τ=0.8, λ=0.05 (Δ=0.44): outer sphere S₂ {o['sg']} (SG) / {o['ema']} (EMA), radial eigenvalue "
                f"{o['radial_eig']:.4f} = −r₂√Δ; inner sphere S₁ {i['sg']} / {i['ema']} with {i['n_unstable']} unstable "
                f"direction; discrete SG stable for η < {o['eta_max']:.4f} (closed form 2/(|τ|r₂) = "
                f"{o['eta_max_closed_form']:.4f}). Monte Carlo: see the synthetic-table row.")
    return ClaimResult(
        "prop4.11", "Prop 4.11 — m = 1: the two spheres",
        "Non-zero equilibria exist iff Δ = τ² − 4ρλ ≥ 0, on spheres of radii (|τ| ∓ √Δ)/2ρ; S₂ is asymptotically "
        "stable, S₁ a saddle.", measured, "reproduced" if ok else "not reproduced",
        "Closed-form spectra (MATH.md §6) match jax.jacfwd; the inner sphere has exactly one unstable (radial) "
        "direction.", data=r)


# --------------------------------------------------------------------------- the synthetic table

def claim_synthetic_table(out_dir: Path, full: bool) -> ClaimResult:
    """The paper's m = 1 Monte Carlo table (10,000 trials, SG and EMA)."""
    from dualjax.linear import montecarlo

    s = montecarlo.quick_study(out_dir / "montecarlo", trials=10_000, seed=0)
    sg, ema = s["rules"]["sg"], s["rules"]["ema"]

    def pct(r, cond, key):
        table = r["fractions_given_delta_nonneg"] if cond else r["fractions"]
        return 100 * table[key]["fraction"]

    cfg = s["config"]
    bad = {k: sum(r["fractions"][o]["count"] for o in ("not_converged", "diverged")) for k, r in s["rules"].items()}
    measured = (
        f"10,000 trials, n={cfg['n']}, η={cfg['eta']}, EMA α={cfg['alpha']}, PyTorch init ×{cfg['init_scale']}: "
        f"unconditional outer/origin SG {pct(sg, 0, 'outer'):.1f}/{pct(sg, 0, 'origin'):.1f} %, "
        f"EMA {pct(ema, 0, 'outer'):.1f}/{pct(ema, 0, 'origin'):.1f} %; given Δ ≥ 0 "
        f"({100 * sg['delta_nonneg']['fraction']:.1f} % of trials, exact {100 * s['delta_nonneg_exact']:.2f} %): "
        f"SG {pct(sg, 1, 'outer'):.1f}/{pct(sg, 1, 'origin'):.1f} %, EMA {pct(ema, 1, 'outer'):.1f}/{pct(ema, 1, 'origin'):.1f} %. "
        f"Inner sphere: SG {sg['fractions']['inner']['count']}, EMA {ema['fractions']['inner']['count']} trials. "
        f"Not converged or diverged: SG {bad['sg']}, EMA {bad['ema']}. E rose in {100 * sg['e_increased']['fraction']:.1f} % (SG) / "
        f"{100 * ema['e_increased']['fraction']:.1f} % (EMA) of trials."
    )
    qualitative = (sg["fractions"]["inner"]["count"] == 0 and ema["fractions"]["inner"]["count"] == 0
                   and pct(ema, 1, "outer") >= pct(sg, 1, "outer") and sg["e_increased"]["count"] > 0)
    exact = abs(pct(ema, 1, "outer") - 92.8) < 2 and abs(pct(sg, 1, "outer") - 82.0) < 2 and sum(bad.values()) == 0
    verdict = "reproduced" if exact and qualitative else ("partly" if qualitative else "not reproduced")
    return ClaimResult(
        "synthetic", "Synthetic table (m = 1, 10,000 trials)",
        "ρ ~ U[0,3], τ ~ U[−1,1], λ ~ U[0.01,0.1]: EMA 92.8 % outer / 7.2 % origin, SG 82.0 % / 18.0 %; never the "
        "saddle S₁; all trials converged; E/F sometimes increased.",
        measured, verdict,
        "Reproduced: the saddle is never reached, EMA lands on S₂ at least as often as SG, E rises along many runs. "
        "Not reproduced: only ~47.7 % of trials have Δ ≥ 0, so unconditional 'outer' is capped there — the paper's "
        "numbers can only be conditional on Δ ≥ 0, and no setting of n, init scale, η, α found both 82.0 and 92.8 "
        "(the SG–EMA gap stays ≤ ~5 points; docs/montecarlo.md). With a fixed step a few trials with tiny ρ break "
        "η < 2/(|τ|r₂), so 'all converged' fails.",
        figures=[str(f) for f in s.get("figures", {}).values()] if isinstance(s.get("figures"), dict)
        else [str(f) for f in s.get("figures", [])],
        data=s)


# --------------------------------------------------------------------------- Figure 2 (V-JEPA)

def claim_figure_2(out_dir: Path, full: bool) -> ClaimResult:
    """Fig. 2: in V-JEPA training E is not minimized, increments do not vanish, EMA beats SG."""
    from dualjax.vjepa import plots as vplots
    from dualjax.vjepa import train as vtrain

    config = "figure2" if full else "tiny"
    steps = 1500 if full else 150
    probe_every = 250 if full else 75
    runs = {}
    for teacher in ("sg", "ema"):
        # one device: on a CPU the simulated devices share the same cores, so data parallelism only adds overhead
        runs[teacher] = vtrain.quick_run(out_dir / "vjepa" / teacher, steps=steps, teacher=teacher, config=config,
                                         probe_every=probe_every, num_devices=1)
    fig = vplots.plot_runs({k.upper(): v["records"] for k, v in runs.items()}, out_dir / "vjepa" / "figure2.png",
                           title=f"V-JEPA ({config} config, {steps} steps): SG vs EMA")
    facts = {}
    for teacher, run in runs.items():
        s, recs = run["summary"], run["records"]
        q = max(1, len(recs) // 4)
        rel_first = np.mean([r["d_theta"] / max(r["lr"], 1e-12) for r in recs[1:q + 1]])
        rel_last = np.mean([r["d_theta"] / max(r["lr"], 1e-12) for r in recs[-q:]])
        probes = [p for _, p in s["probe_top1"]]
        facts[teacher] = {
            "E_min_step": s["E_argmin_step"], "E_min": s["E_min"], "E_last": s["E_last"],
            "E_bottoms_early": s["E_argmin_step"] < 0.9 * (s["steps"] - 1) and s["E_last"] > s["E_min"],
            "increment_over_lr_first": float(rel_first), "increment_over_lr_last": float(rel_last),
            "increments_persist": bool(rel_last > 0.1 * rel_first),
            "probe_first": probes[0] if probes else None, "probe_last": probes[-1] if probes else None,
            "probe_max": max(probes) if probes else None,
        }
    sg, ema = facts["sg"], facts["ema"]
    ema_better = ema["probe_last"] is not None and sg["probe_last"] is not None and ema["probe_last"] > sg["probe_last"]
    checks = [sg["E_bottoms_early"], ema["E_bottoms_early"], sg["increments_persist"], ema["increments_persist"], ema_better]
    measured = (
        f"{config} config (8×32×32 moving shapes, 16 classes), {steps} steps: E(θ_t,ψ_t) is lowest at step "
        f"{sg['E_min_step']} (SG) / {ema['E_min_step']} (EMA) and ends at {sg['E_last']:.3f} / {ema['E_last']:.3f} "
        f"(min {sg['E_min']:.3f} / {ema['E_min']:.3f}); ‖Δθ‖/lr first→last quarter {sg['increment_over_lr_first']:.0f}→"
        f"{sg['increment_over_lr_last']:.0f} (SG), {ema['increment_over_lr_first']:.0f}→{ema['increment_over_lr_last']:.0f} (EMA); "
        f"probe top-1 first→last {100 * (sg['probe_first'] or 0):.1f}→{100 * (sg['probe_last'] or 0):.1f} % (SG), "
        f"{100 * (ema['probe_first'] or 0):.1f}→{100 * (ema['probe_last'] or 0):.1f} % (EMA); chance 6.25 %."
    )
    verdict = "reproduced" if all(checks) else ("partly" if any(checks) else "not reproduced")
    return ClaimResult(
        "fig2", "Fig. 2 — V-JEPA: E not minimized, increments persist, EMA ≥ SG",
        "ViT-S/B V-JEPA, 300k iterations on K710 ∪ SSv2: Ē bottoms out early and is not minimized; parameter "
        "increments do not vanish (ξ's neither, for EMA); SG accuracy rises then falls, EMA plateaus; EMA classifies better.",
        measured, verdict,
        "CPU scale only (a 4-block ViT on synthetic videos for minutes, not ViT-B for 300k steps on Kinetics/SSv2, "
        "which cannot be downloaded here). E is computed by its own forward pass with the online encoder as target. "
        "Increments are compared relative to the decaying learning rate. A random encoder already gives a strong "
        "probe on this data, so accuracy trends are weak at this size; docs/vjepa.md has the 1500-step run.",
        figures=[str(fig)], data={"facts": facts, "summaries": {k: v["summary"] for k, v in runs.items()}})


CLAIMS: list[tuple[str, Callable[[Path, bool], ClaimResult]]] = [
    ("prop3.1", claim_prop_3_1),
    ("prop3.2", claim_prop_3_2),
    ("lemma4.3", claim_lemma_4_3),
    ("prop4.5", claim_prop_4_5),
    ("prop4.7", claim_prop_4_7),
    ("prop4.10", claim_prop_4_10),
    ("prop4.11", claim_prop_4_11),
    ("synthetic", claim_synthetic_table),
    ("fig2", claim_figure_2),
]


def run_all(out_dir: str | Path, *, full: bool = False, only: list[str] | None = None, progress=print) -> list[ClaimResult]:
    """Run every claim (or those in ``only``); a claim that raises is reported as 'failed to run'."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    known = [k for k, _ in CLAIMS]
    if only:
        unknown = [k for k in only if k not in known]
        if unknown:
            raise ValueError(f"unknown claim(s) {unknown}; choose from {known}")
    results = []
    for key, fn in CLAIMS:
        if only and key not in only:
            continue
        progress(f"[reproduce] {key} ...")
        t0 = time.perf_counter()
        try:
            res = fn(out, full)
        except Exception as err:  # a broken study must not hide the others
            res = ClaimResult(key, key, "", f"error: {type(err).__name__}: {err}", "failed to run",
                              traceback.format_exc(limit=3))
        res.seconds = time.perf_counter() - t0
        progress(f"[reproduce] {key}: {res.verdict} ({res.seconds:.1f} s)")
        results.append(res)
    return results

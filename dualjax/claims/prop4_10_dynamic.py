"""Prop 4.10 dynamically, m > 1: which equilibria do SG and EMA actually reach?

The summary states that the SG / EMA equilibria are asymptotically stable and that saddles "only
appear when m = 1, never when m > 1". Statically that is false: for m = 2, 3 every instance with two
or more full-rank components has saddles among them (docs/theory.md). This row asks the dynamical
question with the general-m Monte Carlo (:func:`dualjax.linear.montecarlo.general_study`): trials of
SG and EMA from PyTorch-style starts on random instances (the paper's law made m-dimensional), each
end point classified against every enumerated equilibrium of its instance and checked by its
Jacobian.

Quick: m = 2, n = 4, 256 trials per rule. Full (``--full``): m = 2, n = 4, 10,000 trials and m = 3,
n = 5, 2,000 trials per rule. Written to ``OUT/montecarlo_m/m{m}``. Verdict: reproduced if no
component of an instance with m > 1 is a saddle and no trial ends at one; partly if saddle components
exist but no trial ends at a saddle or at a non-maximal full-rank component (the dynamics only reach
stable equilibria: the Loewner-maximal component, stable partial collapses, the origin); not
reproduced if some trial ends at a saddle or at a non-maximal full-rank component.
"""

from __future__ import annotations

import time
from pathlib import Path

from dualjax import rules
from dualjax.claims.report import Finding, graded
from dualjax.linear import montecarlo as mc

KEY = "prop4.10-dynamic"
TITLE = "Prop 4.10 dynamically: m > 1"
PAPER = ("Equilibria are asymptotically stable in the generic case; saddles appear only when m = 1, never when m > 1.")

QUICK = [(2, 4, 256)]
FULL = [(2, 4, 10_000), (3, 5, 2_000)]
RULES = (rules.sg(), rules.ema())


def measure(out_dir: Path, full: bool = False, seed: int = 0) -> dict:
    """Per (m, rule): the outcome fractions, end points at saddles, saddle components (first 256 instances)."""
    results, figures = [], []
    t0 = time.perf_counter()
    for m, n, trials in FULL if full else QUICK:
        study = mc.general_study(trials, RULES, mc.GeneralConfig(m=m, n=n), seed=seed)
        summ = mc.write_general_study(out_dir / "montecarlo_m" / f"m{m}", study, overwrite=True)
        figures += list(summ.get("figures", {}).values())
        for rule, s in summ["rules"].items():
            f = s["fractions"]
            results.append({
                "m": m, "n": n, "rule": rule, "trials": s["trials"],
                **{k: f[k]["fraction"] for k in ("full_rank_loewner_max", "full_rank_other", "full_rank_unmatched",
                                                  "partial", "origin", "not_converged", "diverged")},
                "ended_at_saddle": s["ended_at_saddle"]["count"],
                "saddle_components": s["components"]["saddle_components"],
                "instances_with_saddle_pd": s["components"]["instances_with_saddle_full_rank_component"]["count"],
                "loewner_max_stable": s["components"]["loewner_max_stable"]["fraction"],
                "with_full_rank": summ["equilibria"]["with_full_rank"]["fraction"],
                "complete": summ["equilibria"]["complete"]["fraction"],
            })
    return {"results": results, "seconds": time.perf_counter() - t0, "figures": figures}


def row(r: dict) -> Finding:
    parts = []
    for x in r["results"]:
        parts.append(
            f"m={x['m']} {x['rule'].upper()} ({x['trials']} trials): full rank on the Loewner max "
            f"{100 * x['full_rank_loewner_max']:.1f} %, on another full-rank component "
            f"{100 * x['full_rank_other']:.1f} %, "
            f"partial collapse {100 * x['partial']:.1f} %, origin {100 * x['origin']:.1f} %; end points at a saddle: "
            f"{x['ended_at_saddle']}; saddle components in the first instances: {x['saddle_components']}")
    saddles_exist = any(x["saddle_components"] > 0 for x in r["results"])
    at_saddle = sum(x["ended_at_saddle"] for x in r["results"])
    other = max(x["full_rank_other"] for x in r["results"])
    reached_saddle = at_saddle > 0 or other > 0
    verdict = graded(not reached_saddle and not saddles_exist, partial=not reached_saddle)
    static = ("Statically the summary's 'never when m > 1' is false: the non-maximal full-rank components (and some "
              "rank-deficient ones) are saddles. " if saddles_exist else
              "No saddle component was found among the checked instances. ")
    dynamic = (f"Dynamically the trials do reach saddles: {at_saddle} end points at a saddle, up to "
               f"{100 * other:.1f} % of a rule's trials on a non-maximal full-rank component." if reached_saddle else
               "Dynamically no trial ends at a saddle and every full-rank end is on the Loewner-maximal component; "
               "the other trials collapse, often only partially (a stable rank-deficient equilibrium), which the "
               "paper does not mention for m > 1.")
    return Finding("; ".join(parts) + ".", verdict, static + dynamic, figures=[str(f) for f in r.get("figures", [])])

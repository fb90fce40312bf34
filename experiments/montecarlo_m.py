"""Beyond m = 1 (issue 16): which equilibrium do SG and EMA reach, as m, n, λ, α and the init scale vary?

Every setting is a :func:`dualjax.linear.montecarlo.general_study` (the paper's ensemble made
m-dimensional: ρ with eigenvalues U(0, 3], τ with entries U[−1, 1), λ ~ U[0.01, 0.1), PyTorch-style
starts, η = 0.05, budget 60,000 steps), each end point classified against every equilibrium of its
instance and checked by its Jacobian. The sweep:

* m ∈ {1, 2, 3, 4} with n = m + 2 (the baseline; m = 1 is the paper's study);
* n ∈ {3, 4, 8} at m = 2;
* λ in a low (0.01, 0.03) and a high (0.05, 0.1) range at m = 2;
* EMA α ∈ {0.9, 0.99, 0.999} at m = 2;
* the init scale s ∈ {0.2, 0.5, 2} at m = 2.

It prints and writes a table (``OUT/sweep.md``, ``OUT/sweep.json``), the outcome fractions against m
(``OUT/fractions_vs_m.png``, and given that the instance has a full-rank equilibrium) and each
setting's ``summary.json`` / ``trials.csv`` under ``OUT/<setting>/``.

    .venv/bin/python experiments/montecarlo_m.py --trials 2000 --out runs/montecarlo_m
"""

from __future__ import annotations

import argparse
import json
import os
import time

from dualjax import rules
from dualjax.linear import montecarlo as mc
from dualjax.linear.montecarlo import general_figures

PAIR = [rules.sg(), rules.ema()]
COLUMNS = ("full_rank_loewner_max", "full_rank_other", "full_rank_unmatched", "partial", "origin", "not_converged",
           "diverged")


def settings(trials: int, m_trials: dict) -> list[tuple[str, mc.GeneralConfig, list, int]]:
    """(tag, config, rules, trials) of the sweep."""
    out = [(f"m{m}", mc.GeneralConfig(m=m, n=m + 2), PAIR, m_trials.get(m, trials)) for m in (1, 2, 3, 4)]
    out += [(f"m2_n{n}", mc.GeneralConfig(m=2, n=n), PAIR, trials) for n in (3, 8)]
    out += [(f"m2_lam{lo}-{hi}", mc.GeneralConfig(m=2, n=4, lam_range=(lo, hi)), PAIR, trials)
            for lo, hi in ((0.01, 0.03), (0.05, 0.1))]
    ema = [rules.ema(a)._replace(name=f"ema{a}") for a in (0.9, 0.999)]
    out += [("m2_alpha", mc.GeneralConfig(m=2, n=4), ema, trials)]
    out += [(f"m2_s{s}", mc.GeneralConfig(m=2, n=4, init_scale=s), PAIR, trials) for s in (0.2, 0.5, 2.0)]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=2000, help="trials per rule and setting (m <= 2)")
    p.add_argument("--trials-m3", type=int, default=1000)
    p.add_argument("--trials-m4", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="", help="comma-separated setting tags (default: all)")
    p.add_argument("--out", default="runs/montecarlo_m")
    args = p.parse_args(argv)
    only = {t for t in args.only.split(",") if t}
    rows, by_m = [], {}
    for tag, cfg, rule_list, trials in settings(args.trials, {3: args.trials_m3, 4: args.trials_m4}):
        if only and tag not in only:
            continue
        t0 = time.perf_counter()
        study = mc.general_study(trials, rule_list, cfg, seed=args.seed)
        summ = mc.write_general_study(os.path.join(args.out, tag), study, figures=tag.startswith("m") and "_" not in tag)
        if tag in {f"m{m}" for m in (1, 2, 3, 4)}:
            by_m[cfg.m] = summ
        for rule, s in summ["rules"].items():
            row = {"setting": tag, "m": cfg.m, "n": cfg.n, "lam_range": list(cfg.lam_range), "init_scale": cfg.init_scale,
                   "rule": rule, "trials": s["trials"], "seconds": round(time.perf_counter() - t0, 1),
                   "with_full_rank": summ["equilibria"]["with_full_rank"]["fraction"],
                   "complete": summ["equilibria"]["complete"]["fraction"],
                   **{c: s["fractions"][c]["fraction"] for c in COLUMNS},
                   "loewner_given_full_rank_exists": s["fractions_given_full_rank_exists"]["full_rank_loewner_max"]["fraction"],
                   "ended_at_saddle": s["ended_at_saddle"]["count"],
                   "saddle_components": s["components"]["saddle_components"],
                   "loewner_max_stable": s["components"]["loewner_max_stable"]["fraction"],
                   "unenumerated": s["unenumerated"]}
            rows.append(row)
            print(_line(row), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sweep.json"), "w") as fh:
        json.dump(rows, fh, indent=2)
    with open(os.path.join(args.out, "sweep.md"), "w") as fh:
        fh.write(table(rows))
    if len(by_m) > 1:
        general_figures.plot_fractions_vs_m(by_m, os.path.join(args.out, "fractions_vs_m.png"))
        general_figures.plot_fractions_vs_m(by_m, os.path.join(args.out, "fractions_vs_m_given_full_rank.png"),
                                            given_full_rank=True)
    return 0


def _line(r: dict) -> str:
    pct = " ".join(f"{100 * r[c]:5.1f}" for c in COLUMNS)
    return (f"{r['setting']:>16} {r['rule']:>8} {r['trials']:>6} | {pct} | saddle ends {r['ended_at_saddle']} "
            f"| saddle comps {r['saddle_components']} | {r['seconds']} s")


def table(rows: list[dict]) -> str:
    """The sweep as a markdown table (percent of trials)."""
    head = ("| setting | m | n | rule | trials | instances with a PD equilibrium | full rank, Loewner max | "
            "full rank, other | full rank, not enumerated | partial | origin | not conv. | diverged | Loewner max given PD exists | "
            "ends at a saddle | saddle components (first 256 instances) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['m']} | {r['n']} | {r['rule']} | {r['trials']} | {100 * r['with_full_rank']:.1f} | "
            + " | ".join(f"{100 * r[c]:.1f}" for c in COLUMNS)
            + f" | {100 * r['loewner_given_full_rank_exists']:.1f} | {r['ended_at_saddle']} | {r['saddle_components']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

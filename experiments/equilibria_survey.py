"""Survey of the full-rank SG / EMA equilibria over random generic data (Prop 4.5, Prop 4.10).

For each of ``--instances`` random instances per (m, kind), m ∈ {2, 3}, kind ∈ {gauss, aug}
(dualjax.linear.model.random_moments), λ = ``--lam``: all complex solutions of Prop 4.5's system by
homotopy continuation, the real and positive definite ones, and the SG and EMA (rate k) stability
class of every positive definite component at width n = m + 2. Writes ``survey.json`` (per-instance
records and the distributions) and ``survey.png`` (histograms of #PD and #stable per instance) to
``--out``.

    .venv/bin/python experiments/equilibria_survey.py --instances 200 --out runs/equilibria_survey
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

jax.config.update("jax_enable_x64", True)

from dualjax import rules  # noqa: E402
from dualjax.linear import equilibria as eq  # noqa: E402
from dualjax.linear import model  # noqa: E402
from dualjax.linear import stability as st  # noqa: E402


def survey_one(m, kind, seed, lam, k):
    mom = model.random_moments(jax.random.PRNGKey(seed), m, kind=kind)
    mom = model.Moments(*(np.asarray(x) for x in mom))
    sol = eq.solve_homotopy(mom.rho, mom.tau, lam, seed=seed)
    real = sol.real
    pd = [S for S in real if np.linalg.eigvalsh(S).min() > 0]
    n = m + 2
    classes, ema_classes, unstable = [], [], []
    for S in pd:
        r = st.analyze(S, mom, lam, n, rule=rules.sg())
        e = st.analyze(S, mom, lam, n, rule=rules.ema(), k=k)
        classes.append(r.kind)
        ema_classes.append(e.kind)
        unstable.append(r.n_unstable)
        assert r.zeros_match_orbit, "zero eigenvalues do not match the orbit dimension"
    traces = [float(np.trace(S)) for S in pd]
    stable_idx = [i for i, c in enumerate(classes) if c == st.STABLE]
    loewner_max = None
    if pd:
        top = pd[int(np.argmax(traces))]
        loewner_max = all(np.linalg.eigvalsh(top - S).min() > -1e-9 for S in pd)
    return {
        "m": m, "kind": kind, "seed": seed, "complex": sol.complex_count, "real": len(real), "pd": len(pd),
        "sg_classes": classes, "ema_classes": ema_classes, "n_unstable": unstable,
        "stable": len(stable_idx), "ema_stable": ema_classes.count(st.STABLE),
        "stable_is_max_trace": (stable_idx == [int(np.argmax(traces))]) if stable_idx else None,
        "max_trace_is_loewner_max": loewner_max,
        "existence_condition": eq.existence(mom, lam)["necessary_condition_holds"],
    }


def summarize(records):
    out = {}
    for (m, kind), group in sorted(_group(records).items()):
        with_pd = [r for r in group if r["pd"]]
        out[f"m={m} {kind}"] = {
            "instances": len(group),
            "complex_counts": dict(collections.Counter(r["complex"] for r in group)),
            "real_counts": dict(sorted(collections.Counter(r["real"] for r in group).items())),
            "pd_counts": dict(sorted(collections.Counter(r["pd"] for r in group).items())),
            "all_real_are_pd": all(r["real"] == r["pd"] for r in group),
            "stable_counts_given_pd": dict(sorted(collections.Counter(r["stable"] for r in with_pd).items())),
            "ema_stable_counts_given_pd": dict(sorted(collections.Counter(r["ema_stable"] for r in with_pd).items())),
            "stable_is_max_trace": sum(bool(r["stable_is_max_trace"]) for r in with_pd),
            "max_trace_is_loewner_max": sum(bool(r["max_trace_is_loewner_max"]) for r in with_pd),
            "n_unstable_per_pd": dict(sorted(collections.Counter(u for r in group for u in r["n_unstable"]).items())),
            "sg_ema_disagree": sum(r["sg_classes"] != r["ema_classes"] for r in group),
            "instances_with_pd": len(with_pd),
        }
    return out


def _group(records):
    g = collections.defaultdict(list)
    for r in records:
        g[(r["m"], r["kind"])].append(r)
    return g


def figure(records, path):
    import matplotlib.pyplot as plt

    groups = sorted(_group(records).items())
    fig, axes = plt.subplots(2, len(groups), figsize=(3.2 * len(groups), 6), squeeze=False)
    for j, ((m, kind), group) in enumerate(groups):
        pd = [r["pd"] for r in group]
        stable = [r["stable"] for r in group if r["pd"]]
        bins = np.arange(-0.5, 2**m + 1.5)
        axes[0, j].hist(pd, bins=bins, color="tab:blue", rwidth=0.8)
        axes[0, j].set_title(f"m={m}, {kind}: #PD equilibria")
        axes[1, j].hist(stable, bins=np.arange(-0.5, 3.5), color="tab:green", rwidth=0.8)
        axes[1, j].set_title("#stable (SG), given ≥1 PD")
        axes[1, j].set_xlabel("count per instance")
    axes[0, 0].set_ylabel("instances")
    axes[1, 0].set_ylabel("instances")
    fig.suptitle("Full-rank equilibria of linear SG (Prop 4.5) and their stability (Prop 4.10)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--instances", type=int, default=100, help="instances per (m, kind)")
    p.add_argument("--m", type=int, nargs="+", default=[2, 3])
    p.add_argument("--kinds", nargs="+", default=["gauss", "aug"])
    p.add_argument("--lam", type=float, default=0.05)
    p.add_argument("--k", type=float, default=1.0, help="EMA rate k")
    p.add_argument("--out", default="runs/equilibria_survey")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    t0 = time.perf_counter()
    jobs = [(m, kind, seed) for m in args.m for kind in args.kinds for seed in range(args.instances)]
    for m, kind, seed in tqdm(jobs, file=sys.stderr, desc="instances"):
        records.append(survey_one(m, kind, seed, args.lam, args.k))
    summary = summarize(records)
    (out / "survey.json").write_text(json.dumps({"lam": args.lam, "k": args.k, "seconds": time.perf_counter() - t0,
                                                 "summary": summary, "records": records}, indent=1))
    figure(records, out / "survey.png")
    print(json.dumps(summary, indent=1))
    print(f"wrote {out / 'survey.json'} and {out / 'survey.png'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Figures of the general-m study (issue 16), in the look of :mod:`dualjax.style` (each rule in its
colour) and the format of the path's suffix (png, svg or pdf).

* :func:`plot_outcomes` — per rule, the outcome fractions (full rank on the Loewner-maximal
  component / on another one, partial collapse, origin, not converged, diverged) and the end rank,
  with Wilson 95 % intervals;
* :func:`plot_endpoints` — the end points' S against the instance's components, in coordinates
  where every instance looks alike: the eigenvalues of S_max^{-1/2} S S_max^{-1/2}, S_max the
  Loewner-maximal component (at (1, 1)); other full-rank components lie in (0, 1]², rank-deficient
  ones on the axis λ_min = 0, the origin at 0;
* :func:`plot_fractions_vs_m` — the outcome fractions against m, one line per rule and outcome
  (the sweep of ``experiments/montecarlo_m.py``).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np

from dualjax import style
from dualjax.linear.montecarlo.endpoints import FULL_RANK, ORIGIN, PARTIAL

CATEGORIES = ("full_rank_loewner_max", "full_rank_other", "partial", "origin", "not_converged", "diverged")
COLORS = {"full_rank_loewner_max": "#1b9e77", "full_rank_other": "#7570b3", "partial": "#e6ab02",
          "origin": "#d95f02", "not_converged": "#999999", "diverged": "#e7298a"}


@style.styled
def plot_outcomes(summary: dict, path) -> str:
    """Outcome fractions and end ranks per rule, Wilson 95 % intervals as error bars."""
    rules_ = list(summary["rules"])
    m = summary["config"]["m"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(len(rules_), 1)
    for j, rule in enumerate(rules_):
        s = summary["rules"][rule]
        for ax, table, keys in ((axes[0], s["fractions"], CATEGORIES), (axes[1], s["by_rank"], [str(r) for r in range(m + 1)])):
            frac = np.array([table[k]["fraction"] for k in keys])
            ci = np.array([table[k]["ci95"] for k in keys]).T
            x = np.arange(len(keys)) + (j - (len(rules_) - 1) / 2) * width
            ax.bar(x, frac, width, label=style.rule_name_label(rule), yerr=np.abs(ci - frac), capsize=2,
                   color=style.rule_color(rule), gid=f"bars:{rule}")
    axes[0].set_xticks(range(len(CATEGORIES)), ["full rank,\nLoewner max", "full rank,\nother", "partial",
                                                "origin", "not\nconverged", "diverged"], fontsize=8)
    axes[1].set_xticks(range(m + 1), [str(r) for r in range(m + 1)])
    axes[0].set(ylabel="fraction of trials (95% Wilson interval)", xlabel="where the run ends")
    axes[1].set(ylabel="fraction of trials", xlabel="rank of $A$ at the end (converged at an equilibrium)")
    axes[0].legend()
    fig.suptitle(f"Where the dynamics end: m = {m}, n = {summary['config']['n']}, "
                 f"{summary['rules'][rules_[0]]['trials']} trials per rule")
    fig.tight_layout()
    return style.save(fig, path)


def normalized_eigs(S: np.ndarray, S_max: np.ndarray) -> np.ndarray:
    """Sorted eigenvalues of S_max^{-1/2} S S_max^{-1/2} (stacked over the leading axes)."""
    w, V = np.linalg.eigh(S_max)
    inv_root = (V / np.sqrt(w)[..., None, :]) @ np.swapaxes(V, -1, -2)
    return np.linalg.eigvalsh(inv_root @ S @ inv_root)


@style.styled
def plot_endpoints(study, path) -> str | None:
    """End points vs components in S_max-normalized coordinates (module doc), one panel per rule;
    only instances with a Loewner-maximal component. None if there is none."""
    enum = study.enumeration
    has = enum.loewner_max >= 0
    if not has.any():
        return None
    k = np.flatnonzero(has)
    S_max = enum.S[k, enum.loewner_max[k]]
    comps = normalized_eigs(np.nan_to_num(enum.S[k]), S_max[:, None])
    comp_rank = enum.rank[k]
    fig, axes = plt.subplots(1, len(study.columns), figsize=(4.6 * len(study.columns), 4.3), squeeze=False)
    for ax, (rule, c) in zip(axes[0], study.columns.items()):
        for r in range(study.cfg.m + 1):
            sel = comp_rank == r
            ax.scatter(comps[sel][:, 0], comps[sel][:, -1], s=40, facecolors="none", edgecolors=f"C{r}",
                       label=f"component, rank {r}")
        for code, color, label in ((FULL_RANK, "#1b9e77", "end: full rank"), (PARTIAL, "#e6ab02", "end: partial"),
                                   (ORIGIN, "#d95f02", "end: origin")):
            sel = (c["outcome"][k] == code)
            if sel.any():
                ends = normalized_eigs(c["S"][k][sel], S_max[sel])
                ax.scatter(ends[:, 0], ends[:, -1], s=6, color=color, label=label, zorder=3)
        ax.set_xlabel(r"$\lambda_{\min}(S_{\max}^{-1/2} S S_{\max}^{-1/2})$")
        ax.set_ylabel(r"$\lambda_{\max}(S_{\max}^{-1/2} S S_{\max}^{-1/2})$")
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"{style.rule_name_label(rule)}: {len(k)} instances with a Loewner max")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return style.save(fig, path)


@style.styled
def plot_fractions_vs_m(summaries: dict, path, *, given_full_rank: bool = False) -> str:
    """Outcome fractions against m ({m: summary}); one panel per outcome category, one line per rule."""
    ms = sorted(summaries)
    rules_ = list(summaries[ms[0]]["rules"])
    key = "fractions_given_full_rank_exists" if given_full_rank else "fractions"
    cats = CATEGORIES[:4]
    fig, axes = plt.subplots(1, len(cats), figsize=(3.6 * len(cats), 3.4), sharey=True)
    for ax, cat in zip(axes, cats):
        for rule in rules_:
            frac = np.array([summaries[m]["rules"][rule][key][cat]["fraction"] for m in ms])
            ci = np.array([summaries[m]["rules"][rule][key][cat]["ci95"] for m in ms]).T
            ax.errorbar(ms, frac, yerr=np.abs(ci - frac), marker="o", capsize=2, label=style.rule_name_label(rule),
                        color=style.rule_color(rule))
        ax.set_title(cat.replace("_", " "))
        ax.set_xlabel("input dimension $m$")
        ax.set_xticks(ms)
    axes[0].set_ylabel("fraction of trials" + (" (instance has a full-rank equilibrium)" if given_full_rank else ""))
    axes[0].legend()
    fig.tight_layout()
    return style.save(fig, path)


def general_figures(out_dir, study, summary, fmt: str = "png") -> dict:
    """The study's figures into ``out_dir``: ``outcomes.png`` and ``endpoints.png`` (or .svg / .pdf
    with ``fmt``); their paths."""
    figs = {"outcomes": plot_outcomes(summary, os.path.join(out_dir, style.figure_name("outcomes", fmt)))}
    end = plot_endpoints(study, os.path.join(out_dir, style.figure_name("endpoints", fmt)))
    if end is not None:
        figs["endpoints"] = end
    return figs

"""Statistics of a study: outcome fractions with Wilson 95 % intervals, overall and given
Δ ≥ 0 (Prop 4.11's spheres exist), the E- and F-increase shares (Prop 3.1) and step counts.

The paper reports 92.8 % (EMA) and 82.0 % (SG) of trials on the stable sphere S₂; :func:`summary`
puts those numbers beside ours (:data:`PAPER`).
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from dualjax.linear.montecarlo.config import DEFAULT_RANGES, P_DELTA_NONNEG, Config
from dualjax.linear.montecarlo.slots import INNER, ORIGIN, OUTCOMES, OUTER

# The paper's synthetic table (§4): the share of trials at S₂ ("outer") and at the origin.
PAPER = {"ema": {"outer": 0.928, "origin": 0.072}, "sg": {"outer": 0.820, "origin": 0.180}}


def wilson(k, n, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (95 % for the default z)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    # clamp the rounding at k = 0 or k = n, where an endpoint is exactly p
    return (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))


def share(mask: np.ndarray) -> dict:
    """Count, fraction and Wilson 95 % interval of the True entries of ``mask``."""
    k, total = int(mask.sum()), int(mask.size)
    return {"count": k, "fraction": k / total if total else float("nan"), "ci95": list(wilson(k, total))}


def _fractions(outcome: np.ndarray) -> dict:
    return {name: share(outcome == code) for code, name in enumerate(OUTCOMES)}


def summarize(columns: dict[str, np.ndarray]) -> dict:
    """Outcome fractions (overall and given Δ ≥ 0) with Wilson 95 % intervals, the Δ ≥ 0 share,
    the E- and F-increase shares and step statistics, for one rule's trials."""
    outcome = columns["outcome"]
    nonneg = columns["delta"] >= 0
    steps = columns["steps"]
    converged = (outcome == OUTER) | (outcome == ORIGIN) | (outcome == INNER)
    by_outcome = {}
    for code, name in enumerate(OUTCOMES):
        sel = outcome == code
        if sel.any():
            by_outcome[name] = {"e_increased": float(columns["e_increased"][sel].mean()),
                                "mean_steps": float(steps[sel].mean())}
    return {
        "trials": int(outcome.size),
        "fractions": _fractions(outcome),
        "fractions_given_delta_nonneg": _fractions(outcome[nonneg]),
        "fractions_given_delta_neg": _fractions(outcome[~nonneg]),
        "delta_nonneg": share(nonneg),
        "e_increased": share(columns["e_increased"]),
        "e_increased_given_delta_nonneg": share(columns["e_increased"][nonneg]),
        "f_increased": share(columns["f_increased"]),
        "by_outcome": by_outcome,
        "steps": {"mean": float(steps.mean()), "median": float(np.median(steps)), "max": int(steps.max()),
                  "mean_converged": float(steps[converged].mean()) if converged.any() else float("nan"),
                  "total": int(steps.sum())},
    }


def summary(results: dict[str, dict[str, np.ndarray]], cfg: Config, seed: int, **extra) -> dict:
    """JSON-ready summary of :func:`~dualjax.linear.montecarlo.run.study`'s results: per rule
    :func:`summarize`, the setup, the exact P(Δ ≥ 0) for the paper's ranges and the paper's values."""
    ranges_default = all(tuple(getattr(cfg, k)) == v for k, v in DEFAULT_RANGES.items())
    return {
        "config": asdict(cfg),
        "seed": seed,
        "delta_nonneg_exact": P_DELTA_NONNEG if ranges_default else None,
        "paper": {rule: dict(shares) for rule, shares in PAPER.items()},
        "rules": {rule: summarize(cols) for rule, cols in results.items()},
        **extra,
    }

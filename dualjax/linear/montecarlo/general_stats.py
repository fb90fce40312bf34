"""Statistics of a general-m study: outcome fractions with Wilson 95 % intervals per rule and per
end rank, overall and given that the instance has a full-rank equilibrium (the m > 1 analogue of
the m = 1 study's Δ ≥ 0), the share of full-rank ends on the Loewner-maximal component, the
Jacobian check of the end points, and what the equilibrium enumeration found.

The question the study answers (issue 16, against the summary's "saddles only for m = 1"):
do the dynamics ever end on a saddle component, and how often do they collapse partially?
"""

from __future__ import annotations

import numpy as np

from dualjax.linear.montecarlo.endpoints import FULL_RANK, JACOBIAN, OUTCOMES, PARTIAL
from dualjax.linear.montecarlo.stats import share


def _fractions(outcome: np.ndarray, loewner: np.ndarray, component: np.ndarray) -> dict:
    """The outcome shares; full rank split into on the Loewner-maximal component, on another
    enumerated one, and on none the enumeration found (possible where it is indicative, m ≥ 4)."""
    out = {name: share(outcome == code) for code, name in enumerate(OUTCOMES)}
    full = outcome == FULL_RANK
    out["full_rank_loewner_max"] = share(full & loewner)
    out["full_rank_other"] = share(full & ~loewner & (component >= 0))
    out["full_rank_unmatched"] = share(full & (component < 0))
    return out


def summarize_rule(c: dict, m: int) -> dict:
    """One rule's summary from its classified columns
    (:func:`~dualjax.linear.montecarlo.endpoints.classify_endpoints`)."""
    outcome, loewner, rank, comp = c["outcome"], c["loewner_max"], c["rank"], c["component"]
    exists = c["has_full_rank"]
    at_eq = outcome <= 2  # full_rank, partial, origin: converged at an equilibrium
    steps = c["steps"]
    landed = (outcome == FULL_RANK) | (outcome == PARTIAL)
    return {
        "trials": int(outcome.size),
        "fractions": _fractions(outcome, loewner, comp),
        "fractions_given_full_rank_exists": _fractions(outcome[exists], loewner[exists], comp[exists]),
        "fractions_given_no_full_rank": _fractions(outcome[~exists], loewner[~exists], comp[~exists]),
        "by_rank": {str(r): share(at_eq & (rank == r)) for r in range(m + 1)},
        "by_rank_given_full_rank_exists": {str(r): share((at_eq & (rank == r))[exists]) for r in range(m + 1)},
        "jacobian": {name: int(np.sum(at_eq & (c["jacobian"] == code))) for code, name in enumerate(JACOBIAN[:3])},
        "ended_at_saddle": share(at_eq & (c["jacobian"] == 1)),
        "unenumerated": int(np.sum(landed & ~c["enumerated"])),
        "max_final_residual_full_rank": float(np.max(c["final_residual"][outcome == FULL_RANK], initial=0.0)),
        "e_increased": share(c["e_increased"]),
        "steps": {"mean": float(steps.mean()), "median": float(np.median(steps)), "max": int(steps.max()),
                  "total": int(steps.sum())},
    }


def enumeration_summary(enum, m: int) -> dict:
    """What the batched solver found: complete instances, instances with a full-rank (PD) component and
    with a Loewner maximum among them, and components per instance by rank."""
    full = np.sum(enum.rank == m, axis=1)
    return {
        "instances": int(enum.count.size),
        "complete": share(np.asarray(enum.complete, bool)),
        "with_full_rank": share(full > 0),
        "with_loewner_max": share(enum.loewner_max >= 0),
        "full_rank_without_loewner_max": int(np.sum((full > 0) & (enum.loewner_max < 0))),
        "mean_components_by_rank": {str(r): float(np.mean(np.sum(enum.rank == r, axis=1))) for r in range(m + 1)},
        "full_rank_components_histogram": np.bincount(full).tolist(),
        "seconds": {k: float(v) for k, v in enum.seconds.items()},
    }


def components_summary(classes: np.ndarray, enum, m: int) -> dict:
    """The Jacobian check of the components of the first instances under one rule: counts by rank and
    class, and whether the Loewner-maximal component is stable where it exists."""
    K = classes.shape[0]
    rank = enum.rank[:K]
    by_rank = {str(r): {name: int(np.sum((rank == r) & (classes == code))) for code, name in enumerate(JACOBIAN[:3])}
               for r in range(m + 1)}
    lm = enum.loewner_max[:K]
    has = lm >= 0
    lm_class = classes[np.flatnonzero(has), lm[has]]
    pd_saddle = np.any((rank == m) & (classes == 1), axis=1)
    return {"instances": int(K), "by_rank": by_rank,
            "loewner_max_stable": share(lm_class == 0),
            "instances_with_saddle_full_rank_component": share(pd_saddle),
            "saddle_components": int(np.sum(classes == 1))}


def general_summary(study, **extra) -> dict:
    """JSON-ready summary of a :class:`~dualjax.linear.montecarlo.general.GeneralStudy`."""
    m = study.cfg.m
    return {
        "config": study.config_dict(),
        "seed": study.seed,
        "equilibria": enumeration_summary(study.enumeration, m),
        "rules": {name: summarize_rule(c, m) | {"components": components_summary(study.components[name],
                                                                                  study.enumeration, m)}
                  for name, c in study.columns.items()},
        "seconds": {k: float(v) for k, v in study.seconds.items()},
        **extra,
    }

"""The ``dualjax reproduce`` hook for Prop 4.5 / Cor 4.6 / Prop 4.7 (to be re-homed in ``dualjax/claims``)."""

from __future__ import annotations

import jax
import numpy as np

from dualjax.linear import model
from dualjax.linear.equilibria.enumeration import enumerate_equilibria
from dualjax.linear.equilibria.homotopy import solve_homotopy
from dualjax.linear.equilibria.varieties import field_residual, sample_variety


def quick_check(seed: int = 0) -> dict:
    """Measured values for ``dualjax reproduce``: an m = 2 instance, exact vs homotopy, Cor 4.6.

    Draws "gauss" data until an instance with a positive definite equilibrium appears, enumerates
    every equilibrium, and samples 4 points of each full-rank component at n = 4.
    """
    with jax.enable_x64(True):
        for trial in range(50):
            mom = model.random_moments(jax.random.PRNGKey(seed * 1000 + trial), 2, kind="gauss")
            lam = 0.05
            enum = enumerate_equilibria(mom, lam, n=4, method="exact", seed=seed)
            if enum.positive_definite:
                break
        hom = solve_homotopy(np.asarray(mom.rho), np.asarray(mom.tau), lam, seed=seed)
        diff = max((min(np.linalg.norm(S - T) for T in hom.real) for S in enum.real_full_rank), default=0.0)
        field_err, bb_err = 0.0, 0.0
        for k, e in enumerate(enum.positive_definite):
            As, Bs = sample_variety(e.S, mom, lam, 4, jax.random.PRNGKey(k), 4)
            for A, B in zip(As, Bs):
                field_err = max(field_err, field_residual(A, B, mom, lam))
                bb_err = max(bb_err, float(np.linalg.norm(B.T @ B - A @ A.T)))
    c = enum.counts()
    return {
        "m": 2,
        "instance_trial": trial,
        "complex_solutions_exact": c["complex_full_rank"],
        "complex_solutions_homotopy": hom.complex_count,
        "bezout_bound": c["bezout_bound"],
        "real_full_rank": c["real_full_rank"],
        "positive_definite": c["positive_definite"],
        "by_rank": c["by_rank"],
        "exact_vs_homotopy_max_diff": float(diff),
        "max_equation_residual": max(e.residual for e in enum.equilibria),
        "max_field_residual_on_varieties": field_err,
        "max_BtB_minus_AAt": bb_err,
        "necessary_condition_holds": enum.existence["necessary_condition_holds"],
    }

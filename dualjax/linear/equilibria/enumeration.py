"""Prop 4.5 / Cor 4.6 / Prop 4.7 — every SG / EMA equilibrium of the linear model, enumerated.

:func:`enumerate_equilibria` solves Prop 4.5's full-rank system with the right solver (the m = 1
closed form of Prop 4.11, :mod:`~dualjax.linear.equilibria.exact`,
:mod:`~dualjax.linear.equilibria.homotopy` or :mod:`~dualjax.linear.equilibria.newton`), adds the
rank-deficient solutions of equation (ii) and the origin, keeps the PSD ones as
:class:`Equilibrium` components (rank, residual of (ii), SG field residual at the Cor 4.6 point),
and records Prop 4.7's existence check, in an :class:`Enumeration`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dualjax import checks
from dualjax.linear import model
from dualjax.linear.equilibria.exact import solve_exact
from dualjax.linear.equilibria.homotopy import expected_complex_count, solve_homotopy
from dualjax.linear.equilibria.newton import rank_deficient_solutions, solve_newton
from dualjax.linear.equilibria.system import (
    bezout_bound,
    equilibrium_residual,
    existence,
    numerical_rank,
    validated_data,
)
from dualjax.linear.equilibria.varieties import equilibrium_point, field_residual
from dualjax.linear.spheres import discriminant, radii


@dataclass
class Equilibrium:
    """One equilibrium component, given by its Gram matrix S = AᵀA.

    residual: ‖M S M − S τᵀ S τ‖_F / (1 + ‖S‖²) (equation (ii));
    field_residual: ‖SG field‖ at the Cor 4.6 point with n = ``n`` (relative, see :func:`field_residual`);
    stability: filled by :func:`dualjax.linear.stability.classify_all` (None until then).
    """

    S: np.ndarray
    rank: int
    positive_definite: bool
    residual: float
    field_residual: float
    source: str
    stability: dict | None = None

    def to_json(self) -> dict:
        return {
            "S": np.asarray(self.S).tolist(),
            "rank": int(self.rank),
            "positive_definite": bool(self.positive_definite),
            "residual": float(max(self.residual, self.field_residual)),
            "equation_residual": float(self.residual),
            "field_residual": float(self.field_residual),
            "trace": float(np.trace(self.S)),
            "source": self.source,
            "stability": self.stability,
        }


@dataclass
class Enumeration:
    """Everything :func:`enumerate_equilibria` found for data (ρ, τ, λ) and width n."""

    m: int
    n: int
    lam: float
    method: str
    equilibria: list  # PSD equilibria: full-rank PD, rank-deficient, origin (sorted by rank, trace)
    real_full_rank: list  # every real symmetric solution of Prop 4.5's equation (PD or not)
    complex_count: int | None
    bezout: int
    existence: dict
    seconds: float
    notes: list = field(default_factory=list)
    moments: Any = None

    @property
    def positive_definite(self) -> list:
        return [e for e in self.equilibria if e.positive_definite]

    def counts(self) -> dict:
        by_rank: dict[int, int] = {}
        for e in self.equilibria:
            by_rank[e.rank] = by_rank.get(e.rank, 0) + 1
        return {
            "complex_full_rank": self.complex_count,
            "real_full_rank": len(self.real_full_rank),
            "positive_definite": len(self.positive_definite),
            "bezout_bound": self.bezout,
            "by_rank": by_rank,
            "total_psd": len(self.equilibria),
        }


def _make_eq(S, rho, tau, lam, n, source, mom):
    S = (np.asarray(S) + np.asarray(S).T) / 2
    rank = numerical_rank(S)
    m = S.shape[0]
    eigs = np.linalg.eigvalsh(S)
    pd = bool(eigs.min() > 1e-10 * max(1.0, float(abs(eigs).max())))
    res = float(np.linalg.norm(equilibrium_residual(S, rho, tau, lam)) / (1 + np.linalg.norm(S) ** 2))
    if eigs.min() < -1e-10 * max(1.0, float(abs(eigs).max())):  # not PSD: no point of the model
        return None
    A, B = equilibrium_point(S, mom, lam, max(n, rank))
    fres = field_residual(A, B, mom, lam)
    return Equilibrium(S, rank if rank < m else m, pd, res, fres, source)


def enumerate_equilibria(mom, lam, *, n: int | None = None, method: str = "auto", seed: int = 0,
                         rank_deficient: bool = True, starts: int = 256) -> Enumeration:
    """All SG / EMA equilibrium components of the linear model, as Gram matrices S (Prop 4.5).

    ``method`` for the full-rank equation: ``exact`` (sympy, m ≤ 3), ``homotopy`` (m ≤ 4 by
    default), ``newton`` (real roots only), ``closed`` (m = 1, Prop 4.11) or ``auto`` (closed for
    m = 1, exact for m ≤ 2, homotopy for m ≤ 4, newton beyond). ``rank_deficient`` adds the
    equilibria of rank 1..m−1 (many-start, indicative) and the origin. ``n`` (default m + 1) is
    the width used for the Cor 4.6 point at which the field residual is measured.
    """
    rho, tau, lam = validated_data(mom, lam)
    m = rho.shape[0]
    n = m + 1 if n is None else checks.check_positive_int(n, "n")
    if n <= m:
        raise ValueError(f"the linear model needs n > m, got n={n}, m={m}")
    mom = model.Moments(rho, tau, np.asarray(mom.sigma, float))
    if method == "auto":
        method = "closed" if m == 1 else "exact" if m <= 2 else "homotopy" if m <= 4 else "newton"
    if method not in ("closed", "exact", "homotopy", "newton"):
        raise ValueError(f"unknown method {method!r}; choose auto, closed, exact, homotopy or newton")
    t0 = time.perf_counter()
    notes = []
    complex_count = None
    if method == "closed":
        if m != 1:
            raise ValueError(f"method='closed' is the m = 1 formula of Prop 4.11, got m={m}")
        delta = float(discriminant(rho[0, 0], tau[0, 0], lam))
        complex_count = 2
        if delta >= 0:
            r1, r2 = (float(r) for r in radii(rho[0, 0], tau[0, 0], lam))
            real = [np.array([[r2**2]]), np.array([[r1**2]])]
        else:
            real = []
    elif method == "exact":
        sol = solve_exact(rho, tau, lam)
        real, complex_count = sol.real, sol.complex_count
    elif method == "homotopy":
        sol = solve_homotopy(rho, tau, lam, seed=seed)
        real, complex_count = sol.real, sol.complex_count
        expected = expected_complex_count(m)
        if expected is not None and complex_count < expected:
            notes.append(f"homotopy found {complex_count} of the {expected} complex roots seen for generic data "
                         f"at m={m} (the missing ones were complex in every surveyed case)")
    else:
        real = solve_newton(rho, tau, lam, seed=seed, starts=starts)
        notes.append("many-start Newton: real roots only, possibly incomplete")
    eqs = []
    for S in real:
        e = _make_eq(S, rho, tau, lam, n, method, mom)
        if e is not None:
            eqs.append(e)
    if rank_deficient:
        for r in range(1, m):
            for S in rank_deficient_solutions(rho, tau, lam, r, seed=seed + r, starts=starts):
                e = _make_eq(S, rho, tau, lam, n, "lm", mom)
                if e is not None:
                    eqs.append(e)
        eqs.append(_make_eq(np.zeros((m, m)), rho, tau, lam, n, "origin", mom))
    eqs.sort(key=lambda e: (-e.rank, -float(np.trace(e.S))))
    ex = existence(mom, lam)
    ex["exists"] = any(e.positive_definite for e in eqs)
    return Enumeration(m, n, lam, method, eqs, real, complex_count, bezout_bound(m), ex,
                       time.perf_counter() - t0, notes, mom)

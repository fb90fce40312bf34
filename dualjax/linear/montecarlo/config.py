"""Settings of the m = 1 study (paper §4, MATH.md §7): :class:`Config` and its validation.

The paper's law of one trial is ρ ~ U[0, 3], τ ~ U[−1, 1], λ ~ U[0.01, 0.1]
(:data:`DEFAULT_RANGES`); Prop 4.11's spheres exist when Δ = τ² − 4ρλ ≥ 0, which has the exact
probability :data:`P_DELTA_NONNEG` under that law.

**ρ = 0.** U[0, 3] contains ρ = 0, where Prop 4.11's radii are undefined (r₂ = ∞). Trials draw
ρ from the half-open interval (lo, hi] (:func:`dualjax.linear.montecarlo.trials.sample_trial`),
so ρ > 0 always with the same law; a range with lo < 0 or hi ≤ 0 is rejected here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dualjax import checks

# P(Δ ≥ 0) for ρ ~ U[0,3], τ ~ U[−1,1], λ ~ U[0.01,0.1] (MATH.md §7):
# 98/243 + 4√3/405 + (25/81) ln(6/5).
P_DELTA_NONNEG = 98 / 243 + 4 * math.sqrt(3) / 405 + 25 / 81 * math.log(6 / 5)
DEFAULT_RANGES = {"rho_range": (0.0, 3.0), "tau_range": (-1.0, 1.0), "lam_range": (0.01, 0.1)}


@dataclass(frozen=True)
class Config:
    """Settings of one study. Validate with :func:`check_config` (done by every entry point).

    n: embedding dimension (a ∈ R^n); eta: step η (the rules' own settings, e.g. EMA's α, are
    on the rule objects);
    init: ``torch`` (a ~ s·U[−1,1]^n, B ~ s·U[−1/√n, 1/√n]^{n×n}) or ``gauss``
    (a ~ N(0, s²/n I), B ~ N(0, s²/n²)); init_scale: s; max_steps: step budget; tol: increment
    tolerance; max_norm: divergence threshold on ‖(a, B)‖; rtol / origin_tol: classification.
    """

    n: int = 2
    eta: float = 0.05
    init: str = "torch"
    init_scale: float = 1.0
    max_steps: int = 60_000
    tol: float = 1e-8
    max_norm: float = 1e6
    rtol: float = 1e-3
    origin_tol: float = 1e-3
    rho_range: tuple[float, float] = DEFAULT_RANGES["rho_range"]
    tau_range: tuple[float, float] = DEFAULT_RANGES["tau_range"]
    lam_range: tuple[float, float] = DEFAULT_RANGES["lam_range"]


def check_config(cfg: Config) -> Config:
    """Every field checked; a bad one raises ValueError naming it and its value."""
    checks.check_positive_int(cfg.n, "n")
    if cfg.n < 2:
        raise ValueError(f"n must be >= 2 (the linear model needs n > m = 1), got n={cfg.n}")
    checks.check_positive(cfg.eta, "eta")
    if cfg.init not in ("torch", "gauss"):
        raise ValueError(f"init must be 'torch' or 'gauss', got {cfg.init!r}")
    checks.check_positive(cfg.init_scale, "init_scale")
    checks.check_positive_int(cfg.max_steps, "max_steps")
    for name in ("tol", "max_norm", "rtol", "origin_tol"):
        checks.check_positive(getattr(cfg, name), name)
    for name in DEFAULT_RANGES:
        lo, hi = _range(getattr(cfg, name), name)
        if name == "rho_range" and (lo < 0 or hi <= 0):
            raise ValueError(
                f"rho_range must satisfy 0 <= lo < hi (rho = E[x^2] > 0; rho is drawn from (lo, hi]), got {(lo, hi)}"
            )
        if name == "lam_range" and lo <= 0:
            raise ValueError(f"lam_range must have lo > 0 (Prop 4.11 needs lambda > 0), got {(lo, hi)}")
    return cfg


def _range(value, name):
    try:
        lo, hi = (float(v) for v in value)
    except Exception as err:
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be a finite interval with lo < hi, got {(lo, hi)}")
    return lo, hi

"""Shared arguments of ``dualjax equilibria | stability | integrability``: the data (ρ, τ, λ) given as
JSON matrices, or random generic data from ``--seed`` and ``--m``; ``--n``; ``--json``."""

from __future__ import annotations

import argparse
import json

import numpy as np


def add_data_arguments(parser: argparse.ArgumentParser, *, n_default: int | None = None) -> None:
    parser.add_argument("--rho", help="ρ = E[xxᵀ] as a JSON number or m×m matrix (positive definite)")
    parser.add_argument("--tau", help="τ = E[yxᵀ] as a JSON number or m×m matrix")
    parser.add_argument("--lam", type=float, default=0.05, help="weight decay λ > 0 (default 0.05)")
    parser.add_argument("--n", type=int, default=n_default, help="embedding dimension n > m (default m + 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random generic data (with --m)")
    parser.add_argument("--m", type=int, help="input dimension of random generic data (instead of --rho/--tau)")
    parser.add_argument("--kind", choices=("gauss", "aug"), default=None,
                        help="random data: 'gauss' (τ i.i.d. N(0,1), the default) or 'aug' (τ = (I + 0.3G)ρ)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def parse_matrix(text: str, name: str) -> np.ndarray:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--{name} must be a JSON number or matrix, got {text!r} ({err.msg})") from None
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be a JSON number or (rectangular) matrix of numbers, got {text!r}") from None
    return np.atleast_2d(arr)


def load_data(args):
    """(Moments, λ, n) from the arguments, validated (ValueError naming the bad value)."""
    import jax

    from dualjax import checks
    from dualjax.linear import model

    lam = checks.check_lambda(args.lam)
    if args.rho is not None or args.tau is not None:
        if args.rho is None or args.tau is None:
            raise ValueError("give both --rho and --tau (or --m with --seed for random data)")
        if args.m is not None:
            raise ValueError(f"--m={args.m} conflicts with --rho/--tau; give one or the other")
        mom = model.moments(parse_matrix(args.rho, "rho"), parse_matrix(args.tau, "tau"), strict=True)
    else:
        if args.m is None:
            raise ValueError("give --rho and --tau, or --m (with --seed) for random generic data")
        m = checks.check_positive_int(args.m, "m")
        with jax.enable_x64(True):
            mom = model.random_moments(jax.random.PRNGKey(args.seed), m, kind=args.kind or "gauss")
            mom = model.Moments(*(np.asarray(x, float) for x in mom))
    m = np.asarray(mom.rho).shape[0]
    n = m + 1 if args.n is None else args.n
    checks.check_positive_int(n, "n")
    if n <= m:
        raise ValueError(f"--n must exceed m (the linear model needs n > m), got n={n}, m={m}")
    return model.Moments(*(np.asarray(x, float) for x in mom)), lam, n


def fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not np.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)


def eta_cell(eta_max):
    """An η_max for a table: η_max = 0 means no step is stable (a saddle, or a zero real part)."""
    return "none (unstable)" if eta_max is not None and eta_max == 0 else eta_max


def table(rows: list[list], header: list[str]) -> str:
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def matrix_str(S) -> str:
    S = np.asarray(S)
    return "[" + "; ".join(" ".join(f"{v:.4g}" for v in row) for row in S) + "]"

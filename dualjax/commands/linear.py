"""``dualjax linear``: SG, EMA and plain (or any registered rules') dynamics of the linear model
from one initial point.

Argument parsing only; the work is :func:`dualjax.linear.example.run_example`, which writes
``OUT/linear_summary.json`` (per rule: status, steps, final ‖A‖, whether E increased, Bᵀ B − A Aᵀ,
the equilibrium equation's residual) and ``OUT/linear_dynamics.png`` (‖A_t‖ and E(θ_t, ψ_t) over
steps, with the m = 1 spheres when m = 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rho", default="1.0", help="ρ = E[xxᵀ] as a JSON number or matrix (default 1.0)")
    parser.add_argument("--tau", default="0.8", help="τ = E[yxᵀ] as a JSON number or matrix (default 0.8)")
    parser.add_argument("--lam", type=float, default=0.05, help="weight decay λ > 0 (default 0.05)")
    parser.add_argument("--n", type=int, default=4, help="embedding dimension n > m (default 4)")
    parser.add_argument("--eta", type=float, default=0.05, help="step size η (default 0.05)")
    parser.add_argument("--rules", default="plain,sg,ema", help="comma-separated registered rules (default plain,sg,ema)")
    parser.add_argument("--alpha", type=float, default=0.99,
                        help="EMA momentum α ∈ [0, 1] for rules with a momentum option (default 0.99)")
    parser.add_argument("--init-scale", type=float, default=0.15, help="init scale s (default 0.15)")
    parser.add_argument("--steps", type=int, default=20_000, help="step budget (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/linear", help="output folder")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _matrix(text: str, name: str) -> np.ndarray:
    from dualjax.commands._theory import parse_matrix

    try:
        return parse_matrix(text, name)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from dualjax import rules
    from dualjax.linear.example import run_example

    try:
        rules_ = [rules.resolve(name.strip(), momentum=args.alpha) for name in args.rules.split(",") if name.strip()]
        summary = run_example(_matrix(args.rho, "rho"), _matrix(args.tau, "tau"), args.lam, rules_=rules_, n=args.n,
                              eta=args.eta, init_scale=args.init_scale, steps=args.steps, seed=args.seed, out=args.out)
    except ValueError as err:
        raise SystemExit(f"dualjax linear: {err}") from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'rule':6} {'status':10} {'steps':>7} {'‖A‖':>10} {'E final':>10} {'E rose':>6} {'‖BᵀB−AAᵀ‖':>11}")
        for name, r in summary["rules"].items():
            print(f"{name:6} {r['status']:10} {r['steps']:7d} {r['final_norm_A']:10.4g} {r['E_final']:10.4g} "
                  f"{str(r['E_increased']):>6} {r['BtB_minus_AAt']:11.2e}")
        if "r2" in summary:
            print(f"m = 1 spheres: r1 = {summary['r1']:.4g}, r2 = {summary['r2']:.4g} (Δ = {summary['delta']:.4g})")
        print(f"wrote {summary['figure']} and {Path(args.out) / 'linear_summary.json'}")
    return 0

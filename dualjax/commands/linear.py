"""``dualjax linear``: SG, EMA and plain (or any registered rules') dynamics of the linear model
from one initial point.

Argument parsing only; the work is :func:`dualjax.linear.example.run_example`, which checks every
input and the output folder first, then writes ``OUT/linear_dynamics.png`` (‖A_t‖ and E(θ_t, ψ_t)
over steps, with the m = 1 spheres when m = 1) and last ``OUT/linear_summary.json`` (per rule:
status, steps, final ‖A‖, whether E increased, Bᵀ B − A Aᵀ, the equilibrium equation's residual).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rho", default="1.0", help="ρ = E[xxᵀ] as a JSON number or matrix (default 1.0)")
    parser.add_argument("--tau", default="0.8", help="τ = E[yxᵀ] as a JSON number or matrix (default 0.8)")
    parser.add_argument("--lam", type=float, default=0.05, help="weight decay λ > 0 (default 0.05)")
    parser.add_argument("--n", type=int, default=4, help="embedding dimension n > m (default 4)")
    parser.add_argument("--eta", type=float, default=0.05, help="step size η > 0 (default 0.05)")
    parser.add_argument("--rules", default="plain,sg,ema", help="comma-separated registered rules (default plain,sg,ema)")
    parser.add_argument("--alpha", type=float, default=0.99,
                        help="EMA momentum α ∈ [0, 1] for rules with a momentum option (default 0.99)")
    parser.add_argument("--init-scale", type=float, default=0.15, help="init scale s > 0 (default 0.15)")
    parser.add_argument("--steps", type=int, default=20_000, help="step budget ≥ 1 (default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/linear", help="output folder (empty, or --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace linear_summary.json and linear_dynamics.png in a non-empty --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from dualjax import outputs, rules
    from dualjax.commands._theory import parse_matrix
    from dualjax.linear.example import SUMMARY, run_example

    rules_ = [rules.resolve(name.strip(), momentum=args.alpha) for name in args.rules.split(",") if name.strip()]
    if not rules_:
        raise ValueError(f"--rules {args.rules!r} names no rule; choose from {list(rules.names())}")
    summary = run_example(parse_matrix(args.rho, "rho"), parse_matrix(args.tau, "tau"), args.lam, rules_=rules_,
                          n=args.n, eta=args.eta, init_scale=args.init_scale, steps=args.steps, seed=args.seed,
                          out=args.out, overwrite=args.overwrite)
    if args.json:
        print(outputs.dumps_strict(summary))
    else:
        print(f"{'rule':6} {'status':10} {'steps':>7} {'‖A‖':>10} {'E final':>10} {'E rose':>6} {'‖BᵀB−AAᵀ‖':>11}")
        for name, r in summary["rules"].items():
            print(f"{name:6} {r['status']:10} {r['steps']:7d} {r['final_norm_A']:10.4g} {r['E_final']:10.4g} "
                  f"{str(r['E_increased']):>6} {r['BtB_minus_AAt']:11.2e}")
        if "r2" in summary:
            print(f"m = 1 spheres: r1 = {summary['r1']:.4g}, r2 = {summary['r2']:.4g} (Δ = {summary['delta']:.4g})")
        print(f"wrote {summary['figure']} and {Path(args.out) / SUMMARY}")
    return 0

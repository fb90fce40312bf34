"""``dualjax montecarlo``: the m = 1 synthetic study (Prop 4.11, MATH.md §7).

    dualjax montecarlo --trials 10000 --rules sg,ema --seed 0 --out DIR

writes ``DIR/summary.json``, ``DIR/trials.csv`` and the PNG figures. The same seed gives the
same numbers on 1 device or 8 (``--devices``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dualjax import rules
    from dualjax.linear.montecarlo import Config

    d = Config()
    parser.add_argument("--trials", type=int, default=10_000, help="trials per rule (default 10000)")
    parser.add_argument("--rules", default="sg,ema",
                        help=f"comma-separated registered rules (default sg,ema; registered: {','.join(rules.names())})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n", type=int, default=d.n, help="embedding dimension (a in R^n)")
    parser.add_argument("--eta", type=float, default=d.eta, help="step size")
    parser.add_argument("--alpha", type=float, default=0.99, help="EMA momentum in [0, 1] (rules with a momentum option)")
    parser.add_argument("--init", choices=("torch", "gauss"), default=d.init)
    parser.add_argument("--init-scale", type=float, default=d.init_scale, help="scale s of the initial point")
    parser.add_argument("--max-steps", type=int, default=d.max_steps, help="step budget per trial")
    parser.add_argument("--tol", type=float, default=d.tol, help="convergence: parameter increment < tol")
    parser.add_argument("--chunk", type=int, default=2048, help="trial slots per device (bounds memory)")
    parser.add_argument("--devices", type=int, default=None, help="number of devices of the mesh (default all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the kernel engine (default: all cores; same results for any value)")
    parser.add_argument("--engine", choices=("auto", "kernel", "fast", "rules"), default="auto",
                        help="kernel: compiled CPU loop (numba); fast: XLA closed form (any device); rules: "
                             "autodiff of F. auto: kernel on CPU devices, fast on GPU/TPU")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")


def run(args: argparse.Namespace) -> int:
    from dualjax import rules as rules_lib
    from dualjax.linear import montecarlo as mc

    try:
        rules = [rules_lib.resolve(r.strip(), momentum=args.alpha) for r in args.rules.split(",") if r.strip()]
        cfg = mc.check_config(mc.Config(n=args.n, eta=args.eta, init=args.init,
                                        init_scale=args.init_scale, max_steps=args.max_steps, tol=args.tol))
        t0 = time.perf_counter()
        results = mc.study(args.trials, rules, cfg, seed=args.seed, engine=args.engine, chunk=args.chunk,
                           devices=args.devices, threads=args.threads, progress=True)
        elapsed = time.perf_counter() - t0
    except ValueError as err:
        print(f"dualjax montecarlo: error: {err}", file=sys.stderr)
        return 2
    import jax

    summ = mc.write_study(args.out, results, cfg, args.seed, rules_=rules, figures=not args.no_figures,
                          study_seconds=elapsed, devices=args.devices or len(jax.devices()),
                          platform=jax.devices()[0].platform)
    brief = {rule: {"outer": round(s["fractions"]["outer"]["fraction"], 4),
                    "origin": round(s["fractions"]["origin"]["fraction"], 4),
                    "outer_given_delta_nonneg": round(s["fractions_given_delta_nonneg"]["outer"]["fraction"], 4),
                    "e_increased": round(s["e_increased"]["fraction"], 4)}
             for rule, s in summ["rules"].items()}
    print(json.dumps({"out": args.out, "seconds": round(elapsed, 2), "rules": brief}, indent=2))
    return 0

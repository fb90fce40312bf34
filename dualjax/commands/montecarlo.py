"""``dualjax montecarlo``: the m = 1 synthetic study (Prop 4.11, MATH.md §7), or with ``--m M``
the study over general m (issue 16; every end point classified against every equilibrium).

    dualjax montecarlo --trials 10000 --rules sg,ema --seed 0 --out DIR
    dualjax montecarlo --m 2 --n 4 --trials 10000 --rules sg,ema,plain --out DIR

writes ``DIR/summary.json``, ``DIR/trials.csv`` and the PNG figures. The same seed gives the
same numbers on 1 device or 8 (``--devices``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dualjax.linear.montecarlo import Config

    d = Config()
    parser.add_argument("--trials", type=int, default=10_000, help="trials per rule (default 10000)")
    parser.add_argument("--rules", default="sg,ema", help="comma-separated subset of sg,ema (with --m > 1 also plain)")
    parser.add_argument("--m", type=int, default=1,
                        help="input dimension; 1 (default) is the paper's study, m > 1 the general study (issue 16)")
    parser.add_argument("--ensemble", choices=("paper", "wishart", "aug"), default="paper",
                        help="instance law of the general study (--m > 1); paper reduces to the paper's at m = 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--n", type=int, default=None,
                        help=f"embedding dimension (a in R^n; default {d.n}, and m + 2 with --m > 1)")
    parser.add_argument("--eta", type=float, default=d.eta, help="step size")
    parser.add_argument("--alpha", type=float, default=d.alpha, help="EMA momentum in [0, 1]")
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
    from dualjax.linear import montecarlo as mc

    if args.m != 1:
        return _run_general(args)
    args.n = mc.Config().n if args.n is None else args.n
    try:
        rules = [r.strip() for r in args.rules.split(",") if r.strip()]
        cfg = mc.check_config(mc.Config(n=args.n, eta=args.eta, alpha=args.alpha, init=args.init,
                                        init_scale=args.init_scale, max_steps=args.max_steps, tol=args.tol))
        t0 = time.perf_counter()
        results = mc.study(args.trials, rules, cfg, seed=args.seed, engine=args.engine, chunk=args.chunk,
                           devices=args.devices, threads=args.threads, progress=True)
        elapsed = time.perf_counter() - t0
    except ValueError as err:
        print(f"dualjax montecarlo: error: {err}", file=sys.stderr)
        return 2
    import jax

    summ = mc.write_study(args.out, results, cfg, args.seed, figures=not args.no_figures,
                          study_seconds=elapsed, devices=args.devices or len(jax.devices()),
                          platform=jax.devices()[0].platform)
    brief = {rule: {"outer": round(s["fractions"]["outer"]["fraction"], 4),
                    "origin": round(s["fractions"]["origin"]["fraction"], 4),
                    "outer_given_delta_nonneg": round(s["fractions_given_delta_nonneg"]["outer"]["fraction"], 4),
                    "e_increased": round(s["e_increased"]["fraction"], 4)}
             for rule, s in summ["rules"].items()}
    print(json.dumps({"out": args.out, "seconds": round(elapsed, 2), "rules": brief}, indent=2))
    return 0


def _run_general(args: argparse.Namespace) -> int:
    """``--m M`` with M > 1: :func:`dualjax.linear.montecarlo.general_study` (engine/threads do not apply)."""
    from dualjax.linear import montecarlo as mc

    try:
        rules = [r.strip() for r in args.rules.split(",") if r.strip()]
        cfg = mc.check_general_config(mc.GeneralConfig(
            m=args.m, n=args.m + 2 if args.n is None else args.n, eta=args.eta, alpha=args.alpha, init=args.init,
            init_scale=args.init_scale, max_steps=args.max_steps, tol=args.tol, ensemble=args.ensemble))
        study = mc.general_study(args.trials, rules, cfg, seed=args.seed, chunk=args.chunk, devices=args.devices,
                                 progress=True)
    except ValueError as err:
        print(f"dualjax montecarlo: error: {err}", file=sys.stderr)
        return 2
    summ = mc.write_general_study(args.out, study, figures=not args.no_figures)
    brief = {rule: {k: round(s["fractions"][k]["fraction"], 4)
                    for k in ("full_rank_loewner_max", "full_rank_other", "partial", "origin")}
             | {"ended_at_saddle": s["ended_at_saddle"]["count"]}
             for rule, s in summ["rules"].items()}
    print(json.dumps({"out": args.out, "m": args.m, "seconds": round(sum(study.seconds.values()), 2),
                      "rules": brief}, indent=2))
    return 0

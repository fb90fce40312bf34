"""``dualjax montecarlo``: the m = 1 synthetic study (Prop 4.11, MATH.md §7).

    dualjax montecarlo --trials 10000 --rules sg,ema --seed 0 --out DIR [--overwrite]

writes ``DIR/trials.csv``, the PNG figures and last ``DIR/summary.json`` (each atomically; a
``DIR`` without summary.json is an interrupted study). ``DIR`` must be empty unless
``--overwrite``. The study's settings are flags generated from
:class:`dualjax.linear.montecarlo.Config` (``--n``, ``--eta``, ``--init-scale``, ...). The same
seed gives the same numbers on 1 device or 8 (``--devices``).
"""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dualjax import configs, rules
    from dualjax.linear.montecarlo import Config

    parser.add_argument("--trials", type=int, default=10_000, help="trials per rule (default 10000)")
    parser.add_argument("--rules", default="sg,ema",
                        help=f"comma-separated registered rules (default sg,ema; registered: {','.join(rules.names())})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (empty, or --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace summary.json, trials.csv and the PNGs in a non-empty --out")
    configs.add_flags(parser.add_argument_group("study settings (dualjax.linear.montecarlo.Config)"), Config)
    parser.add_argument("--alpha", type=float, default=0.99,
                        help="EMA momentum α ∈ [0, 1] of the rules with a momentum option (default 0.99)")
    parser.add_argument("--chunk", type=int, default=2048, help="trial slots per device (bounds memory)")
    parser.add_argument("--devices", type=int, default=None, help="number of devices of the mesh (default all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the kernel engine (default: all cores; same results for any value)")
    parser.add_argument("--engine", choices=("auto", "kernel", "fast", "rules"), default="auto",
                        help="kernel: compiled CPU loop (numba); fast: XLA closed form (any device); rules: "
                             "autodiff of F. auto: kernel on CPU devices, fast on GPU/TPU")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")


def run(args: argparse.Namespace) -> int:
    import jax

    from dualjax import checks, configs, outputs
    from dualjax import rules as rules_lib
    from dualjax.linear import montecarlo as mc

    checks.check_positive_int(args.trials, "trials")
    rules = [rules_lib.resolve(r.strip(), momentum=args.alpha) for r in args.rules.split(",") if r.strip()]
    if not rules:
        raise ValueError(f"--rules {args.rules!r} names no rule; choose from {list(rules_lib.names())}")
    cfg = mc.check_config(configs.from_flags(args, mc.Config()))
    outputs.check(args.out, overwrite=args.overwrite)
    if not args.no_figures:  # the basin maps' n = 2 kernels, compiled meanwhile, after the study's own
        mc.kernel.prefetch(mc.kernels_needed(rules, cfg.n, args.engine) + mc.kernels_needed(rules, 2))
    t0 = time.perf_counter()
    results = mc.study(args.trials, rules, cfg, seed=args.seed, engine=args.engine, chunk=args.chunk,
                       devices=args.devices, threads=args.threads, progress=True)
    elapsed = time.perf_counter() - t0
    summ = mc.write_study(args.out, results, cfg, args.seed, rules_=rules, figures=not args.no_figures,
                          overwrite=args.overwrite,
                          study_seconds=elapsed, devices=args.devices or len(jax.devices()),
                          platform=jax.devices()[0].platform)
    brief = {rule: {name: round(s["fractions"][name]["fraction"], 4) for name in ("outer", "origin", "diverged")}
             | {"outer_given_delta_nonneg": round(s["fractions_given_delta_nonneg"]["outer"]["fraction"], 4),
                "e_increased": round(s["e_increased"]["fraction"], 4)}
             for rule, s in summ["rules"].items()}
    print(json.dumps({"out": args.out, "seconds": round(elapsed, 2), "rules": brief}, indent=2))
    return 0

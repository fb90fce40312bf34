"""``dualjax montecarlo``: the m = 1 synthetic study (Prop 4.11, MATH.md §7), or with ``--m M``
the study over general m (issue 16; every end point classified against every equilibrium).

    dualjax montecarlo --trials 10000 --rules sg,ema --seed 0 --out DIR [--overwrite]
    dualjax montecarlo --m 2 --n 4 --trials 10000 --rules sg,ema,plain --out DIR

writes ``DIR/trials.csv``, the PNG figures and last ``DIR/summary.json`` (each atomically; a
``DIR`` without summary.json is an interrupted study). ``DIR`` must be empty unless
``--overwrite``. The study's settings are flags generated from
:class:`dualjax.linear.montecarlo.Config` (``--n``, ``--eta``, ``--init-scale``, ...) and, for
``--m`` > 1, :class:`dualjax.linear.montecarlo.GeneralConfig` (``--ensemble``, ``--aug-scale``).
The same seed gives the same numbers on 1 device or 8 (``--devices``).
"""

from __future__ import annotations

import argparse
import json
import time

from dualjax import style


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dualjax import configs, rules
    from dualjax.linear.montecarlo import Config, GeneralConfig

    parser.add_argument("--trials", type=int, default=10_000, help="trials per rule (default 10000)")
    parser.add_argument("--rules", default="sg,ema",
                        help=f"comma-separated registered rules (default sg,ema; registered: {','.join(rules.names())})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder (empty, or --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace summary.json, trials.csv and the PNGs in a non-empty --out")
    parser.add_argument("--m", type=int, default=1,
                        help="input dimension; 1 (default) is the paper's study, m > 1 the general study (issue 16; "
                             "--n then defaults to m + 2)")
    configs.add_flags(parser.add_argument_group("study settings (dualjax.linear.montecarlo.Config)"), Config)
    configs.add_flags(parser.add_argument_group("general-m study settings, --m > 1 (GeneralConfig)"), GeneralConfig,
                      only=("ensemble", "aug_scale"))
    parser.add_argument("--alpha", type=float, default=0.99,
                        help="EMA momentum α ∈ [0, 1] of the rules with a momentum option (default 0.99)")
    parser.add_argument("--chunk", type=int, default=2048, help="trial slots per device (bounds memory)")
    parser.add_argument("--devices", type=int, default=None, help="number of devices of the mesh (default all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the kernel engine (default: all cores; same results for any value)")
    parser.add_argument("--engine", choices=("auto", "kernel", "fast", "rules"), default="auto",
                        help="kernel: compiled CPU loop (numba, m = 1 only); fast: XLA closed form of the SG / EMA "
                             "step (any device, any m); rules: autodiff of F (any rule). auto: at m = 1 kernel on "
                             "CPU devices, fast on GPU/TPU; for --m > 1 fast for SG / EMA when n <= 4, else rules")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument("--format", default="png", choices=style.FORMATS,
                        help="file format of the figures (default png; svg / pdf for papers)")


def run(args: argparse.Namespace) -> int:
    import jax

    from dualjax import checks, configs, outputs
    from dualjax import rules as rules_lib
    from dualjax.linear import montecarlo as mc

    checks.check_positive_int(args.trials, "trials")
    checks.check_positive_int(args.m, "m")
    rules = [rules_lib.resolve(r.strip(), momentum=args.alpha) for r in args.rules.split(",") if r.strip()]
    if not rules:
        raise ValueError(f"--rules {args.rules!r} names no rule; choose from {list(rules_lib.names())}")
    if args.m != 1:
        return _run_general(args, rules)
    cfg = mc.check_config(configs.from_flags(args, mc.Config()))
    outputs.check(args.out, overwrite=args.overwrite)
    if not args.no_figures:  # the basin maps' n = 2 kernels, compiled meanwhile, after the study's own
        mc.kernel.prefetch(mc.kernels_needed(rules, cfg.n, args.engine) + mc.kernels_needed(rules, 2))
    t0 = time.perf_counter()
    results = mc.study(args.trials, rules, cfg, seed=args.seed, engine=args.engine, chunk=args.chunk,
                       devices=args.devices, threads=args.threads, progress=True)
    elapsed = time.perf_counter() - t0
    summ = mc.write_study(args.out, results, cfg, args.seed, rules_=rules, figures=not args.no_figures, fmt=args.format,
                          overwrite=args.overwrite,
                          study_seconds=elapsed, devices=args.devices or len(jax.devices()),
                          platform=jax.devices()[0].platform)
    brief = {rule: {name: round(s["fractions"][name]["fraction"], 4) for name in ("outer", "origin", "diverged")}
             | {"outer_given_delta_nonneg": round(s["fractions_given_delta_nonneg"]["outer"]["fraction"], 4),
                "e_increased": round(s["e_increased"]["fraction"], 4)}
             for rule, s in summ["rules"].items()}
    print(json.dumps({"out": args.out, "seconds": round(elapsed, 2), "rules": brief}, indent=2))
    return 0


def _run_general(args: argparse.Namespace, rules: list) -> int:
    """``--m M`` with M > 1: :func:`dualjax.linear.montecarlo.general_study` with ``--engine`` (auto, fast or
    rules; ``--threads`` does not apply)."""
    from dualjax import configs, outputs
    from dualjax.linear import montecarlo as mc

    cfg = mc.check_general_config(configs.from_flags(args, mc.GeneralConfig(m=args.m, n=args.m + 2)))
    outputs.check(args.out, overwrite=args.overwrite)
    study = mc.general_study(args.trials, rules, cfg, seed=args.seed, engine=args.engine, chunk=args.chunk,
                             devices=args.devices, progress=True)
    summ = mc.write_general_study(args.out, study, figures=not args.no_figures, overwrite=args.overwrite,
                                  fmt=args.format)
    brief = {rule: {k: round(s["fractions"][k]["fraction"], 4)
                    for k in ("full_rank_loewner_max", "full_rank_other", "partial", "origin")}
             | {"ended_at_saddle": s["ended_at_saddle"]["count"]}
             for rule, s in summ["rules"].items()}
    print(json.dumps({"out": args.out, "m": args.m, "seconds": round(sum(study.seconds.values()), 2),
                      "rules": brief}, indent=2))
    return 0

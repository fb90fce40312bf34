"""``dualjax reproduce``: the README's main job — every claim of the paper, measured, with a report.

Argument parsing and the summary table only; the claims live in :mod:`dualjax.claims`. The
output folder must be empty unless ``--overwrite`` (which removes what a reproduction wrote:
:data:`dualjax.claims.OUTPUTS`); ``report.json`` is written last, so a folder without it is an
interrupted reproduction."""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quick", help="output folder (default runs/quick; empty, or --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier reproduction in --out (its report, figures and run folders)")
    parser.add_argument("--full", action="store_true", help="the paper's sizes (10,000 trials, longer V-JEPA runs)")
    parser.add_argument("--only", default=None, help="comma-separated claim keys to run (default: all)")


def run(args: argparse.Namespace) -> int:
    import jax

    from dualjax import claims
    from dualjax.claims.report import write_report

    only = claims.parse_only(args.only)
    t0 = time.perf_counter()
    results = claims.run_all(args.out, full=args.full, only=only, overwrite=args.overwrite,
                             progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    meta = {"mode": "full" if args.full else "quick", "seconds": time.perf_counter() - t0,
            "devices": f"{jax.device_count()} × {jax.devices()[0].platform}", "jax": jax.__version__}
    paths = write_report(results, meta, args.out)
    width = max(len(r.title) for r in results)
    print(f"\n{'claim':{width}}  verdict")
    for r in results:
        print(f"{r.title:{width}}  {r.verdict}")
    print(f"\nreport: {paths['md']}  {paths['html']}")
    return 0 if all(r.verdict != "failed to run" for r in results) else 1

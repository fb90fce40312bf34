"""``dualjax reproduce``: the README's main job — every claim of the paper, measured, with a report.

Argument parsing and the summary table only; the claims live in :mod:`dualjax.claims`."""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quick", help="output folder (default runs/quick)")
    parser.add_argument("--full", action="store_true", help="the paper's sizes (10,000 trials, longer V-JEPA runs)")
    parser.add_argument("--only", default="", help="comma-separated claim keys to run (default: all)")


def run(args: argparse.Namespace) -> int:
    import jax

    from dualjax import claims
    from dualjax.claims.report import write_report

    only = [k.strip() for k in args.only.split(",") if k.strip()] or None
    t0 = time.perf_counter()
    try:
        results = claims.run_all(args.out, full=args.full, only=only,
                                 progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except ValueError as err:
        raise SystemExit(f"dualjax reproduce: {err}") from None
    meta = {"mode": "full" if args.full else "quick", "seconds": time.perf_counter() - t0,
            "devices": f"{jax.device_count()} × {jax.devices()[0].platform}", "jax": jax.__version__}
    paths = write_report(results, meta, args.out)
    width = max(len(r.title) for r in results)
    print(f"\n{'claim':{width}}  verdict")
    for r in results:
        print(f"{r.title:{width}}  {r.verdict}")
    print(f"\nreport: {paths['md']}  {paths['html']}")
    return 0 if all(r.verdict != "failed to run" for r in results) else 1

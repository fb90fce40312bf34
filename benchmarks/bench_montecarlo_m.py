"""Throughput of the general-m Monte Carlo (issue 16): trials, equilibria, classification.

The issue's target: 10,000 trials per rule at m = 2 (n = 4) and 2,000 at m = 3 (n = 5), SG and EMA,
equilibria included, in at most 5 minutes on the 2-core development machine. One
:func:`dualjax.linear.montecarlo.general_study` per size, from a fresh process state (compilation
included, and reported apart where it can be: ``--warm`` runs a small study of each size first),
printing per size: the equilibria (batched solver) time, per rule the run time and trials/s and the
classification time, the total, the process CPU time and the load average (the machine is shared).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_montecarlo_m.py [--warm] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

from dualjax import rules
from dualjax.linear import montecarlo as mc

SIZES = ((2, 4, 10_000), (3, 5, 2_000))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warm", action="store_true", help="compile with a 64-trial study of each size first")
    p.add_argument("--sizes", default="", help="e.g. 2:4:10000,3:5:2000 (m:n:trials)")
    p.add_argument("--out", default=None, help="write the timings as JSON here")
    p.add_argument("--write", default=None,
                   help="also write each study (summary.json, trials.csv) under WRITE/m{m} (--overwrite semantics)")
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",")] if args.sizes else SIZES
    print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}; cores: {os.cpu_count()}; "
          f"load average at start: {os.getloadavg()}", flush=True)
    rows = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for m, n, trials in sizes:
        cfg = mc.GeneralConfig(m=m, n=n)
        if args.warm:
            t0 = time.perf_counter()
            mc.general_study(64, [rules.sg(), rules.ema()], cfg, seed=1)
            print(f"m={m}: warm-up (compilation) {time.perf_counter() - t0:.1f} s", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        study = mc.general_study(trials, [rules.sg(), rules.ema()], cfg, seed=0)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sec = study.seconds
        row = {"m": m, "n": n, "trials": trials, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "equilibria_s": round(sec["equilibria"], 1), "load_average": os.getloadavg()}
        for rule in ("sg", "ema"):
            steps = int(study.columns[rule]["steps"].sum())
            row[rule] = {"run_s": round(sec[f"run_{rule}"], 1), "trials_per_s": round(trials / sec[f"run_{rule}"], 1),
                         "trial_steps_per_s": round(steps / sec[f"run_{rule}"]),
                         "classify_s": round(sec[f"classify_{rule}"], 1)}
        if args.write:
            mc.write_general_study(os.path.join(args.write, f"m{m}"), study, figures=False, overwrite=True)
        e = study.enumeration
        row["complete"] = float(e.complete.mean())
        rows.append(row)
        print(json.dumps(row), flush=True)
    total = time.perf_counter() - wall0
    print(f"total {total:.1f} s wall, {time.process_time() - cpu0:.1f} s CPU (target <= 300 s); "
          f"load average at end: {os.getloadavg()}", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"rows": rows, "total_s": total}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of the collapse monitor in the V-JEPA step (docs/collapse.md).

    .venv/bin/python benchmarks/bench_collapse.py [--config tiny] [--rounds 30] [--steps 5]

Three jitted steps of one preset: without the collapse metrics, with them skipped (a step that
is not logged: the ``lax.cond`` branch that returns NaN) and with them computed (every step
logged). Reported per step: the minimum and the median over ``--rounds`` interleaved rounds of
``--steps`` steps of the process CPU time (``time.process_time``: robust on a shared machine),
and the overhead against the step without metrics. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time


def main(argv=None) -> int:
    import jax
    import numpy as np

    from dualjax import collapse
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa import data
    from dualjax.vjepa import step as step_lib

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="tiny")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    base = dataclasses.replace(config_lib.load(args.config), num_devices=1)

    def make(kind: str):
        # a step counter that never reaches a log step (log_every huge) or always does (log_every 1)
        cfg = dataclasses.replace(base, log_every=1 if kind == "computed" else 10**6, steps=10**6 + 1,
                                  warmup_steps=10)
        metrics = collapse.feature_metrics
        if kind == "none":
            collapse.feature_metrics = lambda *a, **k: {}  # traced once, inside build's step
        try:
            setup = step_lib.build(cfg)
            fn = jax.jit(setup.train_step)
            state = setup.init()
            src = data.make_source(cfg, "train")
            batch = step_lib.device_batch(next(data.train_batches(src, setup.masks, cfg.batch_size, cfg.data_seed, 2)))
            for _ in range(2):  # compile, then leave step 0 behind
                state, m = fn(state, batch)
            jax.block_until_ready(m)
        finally:
            collapse.feature_metrics = metrics
        return [fn, state, batch]

    runs = {kind: make(kind) for kind in ("none", "skipped", "computed")}
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    for _ in range(args.rounds):
        for kind, run in runs.items():
            fn, state, batch = run
            t0 = time.process_time()
            for _ in range(args.steps):
                state, m = fn(state, batch)
            jax.block_until_ready(m)
            times[kind].append((time.process_time() - t0) / args.steps)
            run[1] = state
    ref_min, ref_med = min(times["none"]), float(np.median(times["none"]))
    out = {"config": args.config, "rounds": args.rounds, "steps": args.steps, "device": jax.devices()[0].device_kind}
    for kind, ts in times.items():
        out[kind] = {"cpu_ms_min": 1e3 * min(ts), "cpu_ms_median": 1e3 * float(np.median(ts)),
                     "overhead_min_pct": 100 * (min(ts) - ref_min) / ref_min,
                     "overhead_median_pct": 100 * (float(np.median(ts)) - ref_med) / ref_med}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

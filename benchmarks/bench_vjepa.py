"""V-JEPA training-step benchmark: compile time, clips/s, peak memory, achieved FLOP/s.

    .venv/bin/python benchmarks/bench_vjepa.py [--models tiny,small] [--frames 16 --size 64]
        [--batch 4] [--steps 3] [--teacher ema] [--cache DIR] [--set KEY=VALUE ...] [--out runs/bench_vjepa.json]

One full V-JEPA step (teacher forward, two masked context passes, predictor, backward, AdamW,
teacher update) of the reference architecture (full-depth ViT variant, predictor 384 wide and
12 deep, tubelets 2×16×16) at the stated clip size. Reported:

* compile: seconds for ``jit(train_step).lower(...).compile()`` (separately from the steps), wall
  and process CPU time (the compiler is mostly one thread, so its CPU time is the wall time it
  would take on an idle core; a shared machine stretches the wall time); cold
  unless ``--cache DIR`` names a persistent compilation cache that already holds the step (a
  second run on the same DIR measures the warm compile, :mod:`dualjax.cache`);
* clips/s: batch / step time, the median over the timed steps after one warm-up step (as the peer,
  ``benchmarks/bench_vjepa_peer.py``); ``step_cpu_s`` is the process CPU time of a step (all
  threads: the work done, less stretched by other jobs than the wall time);
* peak memory: XLA's buffer assignment for the step (arguments + outputs + temporaries − aliased),
  the device's ``peak_bytes_in_use`` where the backend reports it (GPU), and the process max RSS;
* FLOP/s: XLA's cost analysis of the step / step time; on a GPU also the model-FLOPs utilisation
  against the card's dense bf16/fp32 peak given by ``--peak-tflops``. XLA counts the body of a loop
  once, so the FLOPs are counted on the step lowered with its blocks unrolled
  (``block_unroll`` = depth; lowered, not compiled): the same arithmetic as the scanned step.

``--set KEY=VALUE`` overrides a config field (e.g. ``block_unroll=2``, ``remat=true``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path


def bench_one(model: str, args) -> dict:
    import jax

    from dualjax.configs import override
    from dualjax.vjepa import data
    from dualjax.vjepa.config import Config
    from dualjax.vjepa.parallel import compiler_options
    from dualjax.vjepa.step import build, device_batch, xla_flops

    if args.cache:
        from dualjax import cache

        cache.enable(args.cache)
    cfg = override(override(Config(), args.set), {
        "model": model, "frames": args.frames, "size": args.size, "tubelet": 2, "patch": args.patch,
        "batch_size": args.batch, "teacher": args.teacher, "steps": 1000, "warmup_steps": 10,
        "num_train": max(64, args.batch * (args.steps + 2)), "pred_width": args.pred_width,
        "pred_depth": args.pred_depth, "compute_dtype": "float32",
    }).validate()
    setup = build(cfg)
    state = setup.init()
    it = data.train_batches(data.make_source(cfg, "train"), setup.masks, cfg.batch_size, 0, args.steps + 2)
    batches = [jax.device_put(device_batch(b)) for b in it]
    step = jax.jit(setup.train_step, donate_argnums=0,  # --set codegen=o1|o0: the trainer's options
                   compiler_options=compiler_options(setup.cfg, jax.devices()[:1]))
    t0, c0 = time.perf_counter(), time.process_time()
    compiled = step.lower(state, batches[0]).compile()
    compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    mem = compiled.memory_analysis()
    xla_peak = None
    if mem is not None:
        xla_peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                    - mem.alias_size_in_bytes)
    state, m = compiled(state, batches[0])
    jax.block_until_ready(m)
    times, cpu = [], []
    for b in batches[1:args.steps + 1]:
        t0, c0 = time.perf_counter(), time.process_time()
        state, m = compiled(state, b)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    dt = statistics.median(times)
    flops = xla_flops(cfg, state, batches[0])
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    n_params = sum(x.size for x in jax.tree.leaves((state.theta, state.psi)))
    out = {
        "model": model, "device": dev.device_kind, "platform": dev.platform,
        "clip": f"{cfg.frames}x{cfg.size}x{cfg.size}", "tokens": setup.masks.num_tokens,
        "batch": cfg.batch_size, "teacher": cfg.teacher, "params_M": n_params / 1e6,
        "predictor": f"{cfg.pred_width}/{cfg.pred_depth}",
        "compile_s": compile_s, "compile_cpu_s": compile_cpu_s, "step_s": dt, "step_cpu_s": statistics.median(cpu), "clips_per_s": cfg.batch_size / dt,
        "step_gflop": flops / 1e9, "achieved_gflops": flops / dt / 1e9,
        "xla_peak_MiB": xla_peak / 2**20 if xla_peak is not None else None,
        "device_peak_MiB": stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None,
        "max_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "F": float(m["F"]),
    }
    if args.peak_tflops:
        out["mfu"] = flops / dt / (args.peak_tflops * 1e12)
    return out


def main(argv=None) -> int:
    from dualjax import rules

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="tiny,small")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--teacher", default="ema", choices=rules.names())
    p.add_argument("--pred-width", type=int, default=384)
    p.add_argument("--pred-depth", type=int, default=12)
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (e.g. 989 for H100 bf16)")
    p.add_argument("--cache", default="", help="persistent compilation cache folder (default: none, cold compile)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--out", default="runs/bench_vjepa.json")
    args = p.parse_args(argv)
    rows = []
    for model in args.models.split(","):
        row = bench_one(model, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print("| model | device | clip (tokens) | batch | params | compile s (CPU s) | clips/s | GFLOP/step | GFLOP/s "
          "| XLA peak MiB | max RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['clip']} ({r['tokens']}) | {r['batch']} | {r['params_M']:.1f}M | "
              f"{r['compile_s']:.1f} ({r['compile_cpu_s']:.1f}) | {r['clips_per_s']:.2f} | {r['step_gflop']:.1f} | {r['achieved_gflops']:.1f} | "
              f"{r['xla_peak_MiB']:.0f} | {r['max_rss_MiB']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

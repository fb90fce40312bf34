"""V-JEPA training-step benchmark: compile time, clips/s, peak memory, achieved FLOP/s.

    .venv/bin/python benchmarks/bench_vjepa.py [--models tiny,small] [--frames 16 --size 64]
        [--batch 4] [--steps 3] [--teacher ema] [--out runs/bench_vjepa.json]

One full V-JEPA step (teacher forward, two masked context passes, predictor, backward, AdamW,
teacher update) of the reference architecture (full-depth ViT variant, predictor 384 wide and
12 deep, tubelets 2×16×16) at the stated clip size. Reported:

* compile: seconds for ``jit(train_step).lower(...).compile()`` (separately from the steps);
* clips/s: batch × timed steps / wall time, after one warm-up step;
* peak memory: XLA's buffer assignment for the step (arguments + outputs + temporaries − aliased),
  the device's ``peak_bytes_in_use`` where the backend reports it (GPU), and the process max RSS;
* FLOP/s: XLA's cost analysis of the compiled step / step time; on a GPU also the model-FLOPs
  utilisation against the card's dense bf16/fp32 peak given by ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def bench_one(model: str, args) -> dict:
    import jax

    from dualjax.configs import override
    from dualjax.vjepa import data
    from dualjax.vjepa.config import Config
    from dualjax.vjepa.step import build, device_batch

    cfg = override(Config(), {
        "model": model, "frames": args.frames, "size": args.size, "tubelet": 2, "patch": args.patch,
        "batch_size": args.batch, "teacher": args.teacher, "steps": 1000, "warmup_steps": 10,
        "num_train": max(64, args.batch * (args.steps + 2)), "pred_width": args.pred_width,
        "pred_depth": args.pred_depth, "compute_dtype": "float32",
    }).validate()
    setup = build(cfg)
    state = setup.init()
    it = data.train_batches(data.make_source(cfg, "train"), setup.masks, cfg.batch_size, 0, args.steps + 2)
    batches = [jax.device_put(device_batch(b)) for b in it]
    step = jax.jit(setup.train_step, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batches[0]).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    mem = compiled.memory_analysis()
    xla_peak = None
    if mem is not None:
        xla_peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                    - mem.alias_size_in_bytes)
    state, m = compiled(state, batches[0])
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for b in batches[1:args.steps + 1]:
        state, m = compiled(state, b)
    jax.block_until_ready(m)
    dt = (time.perf_counter() - t0) / args.steps
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    n_params = sum(x.size for x in jax.tree.leaves((state.theta, state.psi)))
    out = {
        "model": model, "device": dev.device_kind, "platform": dev.platform,
        "clip": f"{cfg.frames}x{cfg.size}x{cfg.size}", "tokens": setup.masks.num_tokens,
        "batch": cfg.batch_size, "teacher": cfg.teacher, "params_M": n_params / 1e6,
        "predictor": f"{cfg.pred_width}/{cfg.pred_depth}",
        "compile_s": compile_s, "step_s": dt, "clips_per_s": cfg.batch_size / dt,
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
    p.add_argument("--out", default="runs/bench_vjepa.json")
    args = p.parse_args(argv)
    rows = []
    for model in args.models.split(","):
        row = bench_one(model, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print("\n| model | device | clip (tokens) | batch | params | compile s | clips/s | GFLOP/step | GFLOP/s | XLA peak MiB | max RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['clip']} ({r['tokens']}) | {r['batch']} | {r['params_M']:.1f}M | "
              f"{r['compile_s']:.1f} | {r['clips_per_s']:.2f} | {r['step_gflop']:.1f} | {r['achieved_gflops']:.1f} | "
              f"{r['xla_peak_MiB']:.0f} | {r['max_rss_MiB']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

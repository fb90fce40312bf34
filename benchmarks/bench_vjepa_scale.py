"""V-JEPA at scale: step throughput over 1, 2, 4, 8 devices (data parallel and FSDP), and on a GPU
the clips/s and model-FLOPs utilisation of ViT-B with bf16 compute.

    .venv/bin/python benchmarks/bench_vjepa_scale.py [--config tiny] [--devices 1,2,4,8] [--steps 5]
        [--gpu-config vitb16 --gpu-batch 24 --gpu-steps 10] [--out runs/bench_vjepa_scale.json]

**Scaling.** The trainer's own sharded step (:func:`dualjax.vjepa.parallel.make_parallel`) with the
global batch of the config split over a ``'data'`` mesh of the first n devices. On a CPU host the
script simulates 8 devices (``--xla_force_host_platform_device_count=8``, set before JAX starts);
they share the machine's cores, so this measures overhead, not speed-up. Step time = median of
``--steps`` timed steps after a warm-up step; compile time is reported separately.

**GPU** (only when the default backend is a GPU, or with ``--gpu-config`` forced on CPU for a dry
run of the code path): one device, ``compute_dtype=bfloat16``, float32 parameters, the reference
clip 16×224×224 (tubelets 2×16×16, 1568 tokens). MFU = model FLOPs per step / step time / the
card's dense bf16 peak; model FLOPs are XLA's cost analysis of the compiled step (forward,
backward and the teacher's forward, as executed) and, for comparison, the analytic
6·N_params·tokens-style count of :func:`model_flops`. Peaks (dense bf16, TFLOP/s): H100 SXM 989,
H100 PCIe 756, H200 989, A100 312; or ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}


def _time_steps(par, state, batches, steps):
    import jax

    t0 = time.perf_counter()
    state, m = par.step(state, batches[0])
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        state, m = par.step(state, batches[(i + 1) % len(batches)])
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), float(m["F"])


def _batches(cfg, setup, n):
    """n training batches whose mask lists all have the widths of the first (one compiled step)."""
    from dualjax.vjepa import data

    def widths(batch):
        return tuple(m[0].shape + m[1].shape for m in batch["masks"])

    it = data.train_batches(data.make_source(cfg, "train"), setup.masks, cfg.batch_size, cfg.data_seed, 64 * n)
    out = [next(it)]
    while len(out) < n:
        batch = next(it)
        if widths(batch) == widths(out[0]):
            out.append(batch)
    return out


def scaling(config: str, devices: list[int], steps: int) -> list[dict]:
    import jax

    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa.parallel import make_parallel
    from dualjax.vjepa.step import build

    base = config_lib.load(config)
    rows = []
    for sharding in ("dp", "fsdp"):
        for n in devices:
            if n > jax.device_count():
                continue
            cfg = dataclasses.replace(base, num_devices=n, sharding=sharding, fsdp_min_size=2**12).validate()
            setup = build(cfg)
            par = make_parallel(setup)
            host = _batches(cfg, setup, 3)
            batches = [par.put_batch(b) for b in host]
            first, dt, F = _time_steps(par, par.init(), batches, steps)
            rows.append({"config": config, "sharding": sharding, "devices": n, "batch": cfg.batch_size,
                         "first_step_s": first, "step_s": dt, "clips_per_s": cfg.batch_size / dt, "F": F,
                         "device": jax.devices()[0].device_kind})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def model_flops(cfg, setup, batch) -> float:
    """Analytic training FLOPs of one step on ``batch``: 3 × (forward FLOPs) for the student encoder
    on the context tokens of each generator and for the predictor, + 1 × forward of the teacher on
    all tokens (no backward), at the widths of the batch's (padded) index lists. Forward FLOPs per
    token from :func:`dualjax.vjepa.vit.flops_per_token`."""
    from dualjax.vjepa.vit import flops_per_token

    enc = setup.model.encode.module
    pred = setup.model.predict.module
    n = setup.masks.num_tokens
    per_gen = []
    for ctx_idx, tgt_idx, *_ in batch["masks"]:
        ctx, tgt = ctx_idx.shape[1], tgt_idx.shape[1]
        student = ctx * flops_per_token(enc.width, enc.depth, ctx, cfg.mlp_ratio)
        predictor = (ctx + tgt) * flops_per_token(pred.width, pred.blocks.depth, ctx + tgt, cfg.mlp_ratio)
        per_gen.append(3 * (student + predictor))
    teacher = n * flops_per_token(enc.width, enc.depth, n, cfg.mlp_ratio)
    return cfg.batch_size * (sum(per_gen) + teacher)


def peak_for(device_kind: str) -> float:
    """Dense bf16 peak (TFLOP/s) of a card from its ``device_kind`` (longest matching name), else 0."""
    matches = [(len(k), v) for k, v in PEAK_BF16_TFLOPS.items() if k in device_kind]
    return max(matches)[1] if matches else 0.0


def gpu(config: str, batch: int, steps: int, peak_tflops: float) -> dict:
    import jax

    from dualjax.configs import override
    from dualjax.vjepa import config as config_lib
    from dualjax.vjepa.parallel import make_parallel
    from dualjax.vjepa.step import build, xla_flops

    cfg = override(config_lib.load(config), {
        "batch_size": batch, "compute_dtype": "bfloat16", "num_devices": 1,
        "num_train": max(64, batch * 4)}).validate()
    setup = build(cfg)
    par = make_parallel(setup)
    host = _batches(cfg, setup, 2)
    batches = [par.put_batch(b) for b in host]
    state = par.init()
    t0 = time.perf_counter()
    compiled = par.step.lower(state, batches[0]).compile()
    compile_s = time.perf_counter() - t0
    flops = xla_flops(cfg, state, batches[0])  # the blocks unrolled: XLA counts a loop body once
    _, dt, F = _time_steps(par, state, batches, steps)
    dev = jax.devices()[0]
    kind = dev.device_kind
    peak_tflops = peak_tflops or peak_for(kind)
    analytic = model_flops(cfg, setup, host[0])
    row = {"config": config, "device": kind, "platform": dev.platform, "batch": batch,
           "clip": f"{cfg.frames}x{cfg.size}x{cfg.size}", "compute_dtype": cfg.compute_dtype,
           "compile_s": compile_s, "step_s": dt, "clips_per_s": batch / dt, "xla_tflop_per_step": flops / 1e12,
           "analytic_tflop_per_step": analytic / 1e12 if analytic else None, "peak_tflops": peak_tflops or None,
           "F": F}
    if peak_tflops:
        row["mfu_xla"] = flops / dt / (peak_tflops * 1e12)
        if analytic:
            row["mfu_analytic"] = analytic / dt / (peak_tflops * 1e12)
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="tiny")
    p.add_argument("--devices", default="1,2,4,8")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--gpu-config", default="vitb16")
    p.add_argument("--gpu-batch", type=int, default=24)
    p.add_argument("--gpu-steps", type=int, default=10)
    p.add_argument("--force-gpu-part", action="store_true", help="run the GPU part on any backend (dry run)")
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=0.0)
    p.add_argument("--out", default="runs/bench_vjepa_scale.json")
    args = p.parse_args(argv)

    import jax

    result = {"scaling": [], "gpu": None}
    if not args.skip_scaling:
        result["scaling"] = scaling(args.config, [int(d) for d in args.devices.split(",")], args.steps)
    if jax.default_backend() == "gpu" or args.force_gpu_part:
        result["gpu"] = gpu(args.gpu_config, args.gpu_batch, args.gpu_steps, args.peak_tflops)
    else:
        print("no GPU: skipping the ViT-B bf16 clips/s and MFU part", file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if result["scaling"]:
        print(f"\n{result['scaling'][0]['config']} config, global batch {result['scaling'][0]['batch']}, "
              f"{result['scaling'][0]['device']}")
        print("| sharding | devices | compile + first step s | step ms | clips/s | vs 1 device |")
        print("|---|---|---|---|---|---|")
        for r in result["scaling"]:
            one = next(x for x in result["scaling"] if x["sharding"] == r["sharding"] and x["devices"] == 1) \
                if any(x["devices"] == 1 for x in result["scaling"]) else r
            print(f"| {r['sharding']} | {r['devices']} | {r['first_step_s']:.1f} | {1e3 * r['step_s']:.0f} | "
                  f"{r['clips_per_s']:.0f} | {r['clips_per_s'] / one['clips_per_s']:.2f}× |")
    if result["gpu"]:
        g = result["gpu"]
        mfu = f"{100 * g['mfu_xla']:.1f} %" if "mfu_xla" in g else "n/a (unknown peak)"
        print(f"\n{g['config']} on {g['device']}: {g['clips_per_s']:.1f} clips/s ({g['clip']}, batch {g['batch']}, "
              f"bf16), {g['xla_tflop_per_step']:.2f} TFLOP/step, MFU {mfu}")
    return 0


if __name__ == "__main__":
    if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    sys.exit(main())

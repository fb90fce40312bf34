"""Throughput of the scale plumbing: video decoding, checkpoint saves, sharded train steps.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 NPROC=16 \\
        .venv/bin/python benchmarks/scale_io.py [--out benchmarks/scale_io.json]

1. Video clips/s of :class:`dualjax.vjepa.video.VideoSource` (16 frames, step 4, 224² crop,
   from 320×240 mpeg4 files written here) in-process and with 2 grain worker processes.
2. Checkpoint save of a train state of ``--ckpt-mb`` MB: time until ``save`` returns (the
   training loop's stall with asynchronous saving) and until the save is committed.
3. One train step (Siamese MLP, EMA rule, Adam) on 1 device, data-parallel and FSDP over all
   devices: median step time after compilation.

Numbers depend on the machine; the script prints them with the device description.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def bench_video(tmp: Path, n_videos: int = 8, clips: int = 16) -> dict:
    import av
    import grain

    from dualjax.vjepa import video as V

    entries = []
    for k in range(n_videos):
        path = tmp / f"v{k}.mp4"
        with av.open(str(path), "w") as c:
            s = c.add_stream("mpeg4", rate=30)
            s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
            rng = np.random.default_rng(k)
            base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            for t in range(96):
                img = np.roll(base, 3 * t, axis=1)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        entries.append((str(path), k % 4))
    V.write_list(tmp / "list.txt", entries)
    spec = V.ClipSpec(frames=16, frame_step=4, crop_size=224)
    out = {"clip": "16x224x224 (frame step 4) from 320x240 mpeg4, 96 frames"}
    src = V.VideoSource(tmp / "list.txt", spec, length=clips)
    src[0]
    t0 = time.perf_counter()
    for i in range(clips):
        src[i]
    out["clips_per_s_in_process"] = clips / (time.perf_counter() - t0)
    V.ensure_absl_flags()
    ds = V.video_dataset(tmp / "list.txt", spec, num_epochs=None).slice(slice(0, 2 * clips))
    it = ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
    it = iter(it)
    next(it)  # workers started
    t0 = time.perf_counter()
    for _ in range(clips):
        next(it)
    out["clips_per_s_2_workers"] = clips / (time.perf_counter() - t0)
    getattr(it, "close", lambda: None)()
    return out


def bench_checkpoint(tmp: Path, mb: int) -> dict:
    import jax
    import jax.numpy as jnp

    from dualjax.checkpoint import Checkpointer

    n = mb * 2**20 // 4 // 4
    state = {k: jnp.full((n,), i, jnp.float32) for i, k in enumerate(("params", "teacher", "mu", "nu"))}
    jax.block_until_ready(state)
    stall, total = [], []
    with Checkpointer(tmp / "ckpt", keep=2) as c:
        for step in range(1, 4):
            t0 = time.perf_counter()
            c.save(step, state, {"step": step})
            stall.append(time.perf_counter() - t0)
            c.wait()
            total.append(time.perf_counter() - t0)
    return {"state_mb": mb, "save_call_s": statistics.median(stall), "committed_s": statistics.median(total)}


def bench_steps(repeats: int = 20) -> dict:
    import jax
    import optax

    from dualjax import distributed as dist
    from dualjax import rules
    from dualjax.objectives import siamese

    d, h, batch = 256, 1024, 256

    def encode(theta, x):
        return jax.nn.gelu(x @ theta["w1"]) @ theta["w2"]

    obj = siamese(encode, lambda psi, z: z @ psi["wp"], loss="half_squared")
    init, step = rules.make_step(obj.F, rules.ema(0.99), optax.adam(1e-3))
    rng = np.random.default_rng(0)
    theta = {"w1": rng.normal(size=(d, h)).astype(np.float32) / 16, "w2": rng.normal(size=(h, d)).astype(np.float32) / 32}
    psi = {"wp": np.eye(d, dtype=np.float32)}
    state0 = jax.device_get(init(theta, psi))
    x = rng.normal(size=(batch, d)).astype(np.float32)
    data = (x, x + 0.1 * rng.normal(size=x.shape).astype(np.float32))
    mesh = dist.data_mesh()

    def timed(fn, state, batch_):
        state, _ = fn(state, batch_)
        jax.block_until_ready(state)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            state, m = fn(state, batch_)
            jax.block_until_ready((state, m))
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    out = {"model": f"Siamese MLP {d}-{h}-{d}, batch {batch}, EMA + Adam", "devices": jax.device_count()}
    out["ms_per_step_1_device"] = timed(jax.jit(step), jax.device_put(state0, jax.devices()[0]),
                                        jax.device_put(data, jax.devices()[0]))
    for name, shard in (("data_parallel", dist.replicated_shardings), ("fsdp", dist.fsdp_shardings)):
        sh = shard(state0, mesh) if name == "data_parallel" else shard(state0, mesh, min_size=2**14)
        fn = jax.jit(step, out_shardings=(sh, None))
        out[f"ms_per_step_{name}"] = timed(fn, dist.place(state0, sh), dist.shard_batch(data, mesh))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--ckpt-mb", type=int, default=256)
    args = parser.parse_args(argv)
    import jax

    warnings.simplefilter("ignore")
    result = {"device": f"{jax.devices()[0].device_kind} x{jax.device_count()} ({os.cpu_count()} cores)"}
    with tempfile.TemporaryDirectory() as tmp:
        result["video"] = bench_video(Path(tmp))
        result["checkpoint"] = bench_checkpoint(Path(tmp), args.ckpt_mb)
    result["steps"] = bench_steps()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The V-JEPA training loop, driven by the paper's rules: the same ``dualjax.rules`` / ``objectives.py``
code path as the 2×1 linear model, here driving a video ViT.

The pieces, one module each: :mod:`~dualjax.vjepa.model` (f_θ, g_ψ as pure functions; the
objective F and E = F(θ, ψ, θ)), :mod:`~dualjax.vjepa.optim` (AdamW, schedules, teacher rule),
:mod:`~dualjax.vjepa.step` (TrainState, ``build``, the pure step), :mod:`~dualjax.vjepa.parallel`
(mesh and shardings), :mod:`~dualjax.vjepa.rundir` (run directory, checkpoints, metrics) and the
probe helpers of :mod:`~dualjax.vjepa.probe`. This module is the loop: per step t, draw batch t,
on logged steps evaluate E(θ_t, ψ_t) on it (a separate forward pass with the online encoder as
target, so F and E of a record share parameters and batch), probe where scheduled, update, read
the fault flags, log, checkpoint.

metrics.jsonl (one JSON object per logged step t, see docs/vjepa.md): ``step`` = number of updates
already applied; ``F``, ``E`` at (θ_t, ψ_t, ξ_t) on batch t; ``d_theta`` = ‖θ_{t+1} − θ_t‖,
``d_psi``, ``d_xi`` the increments of the update made at step t; ``grad_norm``,
``grad_norm_theta``, ``grad_norm_psi``, ``theta_norm``, ``psi_norm``; ``lr``, ``wd``, ``momentum``
used by that update; ``clips_per_s``; ``probe_top1`` (held-out) where a probe ran;
``all_finite``; ``videos_skipped`` (running total of unreadable videos passed over).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from dualjax import checkpoint as ckpt_lib
from dualjax import faults
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import probe as probe_lib
from dualjax.vjepa import rundir
from dualjax.vjepa.parallel import make_parallel
from dualjax.vjepa.rundir import read_metrics, summarize  # noqa: F401  (re-exported for callers)
from dualjax.vjepa.step import Setup, build


def _progress_bar(cfg: config_lib.Config, start: int):
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.teacher}", unit="step", file=sys.stderr,
                dynamic_ncols=True)


def train(cfg: config_lib.Config, out_dir: str | Path, *, progress: bool = True, probes: bool = True,
          log: Callable[[dict], None] | None = None, setup: Setup | None = None, resume: bool = False,
          mesh: jax.sharding.Mesh | None = None) -> list[dict]:
    """Train for ``cfg.steps`` steps; write ``out_dir/{config.json, metrics.jsonl, checkpoints/}``.

    Returns the list of records logged by this call (also appended to metrics.jsonl).
    ``setup`` (from :func:`build` of the same config) lets callers share compiled functions.

    **Devices.** The state lives on :func:`~dualjax.vjepa.parallel.make_mesh` (all devices;
    ``sharding`` dp or fsdp) and each batch is sharded over it.

    **Checkpoints and resume** (:mod:`~dualjax.vjepa.rundir`). Every ``ckpt_every`` steps and at
    the end the whole TrainState (θ, ψ, AdamW state with its schedule count, teacher state with
    the EMA count, step, rng) is saved asynchronously as ``checkpoints/<s>`` (keep the newest
    ``ckpt_keep``). A fresh run removes old checkpoints of ``out_dir``. ``resume=True`` requires
    ``cfg`` to equal ``out_dir/config.json``, restores the newest complete checkpoint ``s`` (or
    starts at 0 if there is none), keeps the metrics.jsonl lines with ``step < s`` and continues
    with batch ``s``; the lr / wd schedules (AdamW count) and the momentum schedule (teacher
    count) come back with the state, so every later record equals that of an uninterrupted run.

    **Faults.** With ``check_finite`` the fault flags computed inside every jitted step are read
    one step late (so the host never waits for the step it just dispatched) and at every logged
    step and save; a non-finite loss, gradient or parameter raises
    :class:`dualjax.faults.NonFiniteError` naming the step and the quantities, nothing from that
    step is logged or saved, and in-flight saves of earlier steps are committed first.
    """
    out = Path(out_dir)
    lead = jax.process_index() == 0
    rundir.prepare(out, cfg, resume=resume)
    if setup is None:
        setup = build(cfg)
    elif setup.cfg != cfg:
        raise ValueError("setup was built from a different config")
    par = make_parallel(setup, mesh)
    encode_fn = probe_lib.make_encode_fn(setup.model)
    pdata = probe_lib.probe_data(cfg) if probes else None
    probe_at = set(probe_lib.probe_schedule(cfg)) if probes else set()
    ckpt_at = {cfg.steps} | (set(range(cfg.ckpt_every, cfg.steps, cfg.ckpt_every)) if cfg.ckpt_every else set())

    ckpt = rundir.checkpointer(out, cfg.ckpt_keep)
    writer = ckpt_lib.MetricsWriter(out / rundir.METRICS)
    bar = None
    try:
        state = par.init()
        start, state, skipped = rundir.resume(ckpt, state) if resume else (0, state, 0)
        if lead:
            writer.truncate(start - 1)  # the records of steps < start: those of the restored state
        batches = data_lib.train_batches(data_lib.make_source(cfg, "train"), setup.masks, cfg.batch_size,
                                         cfg.data_seed, cfg.steps, start_step=start, worker_count=cfg.worker_count)
        records: list[dict] = []
        bar = _progress_bar(cfg, start) if progress else None
        t_last, clips_since = time.perf_counter(), 0
        pending = None  # (step, fault flags) not yet read
        for t in range(start, cfg.steps):
            host = next(batches)
            if "skipped" in host:
                skipped += int(np.sum(host["skipped"]))
            batch = par.put_batch(host)
            logged = t % cfg.log_every == 0 or t == cfg.steps - 1 or t in probe_at
            record: dict[str, Any] = {"step": t}
            if logged:
                record["E"] = par.energy(state.theta, state.psi, batch)
            if t in probe_at:
                res = probe_lib.probe(cfg, encode_fn, probe_lib.probe_params(setup, state), pdata)
                record.update(probe_top1=res.top1, probe_train_top1=res.train_top1)
                t_last, clips_since = time.perf_counter(), 0  # do not charge the probe to throughput
            state, metrics = par.step(state, batch)
            clips_since += cfg.batch_size
            if cfg.check_finite:
                if pending is not None:
                    faults.raise_on_flags(*pending)
                pending = (t, metrics["faults"])
                if logged or t + 1 in ckpt_at:  # nothing of a faulty step is logged or saved
                    faults.raise_on_flags(*pending)
                    pending = None
            if logged:
                flags = metrics.pop("faults")
                record.update({k: float(v) for k, v in metrics.items()}, E=float(record["E"]),
                              all_finite=int(flags) == 0, videos_skipped=skipped)
                now = time.perf_counter()
                record["clips_per_s"] = clips_since / max(now - t_last, 1e-9)
                t_last, clips_since = now, 0
                records.append(record)
                if lead:
                    writer.write(record)
                if log:
                    log(record)
                if bar is not None:
                    bar.set_postfix(F=f"{record['F']:.4f}", E=f"{record['E']:.4f}",
                                    clips_s=f"{record['clips_per_s']:.1f}", refresh=False)
            if bar is not None:
                bar.update(1)
            if t + 1 in ckpt_at:
                rundir.save(ckpt, t + 1, state, skipped)
        if pending is not None:
            faults.raise_on_flags(*pending)
    except faults.NonFiniteError as err:
        ckpt.wait()
        last = ckpt.latest_step()
        err.add_note(f"run {out}: last good checkpoint "
                     + (f"{out / rundir.CKPT_DIR / str(last)} (resume with --resume)" if last is not None else "none"))
        raise
    finally:
        writer.close()
        ckpt.close()
        if bar is not None:
            bar.close()
    return records

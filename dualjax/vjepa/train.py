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
``all_finite``; ``videos_skipped`` (running total of unreadable videos passed over);
``checkpoints_set_aside`` (unreadable checkpoints of this run directory set aside by resumes);
``videos_padded`` (clips padded from videos shorter than a clip, in the batches since the previous
record); the collapse metrics of the step's features (``rank_student``, ``rank_teacher``,
``rank_pred``, ``cov_top_student``, ``cov_top_teacher``, ``std_target``, ``std_pred``,
``cos_student_teacher``) and ``collapse``, the flag of :func:`dualjax.collapse.check`
(docs/collapse.md). The flag never stops a run unless ``cfg.stop_on_collapse``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from dualjax import checkpoint as ckpt_lib
from dualjax import collapse, faults
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import probe as probe_lib
from dualjax.vjepa import rundir
from dualjax.vjepa.parallel import make_parallel
from dualjax.vjepa.rundir import read_metrics, summarize  # noqa: F401  (re-exported for callers)
from dualjax.vjepa.step import Setup, build, is_logged


def _progress_bar(cfg: config_lib.Config, start: int):
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.teacher}", unit="step", file=sys.stderr,
                dynamic_ncols=True)


def train(cfg: config_lib.Config, out_dir: str | Path, *, progress: bool = True, probes: bool = True,
          log: Callable[[dict], None] | None = None, setup: Setup | None = None, resume: bool = False,
          overwrite: bool = False, mesh: jax.sharding.Mesh | None = None) -> list[dict]:
    """Train for ``cfg.steps`` steps; write ``out_dir/{config.json, metrics.jsonl, checkpoints/}``.

    Returns the list of records logged by this call (also appended to metrics.jsonl).
    ``setup`` (from :func:`build` of the same config) lets callers share compiled functions.

    **Devices.** The state lives on :func:`~dualjax.vjepa.parallel.make_mesh` (all devices;
    ``sharding`` dp or fsdp) and each batch is sharded over it.

    **Checkpoints and resume** (:mod:`~dualjax.vjepa.rundir`). Every ``ckpt_every`` steps and at
    the end the whole TrainState (θ, ψ, AdamW state with its schedule count, teacher state with
    the EMA count, step, rng) is saved asynchronously as ``checkpoints/<s>`` (keep the newest
    ``ckpt_keep``). ``resume=True`` requires ``cfg`` to equal ``out_dir/config.json``, restores
    the newest readable checkpoint ``s`` (newer unreadable ones are set aside as
    ``checkpoints/<step>.corrupt-<n>`` and counted in ``checkpoints_set_aside``; with none it
    says so and starts at 0), keeps the metrics.jsonl lines with ``step < s`` and continues
    with batch ``s``; the lr / wd schedules (AdamW count) and the momentum schedule (teacher
    count) come back with the state, so every later record equals that of an uninterrupted run.

    **Set-up order** (docs/reliability.md): the config, ``out_dir`` (a fresh run needs it empty
    or ``overwrite``; :func:`~dualjax.vjepa.rundir.check`), the model, the mesh and the data
    (the first clip is read) are all validated before anything in ``out_dir`` is touched; only
    then does a fresh run clear what an earlier run owned there and write config.json.

    **Faults.** With ``check_finite`` the fault flags computed inside every jitted step are read
    one step late (so the host never waits for the step it just dispatched) and at every logged
    step and save; a non-finite loss, gradient or parameter raises
    :class:`dualjax.faults.NonFiniteError` naming the step and the quantities, nothing from that
    step is logged or saved, and in-flight saves of earlier steps are committed first.

    **Collapse.** Every record carries ``collapse`` (:func:`dualjax.collapse.check` against the
    teacher rank of the run's first record). With ``stop_on_collapse`` the first flagged record
    ends the run: the state after that step is saved as a checkpoint and the records so far are
    returned, the last one with ``stopped_on_collapse`` (the reasons).
    """
    out = Path(out_dir)
    lead = jax.process_index() == 0
    cfg.validate()
    rundir.check(out, cfg, resume=resume, overwrite=overwrite)  # changes nothing
    if setup is None:
        setup = build(cfg)
    elif dataclasses.replace(setup.cfg, stop_on_collapse=cfg.stop_on_collapse) != cfg:  # the loop's own switch
        raise ValueError("setup was built from a different config")
    par = make_parallel(setup, mesh)
    source = data_lib.make_source(cfg, "train")
    source[0]  # noqa: B018 - a list without a readable video fails here, before the run directory is touched
    encode_fn = probe_lib.make_encode_fn(setup.model, probe_lib.codegen_options(cfg))
    pdata = probe_lib.probe_data(cfg) if probes else None
    probe_at = set(probe_lib.probe_schedule(cfg)) if probes else set()
    ckpt_at = {cfg.steps} | (set(range(cfg.ckpt_every, cfg.steps, cfg.ckpt_every)) if cfg.ckpt_every else set())
    rundir.prepare(out, cfg, resume=resume, overwrite=overwrite)  # validated: now write

    ckpt = rundir.checkpointer(out, cfg.ckpt_keep)
    writer = ckpt_lib.MetricsWriter(out / rundir.METRICS)
    bar = None
    try:
        start, state, skipped = 0, None, 0
        if resume:  # restored into the abstract state: no compiled init unless there is no checkpoint
            abstract = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
                                    jax.eval_shape(setup.init), par.state_sharding)
            start, state, skipped = rundir.resume(ckpt, abstract)
        if start == 0:
            state = par.init()
        n_set_aside = len(ckpt_lib.set_aside_steps(ckpt.directory))
        if lead:
            writer.truncate(start - 1)  # the records of steps < start: those of the restored state
        ref = _collapse_reference(out, lead) if start else None
        batches = data_lib.train_batches(source, setup.masks, cfg.batch_size, cfg.train_batch_seed, cfg.steps,
                                         start_step=start, worker_count=cfg.worker_count)
        records: list[dict] = []
        bar = _progress_bar(cfg, start) if progress else None
        t_last, clips_since, padded = time.perf_counter(), 0, 0
        pending = None  # (step, fault flags) not yet read
        for t in range(start, cfg.steps):
            host = next(batches)
            if "skipped" in host:
                skipped += int(np.sum(host["skipped"]))
            padded += int(np.sum(host.get("padded", 0)))
            batch = par.put_batch(host)
            logged = bool(is_logged(cfg, t, probes))  # the steps whose collapse metrics the step computed
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
                record.update({k: collapse.host(v) for k, v in metrics.items()}, E=float(record["E"]),
                              all_finite=int(flags) == 0, videos_skipped=skipped, videos_padded=padded,
                              checkpoints_set_aside=n_set_aside)
                padded = 0
                ref = collapse.reference([record]) if ref is None else ref
                why = collapse.check(record, ref)
                record["collapse"] = bool(why)
                if why and cfg.stop_on_collapse:
                    record["stopped_on_collapse"] = "; ".join(why)
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
                                    rank=f"{record['rank_teacher']:.1f}", clips_s=f"{record['clips_per_s']:.1f}",
                                    **({"collapse": "YES"} if why else {}), refresh=False)
            if bar is not None:
                bar.update(1)
            stop = "stopped_on_collapse" in record
            if t + 1 in ckpt_at or stop:
                rundir.save(ckpt, t + 1, state, skipped)
            if stop:
                break
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


def _collapse_reference(out: Path, lead: bool) -> float | None:
    """The collapse rule's reference of a resumed run: from its kept records (read by process 0,
    sent to the others so that every process stops at the same step)."""
    ref = collapse.reference(rundir.read_metrics(out)) if lead else None
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        ref = float(multihost_utils.broadcast_one_to_all(np.float64(np.nan if ref is None else ref)))
        ref = None if np.isnan(ref) else ref
    return ref

"""The paper's Figure 2 at CPU scale: V-JEPA trained with each rule from several seeds.

:func:`run` trains every rule × seed of a base config into ``OUT/<rule>/seed<k>`` (seed-major:
every rule of seed 0, then of seed 1, …, so an interrupted study leaves comparable pairs), then
writes the figure ``OUT/figure2.png`` (:func:`dualjax.vjepa.plots.plot_figure2`) and last
``OUT/figure2.json`` (strict JSON, atomic; a folder without it is an interrupted study):

* ``runs[rule][seed]``: the Figure-2 series of that run (:func:`dualjax.vjepa.rundir.series`:
  ``steps``, ``E``, ``F``, ``d_theta``, ``d_psi``, ``d_xi``, ``lr``, ``probe_top1`` and
  ``probe_train_top1`` as ``[[step, top1], ...]``, ``random_init_top1``), ``wall_s`` and
  ``summary`` (:func:`dualjax.vjepa.rundir.summarize`: where E is lowest, late increments);
* ``across_seeds[rule]``: ``final_probe_top1`` and ``random_init_top1`` over the seeds
  (:func:`seed_stats`: values, mean, std with ddof = 1 (0 for one seed), min, max);
* ``config`` (the base config), ``teachers``, ``seeds``, ``dataset``, ``num_classes``,
  ``chance``, ``figure``.

**What a seed changes** (:func:`seed_config`). Seed k sets ``seed = k`` (the initial θ and ψ, and
the probe's initialisation and batch order) and ``batch_seed = k`` (the order of the training
clips and the masks of every step). ``data_seed`` stays the config's: the clips themselves, the
probe's train and held-out clips included, and the mask-width calibration are the same for every
seed, so the probes of different seeds are comparable and every run compiles the same programs.

**Random-init probe.** The probe at step 0 evaluates the initial encoder (θ₀ = ξ₀ for SG and EMA
alike), so it is the random-init baseline of that seed: taken from the records, not probed twice.
It is ``None`` when the config does not probe (``probes=False``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from dualjax import outputs
from dualjax.vjepa import config as config_lib
from dualjax.vjepa import data as data_lib
from dualjax.vjepa import plots, rundir
from dualjax.vjepa import train as train_lib

FIGURE, SUMMARY = "figure2.png", "figure2.json"


def seed_config(base: config_lib.Config, teacher: str, seed: int) -> config_lib.Config:
    """The config of rule ``teacher`` and seed ``seed`` (module doc: ``seed`` and ``batch_seed``)."""
    return dataclasses.replace(base, teacher=teacher, seed=seed, batch_seed=seed).validate()


def seed_stats(values: Sequence[float | None]) -> dict:
    """``values`` (None: not measured, left out) and their mean, std (ddof = 1; 0 for one value),
    min and max; all None when nothing was measured."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"values": [], "mean": None, "std": None, "min": None, "max": None}
    return {"values": vals, "mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals)}


def across_seeds(entries: dict[str, dict]) -> dict:
    """One rule's final held-out probe and random-init probe over its seeds (:func:`seed_stats`)."""
    return {"final_probe_top1": seed_stats([e["probe_top1"][-1][1] if e["probe_top1"] else None
                                            for e in entries.values()]),
            "random_init_top1": seed_stats([e["random_init_top1"] for e in entries.values()])}


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct integers >= 0 (ValueError naming the text otherwise)."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(f"seeds must be comma-separated integers >= 0, got {text!r}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers >= 0, got {text!r}")
    return seeds


def run(base: config_lib.Config, out: str | Path, *, teachers: Sequence[str] = ("sg", "ema"),
        seeds: Sequence[int] | None = None, probes: bool = True, progress: bool = False,
        overwrite: bool = False, title: str = "") -> dict:
    """Train ``teachers`` × ``seeds`` (default: the base config's seed) of ``base`` into ``out``;
    write the figure and ``figure2.json`` (module doc) and return its content.

    Every config is validated before the first run starts; each run directory follows
    :func:`dualjax.vjepa.train.train` (empty unless ``overwrite``)."""
    seeds = [base.seed] if seeds is None else [int(s) for s in seeds]
    teachers = [str(t) for t in teachers]
    if not teachers or len(set(teachers)) != len(teachers):
        raise ValueError(f"teachers must be distinct rule names, got {teachers}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    cfgs = {(t, k): seed_config(base, t, k) for k in seeds for t in teachers}
    out = Path(out)
    runs: dict[str, dict[str, dict]] = {t: {} for t in teachers}
    for (teacher, seed), cfg in cfgs.items():
        t0 = time.perf_counter()
        records = train_lib.train(cfg, out / teacher / f"seed{seed}", progress=progress, probes=probes,
                                  overwrite=overwrite)
        runs[teacher][str(seed)] = {**rundir.series(records), "wall_s": time.perf_counter() - t0,
                                    "summary": rundir.summarize(records)}
    n = data_lib.num_classes(base)
    figure = plots.plot_figure2({t: list(runs[t].values()) for t in teachers}, out / FIGURE, title=title,
                                chance=1.0 / n)
    result = {"config": dataclasses.asdict(base), "teachers": teachers, "seeds": seeds, "dataset": base.dataset,
              "num_classes": n, "chance": 1.0 / n, "runs": runs,
              "across_seeds": {t: across_seeds(runs[t]) for t in teachers}, "figure": str(figure)}
    outputs.write_json(out / SUMMARY, result)
    return result

"""Writing a study to disk: ``trials.csv`` (one row per trial and rule), the figures
(:func:`~dualjax.linear.montecarlo.figures.study_figures`) and last ``summary.json``
(:func:`~dualjax.linear.montecarlo.stats.summary`), each atomically (:mod:`dualjax.outputs`).

Floats are written with ``repr`` (the shortest string that reads back to the same float64), so a
fixed-seed study writes byte-identical files on any number of devices.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from dualjax import outputs, style
from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.slots import OUTCOMES
from dualjax.linear.montecarlo.stats import summary
from dualjax.rules import describe

CSV_COLUMNS = ("rule", "index", "rho", "tau", "lam", "delta", "r1", "r2", "outcome", "steps", "final_norm",
               "e_increased", "f_increased", "max_E_rise")
SUMMARY, CSV = "summary.json", "trials.csv"
OWNED = (SUMMARY, CSV, "*.png", "*.svg", "*.pdf")  # what a study writes into its folder, the summary first


def write_trials_csv(path: str | os.PathLike, results: dict[str, dict[str, np.ndarray]]) -> None:
    """One row per (trial, rule); ``outcome`` is one of :data:`OUTCOMES`."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for rule, cols in results.items():
            outcome = np.asarray(OUTCOMES, dtype=object)[cols["outcome"]]
            for i in range(cols["outcome"].size):
                writer.writerow([
                    rule, int(cols["index"][i]), repr(float(cols["rho"][i])), repr(float(cols["tau"][i])),
                    repr(float(cols["lam"][i])), repr(float(cols["delta"][i])), repr(float(cols["r1"][i])),
                    repr(float(cols["r2"][i])), outcome[i], int(cols["steps"][i]),
                    repr(float(cols["final_norm"][i])), int(cols["e_increased"][i]), int(cols["f_increased"][i]),
                    repr(float(cols["max_E_rise"][i])),
                ])


def write_study(out_dir: str | os.PathLike, results, cfg: Config, seed: int, *, rules_=None, figures: bool = True,
                overwrite: bool = False, fmt: str = "png", **extra) -> dict:
    """Write ``trials.csv``, the figures and, last, ``summary.json``; return the summary.

    ``rules_``: the rule objects of the study (their settings go into the summary as
    ``rule_settings``; the figures rerun them, so ``figures=True`` needs them); ``fmt`` is the
    figures' format (png, svg or pdf).
    ``out_dir`` must be empty or ``overwrite`` (:func:`dualjax.outputs.check`); the old
    summary.json goes first, then the rest of what a study owns (:data:`OWNED`). Every file is
    written under a temporary name and renamed into place, the figures from a temporary folder,
    so at any moment (a SIGKILL included) a present ``summary.json`` describes the files beside
    it, and a folder without one is an interrupted study. summary.json is strict JSON: a
    non-finite number (e.g. a share of zero trials) is ``null``, listed under ``"non_finite"``.
    """
    style.check_format(fmt)
    if figures and rules_ is None:
        raise ValueError("write_study(figures=True) needs the study's rule objects: pass rules_=")
    if rules_ is not None:
        extra = {"rule_settings": {rule.name: describe(rule) for rule in rules_}, **extra}
    out = outputs.check(out_dir, overwrite=overwrite)
    summ = summary(results, cfg, seed, **extra)
    outputs.prepare(out, OWNED, overwrite=overwrite)
    with outputs.atomic_path(out / CSV) as tmp:
        write_trials_csv(tmp, results)
    if figures:
        # matplotlib only when drawing: its import is ~10 % of a warm --no-figures study
        from dualjax.linear.montecarlo.figures import study_figures  # noqa: PLC0415

        summ["figures"] = write_figures(out, lambda folder: study_figures(folder, results, summ, cfg, rules_, fmt))
    outputs.write_json(out / SUMMARY, summ)
    return summ


def write_figures(out: Path, make: Callable[[str], Iterable[str]]) -> list[str]:
    """``make(folder)`` writes figures into a temporary folder beside ``out`` and returns their
    paths; each is then renamed into ``out``. Returns the final paths."""
    staging = outputs.tmp_path(out / "figures")
    staging.mkdir()
    try:
        names = [Path(p).name for p in make(str(staging))]
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [str(out / name) for name in names]

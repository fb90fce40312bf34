"""Writing a study to disk: ``trials.csv`` (one row per trial and rule), ``summary.json``
(:func:`~dualjax.linear.montecarlo.stats.summary`) and the figures
(:func:`~dualjax.linear.montecarlo.figures.study_figures`).

Floats are written with ``repr`` (the shortest string that reads back to the same float64), so a
fixed-seed study writes byte-identical files on any number of devices.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from dualjax.linear.montecarlo.config import Config
from dualjax.linear.montecarlo.figures import study_figures
from dualjax.linear.montecarlo.slots import OUTCOMES
from dualjax.linear.montecarlo.stats import summary
from dualjax.rules import describe

CSV_COLUMNS = ("rule", "index", "rho", "tau", "lam", "delta", "r1", "r2", "outcome", "steps", "final_norm",
               "e_increased", "f_increased", "max_E_rise")


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
                **extra) -> dict:
    """Write ``summary.json``, ``trials.csv`` and (optionally) the figures; return the summary.

    ``rules_``: the rule objects of the study (their settings go into the summary as
    ``rule_settings``; the figures rerun them, so ``figures=True`` needs them).
    ``summary.json`` is written first and again with the figures' paths once they exist, so an
    interrupted figure step still leaves the numbers."""
    if figures and rules_ is None:
        raise ValueError("write_study(figures=True) needs the study's rule objects: pass rules_=")
    os.makedirs(out_dir, exist_ok=True)
    if rules_ is not None:
        extra = {"rule_settings": {rule.name: describe(rule) for rule in rules_}, **extra}
    summ = summary(results, cfg, seed, **extra)
    _write_json(os.path.join(out_dir, "summary.json"), summ)
    write_trials_csv(os.path.join(out_dir, "trials.csv"), results)
    if figures:
        summ["figures"] = study_figures(out_dir, results, summ, cfg, rules_)
        _write_json(os.path.join(out_dir, "summary.json"), summ)
    return summ


def _write_json(path: str, obj: dict) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)


def _json_default(obj):
    """NumPy scalars and arrays as JSON numbers and lists."""
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")

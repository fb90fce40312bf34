"""Writing a general-m study to disk: ``trials.csv`` (one row per trial and rule), ``summary.json``
(:func:`~dualjax.linear.montecarlo.general_stats.general_summary`) and the figures
(:func:`~dualjax.linear.montecarlo.general_figures.general_figures`).

Matrices (ρ, τ, S = AᵀA of the end point) and the singular values of A are JSON lists; floats are
written with ``repr`` (the shortest string that reads back to the same float64). Each file is
written to a temporary name and renamed, so a reader never sees half a file; ``summary.json`` comes
first and again once the figures exist.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

from dualjax.linear.montecarlo.endpoints import JACOBIAN, OUTCOMES
from dualjax.linear.montecarlo.general_stats import general_summary

CSV_COLUMNS_M = ("rule", "trial", "m", "n", "lam", "rho", "tau", "outcome", "rank", "S", "loewner_max", "steps",
                 "final_residual", "component", "jacobian", "n_unstable", "singular_values", "has_full_rank",
                 "e_increased")


def _matrix(x) -> str:
    return json.dumps(np.asarray(x, float).tolist())


def trials_csv(study) -> str:
    """The ``trials.csv`` text of a study: :data:`CSV_COLUMNS_M`, one row per (rule, trial)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS_M)
    m, n = study.cfg.m, study.cfg.n
    for rule, c in study.columns.items():
        for i in range(c["outcome"].size):
            writer.writerow([
                rule, int(c["index"][i]), m, n, repr(float(c["lam"][i])), _matrix(c["rho"][i]), _matrix(c["tau"][i]),
                OUTCOMES[c["outcome"][i]], int(c["rank"][i]), _matrix(c["S"][i]), int(c["loewner_max"][i]),
                int(c["steps"][i]), repr(float(c["final_residual"][i])), int(c["component"][i]),
                JACOBIAN[c["jacobian"][i]], int(c["n_unstable"][i]), _matrix(c["singular_values"][i]),
                int(c["has_full_rank"][i]), int(c["e_increased"][i]),
            ])
    return buf.getvalue()


def write_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _json(obj) -> str:
    def default(x):
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, np.floating):
            return float(x)
        if isinstance(x, np.ndarray):
            return x.tolist()
        raise TypeError(f"not JSON serialisable: {type(x)}")

    return json.dumps(obj, indent=2, default=default)


def write_general_study(out_dir, study, *, figures: bool = True, **extra) -> dict:
    """Write ``summary.json``, ``trials.csv`` and (optionally) the figures of a general-m study into
    ``out_dir``; return the summary (``extra`` entries are added to it)."""
    os.makedirs(out_dir, exist_ok=True)
    summ = general_summary(study, **extra)
    write_atomic(os.path.join(out_dir, "summary.json"), _json(summ))
    write_atomic(os.path.join(out_dir, "trials.csv"), trials_csv(study))
    if figures:
        from dualjax.linear.montecarlo.general_figures import general_figures

        summ["figures"] = general_figures(out_dir, study, summ)
        write_atomic(os.path.join(out_dir, "summary.json"), _json(summ))
    return summ

"""Writing a general-m study to disk: ``trials.csv`` (one row per trial and rule), ``summary.json``
(:func:`~dualjax.linear.montecarlo.general_stats.general_summary`) and the figures
(:func:`~dualjax.linear.montecarlo.general_figures.general_figures`).

Matrices (ρ, τ, S = AᵀA of the end point) and the singular values of A are JSON lists; floats are
written with ``repr`` (the shortest string that reads back to the same float64). Each file is
written atomically (:mod:`dualjax.outputs`), ``summary.json`` last: a folder without it is an
interrupted study.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from dualjax import outputs
from dualjax.linear.montecarlo.endpoints import JACOBIAN, OUTCOMES
from dualjax.linear.montecarlo.general_stats import general_summary
from dualjax.linear.montecarlo.writers import CSV, OWNED, SUMMARY, write_figures

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


def write_general_study(out_dir, study, *, figures: bool = True, overwrite: bool = False, fmt: str = "png",
                        **extra) -> dict:
    """Write ``trials.csv``, (optionally) the figures and, last, ``summary.json`` of a general-m study
    into ``out_dir`` (empty, or ``overwrite``: :func:`dualjax.outputs.check`), each atomically, as
    :func:`~dualjax.linear.montecarlo.writers.write_study` does; return the summary (``extra``
    entries are added to it)."""
    out = outputs.check(out_dir, overwrite=overwrite)
    summ = general_summary(study, **extra)
    outputs.prepare(out, OWNED, overwrite=overwrite)
    outputs.write_text(out / CSV, trials_csv(study))
    if figures:
        from dualjax.linear.montecarlo.general_figures import general_figures

        paths = write_figures(out, lambda folder: general_figures(folder, study, summ, fmt).values())
        summ["figures"] = {Path(p).stem: p for p in paths}
    outputs.write_json(out / SUMMARY, summ)
    return summ

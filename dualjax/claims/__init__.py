"""Every claim of the paper, measured: one module per claim, the registry, and the runner.

Each claim module (``prop3_1`` … ``fig2``) holds, for one statement of the paper,

* ``KEY`` (the ``--only`` name), ``TITLE`` and ``PAPER`` (what the paper states);
* ``measure(out_dir, full) -> dict``: the study, at a quick size (``full=False``, the whole
  report takes minutes on a laptop CPU) or at the paper's size (``full=True``), written with the
  public library API only; its figures go under ``out_dir``;
* ``row(measured) -> Finding``: what we measured, and a verdict computed from the measurement
  (never written in advance), with the reason; the runner adds KEY, TITLE and PAPER
  (:func:`~dualjax.claims.report.claim_result`).

:data:`CLAIMS` maps each key to its module, in the order of the report. **Adding a claim** is
adding one module with those four names and one line to :data:`CLAIMS` (and, if it writes a
new file or folder under ``out_dir``, its name to :data:`OUTPUTS`, what ``--overwrite`` clears).
Modules are imported only when their claim runs, so ``--only prop4.11`` never loads the V-JEPA
trainer.
The rows are rendered by :mod:`dualjax.claims.report` (``report.md``, ``report.html``,
``report.json``).
"""

from __future__ import annotations

import importlib
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Callable

from dualjax import outputs
from dualjax.claims.report import REPORT_FILES, ClaimResult, claim_result

# key -> module under dualjax.claims, in the order of the report
CLAIMS: dict[str, str] = {
    "prop3.1": "prop3_1",
    "prop3.2": "prop3_2",
    "lemma4.3": "lemma4_3",
    "prop4.5": "prop4_5",
    "prop4.7": "prop4_7",
    "prop4.10": "prop4_10",
    "prop4.10-dynamic": "prop4_10_dynamic",
    "prop4.11": "prop4_11",
    "synthetic": "synthetic",
    "fig2": "fig2",
}

# what `reproduce` writes into its folder (the report first: it is the summary of the others);
# `--overwrite` removes exactly these. A claim that writes a new name adds it here.
OUTPUTS: tuple[str, ...] = (*REPORT_FILES, "linear", "montecarlo", "montecarlo_m", "vjepa", "prop4_7_pd_counts.png")


def claim_module(key: str) -> ModuleType:
    """The module of claim ``key`` (ValueError naming the key and the known ones otherwise)."""
    if key not in CLAIMS:
        raise ValueError(f"unknown claim(s) {[key]}; choose from {list(CLAIMS)}")
    return importlib.import_module(f"{__name__}.{CLAIMS[key]}")


def run_claim(key: str, out_dir: str | Path, full: bool = False) -> ClaimResult:
    """Measure claim ``key`` into ``out_dir`` and return its report row."""
    module = claim_module(key)
    measured = module.measure(Path(out_dir), full)
    return claim_result(module, module.row(measured), measured)


def parse_only(text: str | None) -> list[str] | None:
    """The claim keys of ``--only`` (comma-separated; ``None`` = every claim). ValueError for a
    list that names no claim (``","``) or an unknown key."""
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValueError(f"--only {text!r} names no claim; choose from {list(CLAIMS)} (or omit --only for all)")
    unknown = [k for k in keys if k not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; choose from {list(CLAIMS)}")
    return keys


def run_all(out_dir: str | Path, *, full: bool = False, only: list[str] | None = None,
            progress: Callable[[str], object] = print, overwrite: bool = False) -> list[ClaimResult]:
    """Run every claim (or those in ``only``) in report order; one that raises is 'failed to run'.

    ``out_dir`` must be empty or ``overwrite`` (:func:`dualjax.outputs.check`), which first
    removes what a reproduction owns (:data:`OUTPUTS`), the report first."""
    if only is not None:
        only = parse_only(",".join(only))
    out = outputs.check(out_dir, overwrite=overwrite)
    outputs.prepare(out, OUTPUTS, overwrite=overwrite)
    results = []
    for key in CLAIMS:
        if only and key not in only:
            continue
        progress(f"[reproduce] {key} ...")
        t0 = time.perf_counter()
        try:
            res = run_claim(key, out, full)
        except Exception as err:  # a broken study must not hide the others
            res = ClaimResult(key, key, "", f"error: {type(err).__name__}: {err}", "failed to run",
                              traceback.format_exc(limit=3))
        res.seconds = time.perf_counter() - t0
        progress(f"[reproduce] {key}: {res.verdict} ({res.seconds:.1f} s)")
        results.append(res)
    return results

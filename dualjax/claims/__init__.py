"""Every claim of the paper, measured: one module per claim, the registry, and the runner.

Each claim module (``prop3_1`` … ``fig2``) holds, for one statement of the paper,

* ``KEY`` (the ``--only`` name), ``TITLE`` and ``PAPER`` (what the paper states);
* ``measure(out_dir, full) -> dict``: the study, at a quick size (``full=False``, the whole
  report takes minutes on a laptop CPU) or at the paper's size (``full=True``), written with the
  public library API only; its figures go under ``out_dir``;
* ``row(measured) -> ClaimResult``: the report row — what we measured, and a verdict computed
  from the measurement (never written in advance), with the reason.

:data:`CLAIMS` maps each key to its module, in the order of the report. **Adding a claim** is
adding one module with those four names and one line to :data:`CLAIMS`. Modules are imported
only when their claim runs, so ``--only prop4.11`` never loads the V-JEPA trainer.
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

from dualjax.claims.report import ClaimResult

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


def claim_module(key: str) -> ModuleType:
    """The module of claim ``key`` (ValueError naming the key and the known ones otherwise)."""
    if key not in CLAIMS:
        raise ValueError(f"unknown claim(s) {[key]}; choose from {list(CLAIMS)}")
    return importlib.import_module(f"{__name__}.{CLAIMS[key]}")


def run_claim(key: str, out_dir: str | Path, full: bool = False) -> ClaimResult:
    """Measure claim ``key`` into ``out_dir`` and return its report row."""
    module = claim_module(key)
    return module.row(module.measure(Path(out_dir), full))


def run_all(out_dir: str | Path, *, full: bool = False, only: list[str] | None = None,
            progress: Callable[[str], object] = print) -> list[ClaimResult]:
    """Run every claim (or those in ``only``) in report order; one that raises is 'failed to run'."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [k for k in only or [] if k not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; choose from {list(CLAIMS)}")
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

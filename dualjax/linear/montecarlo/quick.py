"""The quick reproduction of the paper's synthetic table: :func:`quick_study` (one call, one
folder). A claim hook kept here until the claim modules (``dualjax/claims/``) take it over."""

from __future__ import annotations

import os
import time

from dualjax.linear.montecarlo.config import STUDY_RULES, Config
from dualjax.linear.montecarlo.run import study
from dualjax.linear.montecarlo.writers import write_study

QUICK_CONFIG = Config()


def quick_study(out_dir: str | os.PathLike, trials: int = 10_000, seed: int = 0, *,
                cfg: Config = QUICK_CONFIG, progress: bool = False, devices: int | None = None) -> dict:
    """The paper's study (SG and EMA, ρ ~ U[0,3], τ ~ U[−1,1], λ ~ U[0.01,0.1]) at a size that
    takes about a minute on one CPU: writes ``summary.json``, ``trials.csv`` and the PNG figures
    to ``out_dir`` and returns the summary dict."""
    t0 = time.perf_counter()
    results = study(trials, STUDY_RULES, cfg, seed=seed, progress=progress, devices=devices)
    elapsed = time.perf_counter() - t0
    return write_study(out_dir, results, cfg, seed, study_seconds=elapsed)

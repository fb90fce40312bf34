"""One look for every figure dualjax writes: a colour per rule and per outcome, mathtext labels,
sizes readable when a PNG is shown at half size, and the file format (png | svg | pdf).

* :func:`rule_color` — the colour of a rule *by name*, the same in every figure (SG blue, EMA
  orange, plain grey, DirectPred green: the Okabe–Ito colour-blind-safe set); a rule registered
  later gets a fixed colour from :data:`FALLBACK`, chosen by a hash of its name, so it too keeps
  its colour across figures and runs.
* :data:`OUTCOME_COLORS` — where an m = 1 run ended (the study's outcomes), light enough to be a
  background; the spheres S₂ / S₁ are drawn on top in :data:`SPHERE_STYLE` (black, solid /
  dashed), never in an outcome colour.
* :func:`styled` — a decorator running a figure writer under :data:`RC` (font sizes ≥ 8 pt on
  panels of about :data:`PANEL` inches: text stays ≥ 1.5 % of the figure's width, readable at 50 %).
* :func:`save` — ``savefig`` in the format named by the path's suffix (one of :data:`FORMATS`),
  atomically (:func:`dualjax.outputs.atomic_path`), then closes the figure.
  :func:`figure_name` turns ``"basins"`` and a format into ``"basins.svg"``.
"""

from __future__ import annotations

import functools
import os
import zlib
from pathlib import Path

from dualjax import outputs

FORMATS = ("png", "svg", "pdf")

RULE_COLORS = {"sg": "#0072b2", "ema": "#e69f00", "plain": "#7f7f7f", "directpred": "#009e73"}
FALLBACK = ("#cc79a7", "#56b4e9", "#d55e00", "#000000", "#8c564b")
RULE_LABELS = {"sg": "SG", "ema": "EMA", "plain": "plain", "directpred": "DirectPred"}

OUTCOME_COLORS = {"outer": "#8fd3b6", "origin": "#f9b47c", "inner": "#b9a7e0", "not_converged": "#d0d0d0",
                  "diverged": "#f08bc0"}
OUTCOME_LABELS = {"outer": r"outer sphere $S_2$", "origin": "origin (collapse)", "inner": r"inner sphere $S_1$",
                  "not_converged": "not converged", "diverged": "diverged"}
SPHERE_STYLE = {"S2": {"color": "black", "ls": "-", "lw": 2.2}, "S1": {"color": "black", "ls": "--", "lw": 1.6},
                "origin": {"color": "black", "marker": "o", "ms": 5, "ls": "none"}}

PANEL = (3.6, 3.1)  # inches per panel
DPI = 200
RC = {
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
    "legend.fontsize": 8, "legend.title_fontsize": 8, "figure.titlesize": 11, "mathtext.fontset": "dejavusans",
    "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": DPI, "savefig.bbox": "tight",
    "svg.fonttype": "none", "pdf.fonttype": 42,
}


def rule_color(name: str) -> str:
    """The colour of the rule called ``name`` (:data:`RULE_COLORS`, else a fixed :data:`FALLBACK` entry)."""
    name = str(name).lower()
    return RULE_COLORS.get(name) or FALLBACK[zlib.crc32(name.encode()) % len(FALLBACK)]


def rule_name_label(name: str) -> str:
    """``SG``, ``EMA``, ...: how a rule's name is printed (its upper case when not listed)."""
    return RULE_LABELS.get(str(name).lower(), str(name).upper())


def panels(nrows: int = 1, ncols: int = 1, *, panel=PANEL, **kwargs):
    """``plt.subplots`` sized at ``panel`` inches per panel (``squeeze=False``: axes is 2-D)."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False, **kwargs)


def styled(fn):
    """Run a figure writer under :data:`RC` (fonts are fixed when an artist is made, so the whole
    writer, not only the save, runs inside)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS` (ValueError naming it otherwise)."""
    if fmt not in FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def figure_name(stem: str, fmt: str = "png") -> str:
    """``stem.fmt``, the format checked."""
    return f"{stem}.{check_format(fmt)}"


def save(fig, path: str | os.PathLike) -> str:
    """Write ``fig`` to ``path`` (format from its suffix, one of :data:`FORMATS`) atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = check_format(path.suffix.lstrip(".").lower())
    try:
        with outputs.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
    finally:
        plt.close(fig)
    return str(path)

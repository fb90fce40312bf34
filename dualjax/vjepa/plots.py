"""Figures of V-JEPA runs (matplotlib, Agg-safe): the paper's Figure 2 at CPU scale.

:func:`plot_figure2` draws, from the Figure-2 series of each rule's seeds (the per-seed entries of
``figure2.json``, :func:`dualjax.vjepa.rundir.series`), four panels with the rules overlaid, each
in its colour (:func:`dualjax.style.rule_color`):

(a) E(θ_t, ψ_t) = F(θ_t, ψ_t, θ_t) solid and F(θ_t, ψ_t, ξ_t) dashed with hollow circles (for SG
    ξ = θ, so F = E: the markers keep both visible; EMA's F has the lagging teacher ξ);
(b) the increments ‖θ_t − θ_{t−1}‖ solid with triangles, ‖ψ_t − ψ_{t−1}‖ dash-dot, ‖ξ_t − ξ_{t−1}‖
    dotted with hollow squares placed between θ's triangles (for SG Δξ = Δθ);
(c) the same increments per unit learning rate, ‖Δ‖ / lr_t;
(d) held-out attentive-probe top-1 (circles), the probe's train accuracy (thin dotted, the mean
    only), the random-init probe (the step-0 probe) as a horizontal line (one grey line when every
    rule has the same values, as SG and EMA do from one seed; else one per rule), and chance.

With several seeds a line is the mean over seeds and the band around it their min–max range.
A panel whose positive values span more than :data:`LOG_SPAN`× gets a log y axis. Each panel's
legend sits below it, off the data, and names only drawn artists. Every artist has a gid
(``"E:sg"``, ``"d_xi/lr:ema"``, ``"probe_train:sg"``, ``"random_init"``, ...; bands add ``":band"``).
:func:`plot_runs` draws the same from each rule's ``metrics.jsonl`` records (one seed each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from dualjax import style
from dualjax.vjepa import rundir

LOG_SPAN = 30.0  # max / min of a panel's positive values above which its y axis is logarithmic
MARKS = 10  # markers per line
PANEL = (5.4, 4.2)  # inches per panel (legends below)
INCREMENTS = (("d_theta", r"\theta", dict(ls="-", marker="^")),
              ("d_psi", r"\psi", dict(ls="-.", marker=None)),
              ("d_xi", r"\xi", dict(ls=":", marker="s", mfc="none", shift=True)))


def _aligned(entries: Sequence[Mapping], key: str, per_lr: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values of shape (seeds, steps)) of ``key`` at the steps every seed has; ``probe_*``
    keys are ``[[step, value], ...]`` pairs; ``per_lr`` divides by each step's lr."""
    maps = []
    for e in entries:
        pairs = e[key] if key.startswith("probe") else zip(e["steps"], e[key])
        m = {int(s): float(v) for s, v in pairs}
        if per_lr:
            lr = dict(zip(e["steps"], e["lr"]))
            m = {s: v / lr[s] for s, v in m.items() if lr.get(s, 0) > 0}
        maps.append(m)
    common = sorted(set.intersection(*(set(m) for m in maps))) if maps else []
    return np.array(common, int), np.array([[m[s] for s in common] for m in maps], float).reshape(len(maps), -1)


def _mean_band(ax, x, Y, *, color, label, gid, shift=False, band=True, **kw):
    """Mean over seeds as a line (markers every ≥ 2 points; ``shift``: half that period later, between
    the markers of an unshifted line), with ``band`` their min–max as a band when there are several
    seeds; returns the values (for the y scale)."""
    if Y.size == 0:
        return Y
    every = max(2, len(x) // MARKS)
    if kw.get("marker"):
        kw.setdefault("markevery", (every // 2 if shift else 0, every))
    ax.plot(x, Y.mean(axis=0), color=color, label=label, gid=gid, **kw)
    if band and len(Y) > 1:
        ax.fill_between(x, Y.min(axis=0), Y.max(axis=0), color=color, alpha=0.15, lw=0, gid=gid + ":band")
    return Y


def _finish(ax, values, title: str, ylabel: str, *, log_ok: bool = True) -> None:
    vals = np.concatenate([np.ravel(v) for v in values]) if values else np.zeros(0)
    vals = vals[np.isfinite(vals)]
    if log_ok and vals.size and vals.min() > 0 and vals.max() > LOG_SPAN * vals.min():
        ax.set_yscale("log")
    ax.set(title=title, xlabel="step", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)


def _random_init(ax, runs: Mapping[str, Sequence[Mapping]]) -> None:
    """The step-0 probe as a horizontal line: grey and shared when every rule has the same values."""
    inits = {name: [e["random_init_top1"] for e in entries if e.get("random_init_top1") is not None]
             for name, entries in runs.items()}
    inits = {k: v for k, v in inits.items() if v}
    if not inits:
        return
    shared = len({tuple(v) for v in inits.values()}) == 1
    for name, vals in ([("", next(iter(inits.values())))] if shared else list(inits.items())):
        color = "0.35" if shared else style.rule_color(name)
        who = "random init" if shared else f"{style.rule_name_label(name)} random init"
        gid = "random_init" + ("" if shared else f":{name.lower()}")
        ax.axhline(np.mean(vals), color=color, ls="--", lw=1.2, gid=gid,
                   label=f"{who} (step 0): {100 * np.mean(vals):.1f} %")
        if len(vals) > 1:
            ax.axhspan(min(vals), max(vals), color=color, alpha=0.12, lw=0, gid=gid + ":band")


@style.styled
def plot_figure2(runs: Mapping[str, Sequence[Mapping]], path: str | Path, title: str = "",
                 chance: float | None = None) -> Path:
    """The Figure-2 panels (module doc) of ``runs``: rule name -> one Figure-2 series per seed
    (``figure2.json``'s entries or :func:`~dualjax.vjepa.rundir.series` of each seed's records).
    ``chance``: the chance accuracy line in the probe panel. ``path``'s suffix picks the format."""
    if not runs or not all(runs.values()):
        raise ValueError(f"plot_figure2 needs at least one seed per rule, got {[(k, len(v)) for k, v in runs.items()]}")
    fig, axes = style.panels(2, 2, panel=PANEL, layout="constrained")
    (ax_obj, ax_inc), (ax_rel, ax_probe) = axes
    drawn: dict[str, list] = {"obj": [], "inc": [], "rel": [], "probe": []}
    for name, entries in runs.items():
        color, label, key = style.rule_color(name), style.rule_name_label(name), name.lower()
        x, Y = _aligned(entries, "E")
        drawn["obj"].append(_mean_band(ax_obj, x, Y, color=color, gid=f"E:{key}", ls="-", lw=1.6,
                                       label=fr"{label} $E(\theta_t,\psi_t)$"))
        x, Y = _aligned(entries, "F")
        drawn["obj"].append(_mean_band(ax_obj, x, Y, color=color, gid=f"F:{key}", ls="--", lw=1.2, marker="o",
                                       mfc="none", ms=5, shift=True, label=fr"{label} $F(\theta_t,\psi_t,\xi_t)$"))
        for panel, ax, per_lr in (("inc", ax_inc, False), ("rel", ax_rel, True)):
            for q, sym, kw in INCREMENTS:
                x, Y = _aligned(entries, q, per_lr=per_lr)
                norm = fr"\|{sym}_t - {sym}_{{t-1}}\|"
                drawn[panel].append(_mean_band(ax, x, Y, color=color, gid=f"{q}{'/lr' if per_lr else ''}:{key}",
                                               lw=1.3, ms=5, **kw,
                                               label=f"{label} ${norm}{' / lr_t' if per_lr else ''}$"))
        x, Y = _aligned(entries, "probe_top1")
        drawn["probe"].append(_mean_band(ax_probe, x, Y, color=color, gid=f"probe:{key}", ls="-", marker="o",
                                         ms=5, markevery=1, label=f"{label} held-out"))
        x, Y = _aligned(entries, "probe_train_top1")
        mean = " (mean)" if len(entries) > 1 else ""
        drawn["probe"].append(_mean_band(ax_probe, x, Y, color=color, gid=f"probe_train:{key}", ls=":", lw=0.9,
                                         marker="x", ms=4, markevery=1, band=False,
                                         label=f"{label} probe train{mean}"))
    _random_init(ax_probe, runs)
    if chance is not None:
        ax_probe.axhline(chance, color="k", ls=":", lw=0.8, gid="chance", label=f"chance ({100 * chance:.3g} %)")
    _finish(ax_obj, drawn["obj"], "(a) objective: E and F", "objective value")
    _finish(ax_inc, drawn["inc"], "(b) parameter increments", "increment norm")
    _finish(ax_rel, drawn["rel"], "(c) increments per unit learning rate", "increment norm / lr")
    levels = [ln.get_ydata()[0] for ln in ax_probe.lines if (ln.get_gid() or "").startswith(("random", "chance"))]
    top = max([float(np.max(v)) for v in drawn["probe"] if v.size] + levels, default=0.9)
    ax_probe.set_ylim(0, min(1.02, top + 0.12))
    _finish(ax_probe, [], "(d) attentive-probe top-1", "top-1 accuracy", log_ok=False)
    seeds = max(len(v) for v in runs.values())
    note = f"lines: mean over {seeds} seeds, bands: min–max" if seeds > 1 else ""
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(style.save(fig, path))


def plot_runs(runs: Mapping[str, list[dict]], path: str | Path, title: str = "", chance: float | None = None) -> Path:
    """:func:`plot_figure2` of one seed per rule, from each rule's ``metrics.jsonl`` records."""
    return plot_figure2({name: [rundir.series(records)] for name, records in runs.items()}, path, title, chance)

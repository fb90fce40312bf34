"""Figures of V-JEPA runs from their ``metrics.jsonl`` records (matplotlib, Agg-safe).

``plot_runs({"SG": records, "EMA": records}, path)`` draws the paper's Figure 2 panels side by
side: F and E(θ_t, ψ_t) over steps, the increments ‖θ_t − θ_{t−1}‖, ‖ψ_t − ψ_{t−1}‖,
‖ξ_t − ξ_{t−1}‖ (log scale), and held-out attentive-probe top-1 at the probed steps.
"""

from __future__ import annotations

from pathlib import Path

# No matplotlib.use(): savefig works under any backend (see dualjax/linear/montecarlo/figures.py).
import matplotlib.pyplot as plt  # noqa: E402

from dualjax import outputs


def _series(records: list[dict], key: str):
    pts = [(r["step"], r[key]) for r in records if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_runs(runs: dict[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """One column per run, rows: objective (F, E), increments, probe top-1."""
    names = list(runs)
    fig, axes = plt.subplots(3, len(names), figsize=(4.2 * len(names), 9), squeeze=False, sharex="col")
    probe_max = max([r.get("probe_top1", 0) for recs in runs.values() for r in recs] + [0.1])
    for j, name in enumerate(names):
        recs = runs[name]
        ax = axes[0, j]
        for key, style in (("F", "-"), ("E", "-")):
            x, y = _series(recs, key)
            ax.plot(x, y, style, label=key if key == "F" else "E(θ,ψ) = F(θ,ψ,θ)")
        x, y = _series(recs, "E")
        if y:
            k = min(range(len(y)), key=y.__getitem__)
            ax.plot([x[k]], [y[k]], "kv", label=f"min E at step {x[k]}")
        ax.set_title(f"{name}: objective")
        ax.legend(fontsize=8)
        ax = axes[1, j]
        for key, label in (("d_theta", "‖θ_t − θ_{t−1}‖"), ("d_psi", "‖ψ_t − ψ_{t−1}‖"),
                           ("d_xi", "‖ξ_t − ξ_{t−1}‖")):
            x, y = _series(recs, key)
            ax.semilogy(x, y, label=label)
        ax.set_title(f"{name}: parameter increments")
        ax.legend(fontsize=8)
        ax = axes[2, j]
        x, y = _series(recs, "probe_top1")
        ax.plot(x, y, "o-", label="held-out")
        x, y = _series(recs, "probe_train_top1")
        ax.plot(x, y, "x--", alpha=0.6, label="probe train")
        ax.set_ylim(0, min(1.0, probe_max * 1.15 + 0.05))
        ax.set_title(f"{name}: attentive-probe top-1")
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with outputs.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path

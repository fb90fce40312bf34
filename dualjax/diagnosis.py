"""``dualjax diagnose``: a verdict on collapse for a run's metrics, or for features from any framework.

* :func:`diagnose_run` reads the records of a V-JEPA run (``metrics.jsonl``) and answers "is this
  run collapsing?" with the rule of :mod:`dualjax.collapse`: when the flag first rose, whether it
  stayed, the moments the teacher rank dropped, and what E and the increments say. Under SG and
  EMA a rising E is expected (Prop 3.1) and is reported as such, not as collapse; a rank drop is
  the V-JEPA face of a rank-deficient equilibrium (Prop 4.5, rank r < m).
* :func:`load_features` / :func:`features_report` do the same for feature matrices dumped from
  any model (``.npy`` / ``.npz``, rows = samples or tokens): effective and numerical rank, the
  spectrum, the part of the energy that varies across rows, and with labels the between-class
  share of the variance and a leave-one-out nearest-class-mean accuracy. Several files are
  several checkpoints in order, judged against the first (:func:`compare_features`).
* :func:`plot_run` / :func:`plot_features` draw the figures.

Bad input raises ValueError with one line naming the file and the problem.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from dualjax import checks, collapse, rules, style

DROP = 0.25  # a logged step whose teacher rank is < (1 − DROP) × the previous one is a "rank drop"
VARYING_FLOOR = 0.01  # features whose varying energy is < 1 % of the total sit at one point
RANK_RTOL = 1e-4  # numerical rank of dumped features: σ_k > 1e-4 σ₁ (float32 data, with margin)


# --------------------------------------------------------------------------- runs

def read_run(run_dir: str | Path) -> tuple[list[dict], str | None]:
    """(records of ``run_dir/metrics.jsonl``, the teacher rule of its config.json or None)."""
    import json

    from dualjax.vjepa import rundir

    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"{run}: no such run directory")
    if not (run / rundir.METRICS).is_file():
        raise ValueError(f"{run / rundir.METRICS}: no such file (is {run} a run directory of dualjax train?)")
    records = []
    for i, line in enumerate((run / rundir.METRICS).read_text().splitlines(), 1):
        try:
            records += [json.loads(line)] if line.strip() else []
        except json.JSONDecodeError as err:
            raise ValueError(f"{run / rundir.METRICS}: line {i} is not JSON ({err.msg})") from None
    if not records:
        raise ValueError(f"{run / rundir.METRICS}: no records")
    if not all(isinstance(r, dict) and isinstance(r.get("step"), int) for r in records):
        raise ValueError(f"{run / rundir.METRICS}: every record must be a JSON object with an integer 'step'")
    teacher = None
    if (run / rundir.CONFIG).is_file():
        try:
            teacher = json.loads((run / rundir.CONFIG).read_text()).get("teacher")
        except (json.JSONDecodeError, AttributeError):
            teacher = None  # the verdict does not need it
    return records, teacher


def _series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return np.array([p[0] for p in pts], int), np.array([p[1] for p in pts], float)


def rank_drops(records: Sequence[dict], drop: float = DROP) -> list[dict]:
    """Consecutive logged steps where the teacher rank fell by more than ``drop`` of its value."""
    steps, rank = _series(records, "rank_teacher")
    return [{"from_step": int(steps[i - 1]), "step": int(steps[i]), "from": float(rank[i - 1]), "to": float(rank[i])}
            for i in range(1, len(rank)) if rank[i] < (1 - drop) * rank[i - 1]]


def diagnose_run(records: Sequence[dict], teacher: str | None = None, rule: collapse.Rule = collapse.Rule()) -> dict:
    """Verdict on a run from its records: ``verdict`` (collapsed | collapsed, then recovered |
    partial rank drop | no collapse | no collapse metrics), the facts behind it and ``lines``, the
    text shown by ``dualjax diagnose``. ``teacher`` (a registered rule's name) words the remarks on
    E and on the teacher's lag, from the rule's properties."""
    if not records:
        raise ValueError("the run has no records (empty metrics.jsonl)")
    teacher_rule = rules.get(teacher) if teacher in rules.names() else None  # default options
    ref = collapse.reference(records)
    flags = [(r["step"], collapse.check(r, ref, rule)) for r in records if r.get("rank_teacher") is not None]
    out: dict = {"records": len(records), "last_step": records[-1]["step"], "teacher": teacher, "rule": rule._asdict()}
    lines = []
    if not flags:
        out["verdict"] = "no collapse metrics"
        lines.append("NO COLLAPSE METRICS: this run was logged without them (trained before the collapse monitor); "
                     "only loss, E and increments are shown")
    else:
        first = next((s for s, why in flags if why), None)
        last = [r for r in records if r.get("rank_teacher") is not None][-1]
        nan = float("nan")
        out.update(first_collapse_step=first, collapsed_records=sum(bool(w) for _, w in flags),
                   rank_teacher_first=ref, rank_teacher_last=last["rank_teacher"],
                   std_target_first=next((r["std_target"] for r in records if r.get("std_target") is not None), nan),
                   std_target_last=last.get("std_target", nan), rank_drops=rank_drops(records))
        why_last = flags[-1][1]
        if why_last:
            out["verdict"] = "collapsed"
            lines.append(f"COLLAPSED: flagged from step {first} on ({out['collapsed_records']} of {len(flags)} records), "
                         f"at step {last['step']}: {'; '.join(why_last)}")
        elif first is not None:
            out["verdict"] = "collapsed, then recovered"
            lines.append(f"COLLAPSED, THEN RECOVERED: flagged from step {first} ({out['collapsed_records']} of "
                         f"{len(flags)} records), not at the last step {last['step']}")
        elif ref and last["rank_teacher"] < 0.5 * ref:
            out["verdict"] = "partial rank drop"
            lines.append(f"PARTIAL RANK DROP: teacher rank {ref:.1f} -> {last['rank_teacher']:.1f} "
                         f"({100 * last['rank_teacher'] / ref:.0f} % of its first value; the flag is at "
                         f"{100 * rule.rank_fraction:.0f} %)")
        else:
            out["verdict"] = "no collapse"
            lines.append(f"NO COLLAPSE: teacher rank {ref:.1f} -> {last['rank_teacher']:.1f}, target std "
                         f"{out['std_target_first']:.3f} -> {out['std_target_last']:.3f}")
        lines.append(f"  effective ranks at step {last['step']}: student {last.get('rank_student', nan):.1f}, "
                     f"teacher {last['rank_teacher']:.1f}, predictor {last.get('rank_pred', nan):.1f}; "
                     f"cos(student, teacher) {last.get('cos_student_teacher', nan):.3f}")
        s_first = next((r["rank_student"] for r in records if r.get("rank_student") is not None), None)
        if s_first and last.get("rank_student") is not None and last["rank_student"] < 0.5 * s_first and not why_last:
            lines.append(f"  note: the student's rank fell to {100 * last['rank_student'] / s_first:.0f} % of its first "
                         f"value ({s_first:.1f} -> {last['rank_student']:.1f})"
                         + ("; the teacher copy follows it with a lag" if teacher_rule and teacher_rule.carries_teacher
                            else ""))
        for d in out["rank_drops"][:8]:
            lines.append(f"  rank drop: step {d['from_step']} -> {d['step']}: teacher rank {d['from']:.1f} -> {d['to']:.1f}")
    lines.extend(_energy_lines(records, teacher, teacher_rule, out))
    out["lines"] = lines
    return out


def _energy_lines(records, teacher: str | None, teacher_rule: rules.TeacherRule | None, out) -> list[str]:
    steps, E = _series(records, "E")
    if not len(E):
        return []
    k = int(np.argmin(E))
    out.update(E_first=float(E[0]), E_min=float(E[k]), E_min_step=int(steps[k]), E_last=float(E[-1]))
    lines = [f"E: {E[0]:.4g} -> min {E[k]:.4g} at step {steps[k]} -> {E[-1]:.4g} at step {steps[-1]}"]
    rose = E[-1] > E[k] + 0.05 * abs(E[k]) and k < len(E) - 1
    descends_E = teacher_rule is not None and rules.passes_gradient(teacher_rule)
    if rose and teacher_rule is not None and not descends_E:
        lines.append(f"  E rose {100 * (E[-1] - E[k]) / abs(E[k]):.0f} % after its minimum: expected under "
                     f"{teacher.upper()}, which does not minimize E (Prop 3.1): not by itself collapse, the ranks say that")
    elif descends_E and out.get("verdict", "").startswith("collapsed"):
        lines.append(f"  {teacher} descends E itself and reaches low E by collapsing (Lemma 4.3 in the linear model)")
    _, dth = _series(records, "d_theta")
    _, lr = _series(records, "lr")
    if len(dth) == len(lr) and len(dth) >= 4:
        q = max(1, len(dth) // 4)
        ratio = dth / np.maximum(lr, 1e-30)
        out.update(d_theta_per_lr_first_quarter=float(ratio[:q].mean()), d_theta_per_lr_last_quarter=float(ratio[-q:].mean()))
        lines.append(f"increments: ||dθ||/lr {ratio[:q].mean():.3g} in the first quarter, {ratio[-q:].mean():.3g} "
                     "in the last (the parameters keep moving if it stays well above 0)")
    return lines


# --------------------------------------------------------------------------- features files

def load_features(path: str | Path, key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, labels or None) from a ``.npy`` file or an ``.npz`` archive (array ``key``, or its
    only array, or ``features``; ``labels`` from the archive if present). Features are
    (samples, dims) or (samples, tokens, ..., dims), finite, with at least 2 rows."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    if p.suffix not in (".npy", ".npz"):
        raise ValueError(f"{p}: expected a .npy or .npz file")
    labels = None
    try:
        with open(p, "rb") as f:
            data = np.load(f, allow_pickle=False)
            if p.suffix == ".npz":
                names = [n for n in data.files if n != "labels"]
                if key is None:
                    key = names[0] if len(names) == 1 else "features" if "features" in names else None
                if key is None or key not in data.files:
                    raise ValueError(f"{p}: choose the features array with --key (arrays: {', '.join(data.files) or 'none'})")
                labels = np.asarray(data["labels"]) if "labels" in data.files else None
                data = data[key]
            z = np.asarray(data)
    except (OSError, EOFError) as err:
        raise ValueError(f"{p}: not a readable NumPy file ({err})") from None
    except ValueError as err:
        raise ValueError(str(err) if str(err).startswith(str(p)) else f"{p}: not a readable NumPy file ({err})") from None
    return check_features(z, str(p)), labels


def check_features(z, name: str = "features") -> np.ndarray:
    """``z`` as a float array of at least 2 rows and 1 column with finite values; else ValueError."""
    z = np.asarray(z)
    if not (np.issubdtype(z.dtype, np.number) or z.dtype == bool):
        raise ValueError(f"{name}: features must be numeric, got dtype {z.dtype}")
    if z.ndim < 2 or z.shape[-1] < 1:
        raise ValueError(f"{name}: features must have shape (samples, dims) or (samples, tokens, dims), "
                         f"got shape {z.shape}")
    if z.size // z.shape[-1] < 2:
        raise ValueError(f"{name}: need at least 2 samples to measure a spectrum, got shape {z.shape}")
    bad = ~np.isfinite(z)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} of {z.size} values are NaN or infinite "
                         f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])})")
    return z.astype(np.float64)


def load_labels(path: str | Path, samples: int) -> np.ndarray:
    """Integer labels, one per sample (the features' first axis), from a ``.npy`` file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    try:
        y = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{p}: not a readable .npy file ({err})") from None
    return check_labels(y, samples, str(p))


def check_labels(y, samples: int, name: str = "labels") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != samples:
        raise ValueError(f"{name}: need one label per sample, shape ({samples},), got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError(f"{name}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


@checks.float64
def features_report(z: np.ndarray, labels: np.ndarray | None = None, name: str = "features") -> dict:
    """Spectrum and rank of features ``z`` (samples, ..., dims) (rows: every leading index).

    ``effective_rank`` (RankMe), ``numerical_rank`` (σ_k > 10⁻⁴ σ₁), ``spectrum`` (the top σ_k / Σσ),
    ``cov_top`` (top covariance eigenvalues), ``std`` (mean per-dimension std over rows),
    ``varying`` = 1 − ‖z̄‖² / mean ‖z_i‖² (the share of the energy that differs between rows; 0 when
    every row is one vector). With labels (one per sample; tokens averaged per sample):
    ``between_class`` = Σ_c n_c ‖μ_c − μ‖² / Σ_i ‖z_i − μ‖² and ``ncm_accuracy``, leave-one-out
    nearest-class-mean accuracy, beside ``chance`` (the largest class share)."""
    z = check_features(z, name)
    Z = jnp.asarray(z.reshape(-1, z.shape[-1]))
    s = np.asarray(collapse.singular_values(Z))
    energy = float(jnp.mean(jnp.sum(Z * Z, axis=-1)))
    mean = np.asarray(jnp.mean(Z, axis=0))
    rep = {
        "name": name, "shape": list(z.shape), "rows": int(Z.shape[0]), "dims": int(Z.shape[1]),
        "effective_rank": float(collapse.spectrum_rank(jnp.asarray(s))),
        "numerical_rank": int(collapse.numerical_rank(Z, rtol=RANK_RTOL, atol=0.0)),
        "spectrum": [float(x) for x in s[:16] / max(s.sum(), 1e-300)],
        "cov_top": [float(x) for x in np.asarray(collapse.covariance_top(Z, 4))],
        "std": float(jnp.mean(jnp.std(Z, axis=0))),
        "varying": float(1 - mean @ mean / energy) if energy > 0 else 0.0,
    }
    if labels is not None:
        pooled = z.reshape(z.shape[0], -1, z.shape[-1]).mean(axis=1)
        rep.update(_label_metrics(pooled, check_labels(labels, z.shape[0], f"{name} labels")))
    return rep


def _label_metrics(x: np.ndarray, y: np.ndarray) -> dict:
    classes, idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    mu = x.mean(0)
    means = np.stack([x[idx == c].mean(0) for c in range(len(classes))])
    total = float(np.sum((x - mu) ** 2))
    between = float(np.sum(counts * np.sum((means - mu) ** 2, axis=1)))
    d2 = np.sum((x[:, None, :] - means[None]) ** 2, axis=-1)  # (N, C)
    n_own = counts[idx]
    loo = (n_own[:, None] * means[idx] - x) / np.maximum(n_own - 1, 1)[:, None]  # own class mean without x_i
    own = np.where(n_own > 1, np.sum((x - loo) ** 2, axis=1), np.inf)
    d2[np.arange(len(x)), idx] = own
    return {"classes": int(len(classes)), "between_class": between / total if total > 0 else 0.0,
            "ncm_accuracy": float(np.mean(np.argmin(d2, axis=1) == idx)), "chance": float(counts.max() / len(y))}


def compare_features(reports: Sequence[dict], rule: collapse.Rule = collapse.Rule()) -> dict:
    """Verdict over feature reports of successive checkpoints (or one file): a file is flagged when
    its effective rank is below ``rule.rank_fraction`` × the first file's, or when less than 1 %
    of its energy varies between rows (all rows ≈ one vector: the scale-free form of the
    trainer's std floor). Unflagged, the verdict is "partial rank drop" if the last file's rank is
    below half the first's, "rank-deficient" if some file's numerical rank is below min(rows, dims)
    − 1. Returns ``verdict``, ``flagged`` (file indices) and ``lines``."""
    ref = reports[0]["effective_rank"]
    lines, flagged = [], []
    for i, r in enumerate(reports):
        why = []
        if len(reports) > 1 and r["effective_rank"] < rule.rank_fraction * ref:
            why.append(f"effective rank < {rule.rank_fraction:g} x the first file's {ref:.1f}")
        if r["varying"] < VARYING_FLOOR:
            why.append(f"only {100 * r['varying']:.2f} % of the energy varies between rows")
        if why:
            flagged.append(i)
        text = (f"{r['name']}: {r['rows']} rows x {r['dims']} dims, effective rank {r['effective_rank']:.2f}, "
                f"numerical rank {r['numerical_rank']}, varying energy {100 * r['varying']:.1f} %, "
                f"top σ/Σσ {', '.join(f'{x:.3f}' for x in r['spectrum'][:3])}")
        if "ncm_accuracy" in r:
            text += (f"; {r['classes']} classes: between-class variance {100 * r['between_class']:.1f} %, "
                     f"nearest-class-mean accuracy {100 * r['ncm_accuracy']:.1f} % (chance {100 * r['chance']:.1f} %)")
        lines.append(text + (f"  <- COLLAPSED: {'; '.join(why)}" if why else ""))
    # one missing dimension is what a final LayerNorm or centring removes by construction
    lowrank = [r for r in reports if r["numerical_rank"] < min(r["rows"], r["dims"]) - 1]
    last = reports[-1]
    if flagged:
        verdict = "collapsed" if flagged[-1] == len(reports) - 1 else "collapsed, then recovered"
    elif len(reports) > 1 and last["effective_rank"] < 0.5 * ref:
        verdict = "partial rank drop"
    elif lowrank:
        verdict = "rank-deficient"
    else:
        verdict = "no collapse"
    head = {"collapsed": f"COLLAPSED from file {flagged[0] + 1} on" if flagged else "",
            "collapsed, then recovered": "COLLAPSED in some files, not in the last",
            "partial rank drop": f"PARTIAL RANK DROP: effective rank {ref:.2f} -> {last['effective_rank']:.2f} "
                                 f"({100 * last['effective_rank'] / ref:.0f} % of the first file's; the flag is at "
                                 f"{100 * rule.rank_fraction:.0f} %)",
            "rank-deficient": "RANK-DEFICIENT (dimensional collapse): the features span "
                              + ", ".join(f"{r['numerical_rank']} of {min(r['rows'], r['dims'])}" for r in lowrank)
                              + " possible dimensions",
            "no collapse": "NO COLLAPSE"}[verdict]
    return {"verdict": verdict, "flagged": flagged, "lines": [head] + lines}


# --------------------------------------------------------------------------- figures

@style.styled
def plot_run(records: Sequence[dict], path: str | Path, title: str = "", rule: collapse.Rule = collapse.Rule()) -> Path:
    """Four panels over steps: F and E; effective ranks with the rule's threshold; target and
    prediction std with the floor, and cos(student, teacher); increments per unit lr. Flagged
    steps are shaded, rank drops marked with dotted lines."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    ax = axes[0, 0]
    for key in ("F", "E"):
        ax.plot(*_series(records, key), label=r"$F(\theta, \psi, \xi)$" if key == "F" else r"$E = F(\theta, \psi, \theta)$")
    ax.set(title="objective", ylabel="objective value")
    ax = axes[0, 1]
    for key, label in (("rank_teacher", "teacher targets"), ("rank_student", "student"), ("rank_pred", "predictor")):
        ax.plot(*_series(records, key), label=label)
    ref = collapse.reference(records)
    if ref:
        ax.axhline(rule.rank_fraction * ref, color="k", ls="--", lw=0.8, label=f"{rule.rank_fraction:g} x first")
    ax.set(title="effective rank (RankMe)", ylabel="effective rank")
    ax = axes[1, 0]
    ax.semilogy(*_series(records, "std_target"), label="target std")
    ax.semilogy(*_series(records, "std_pred"), label="prediction std (pstd)")
    ax.axhline(rule.std_floor, color="k", ls="--", lw=0.8, label="floor")
    steps, cos = _series(records, "cos_student_teacher")
    if len(cos):
        ax2 = ax.twinx()
        ax2.plot(steps, cos, color="gray", alpha=0.6, lw=0.8)
        ax2.set_ylim(min(-0.05, float(cos.min()) - 0.05), 1.05)
        ax2.set_ylabel("cos(student, teacher)", color="gray")
    ax.set(title="token std", ylabel="std")
    ax = axes[1, 1]
    steps, lr = _series(records, "lr")
    for key, label in (("d_theta", r"$\|\Delta\theta\| / \mathrm{lr}$"), ("d_psi", r"$\|\Delta\psi\| / \mathrm{lr}$"),
                       ("d_xi", r"$\|\Delta\xi\| / \mathrm{lr}$")):
        s, d = _series(records, key)
        if len(s) == len(steps):
            ax.semilogy(s, d / np.maximum(lr, 1e-30), label=label)
    ax.set(title="increments per unit of learning rate", ylabel="increment / lr")
    logged = [r["step"] for r in records]
    spans = [(s, logged[i + 1] if i + 1 < len(logged) else s + 1) for i, s in enumerate(logged) if records[i].get("collapse")]
    for a in axes.flat:
        for lo, hi in spans:
            a.axvspan(lo, hi, color="red", alpha=0.08, lw=0)
        for d in rank_drops(records):
            a.axvline(d["step"], color="red", ls=":", lw=0.8)
        a.legend(fontsize=7)
    for a in axes[1]:
        a.set_xlabel("step")
    fig.suptitle(title or "collapse diagnosis (red: flagged steps; dotted: rank drops)")
    return _save(fig, path)


@style.styled
def plot_features(reports: Sequence[dict], path: str | Path) -> Path:
    """Normalized singular spectra σ_k / Σσ of each file, and effective / numerical rank per file."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for r in reports:
        a.semilogy(np.arange(1, len(r["spectrum"]) + 1), r["spectrum"], "o-", ms=3, label=Path(r["name"]).name)
    a.set(xlabel="$k$", ylabel=r"$\sigma_k / \sum_j \sigma_j$", title="top singular values")
    a.legend(fontsize=7)
    x = np.arange(1, len(reports) + 1)
    b.plot(x, [r["effective_rank"] for r in reports], "o-", label="effective rank")
    b.plot(x, [r["numerical_rank"] for r in reports], "s--", label="numerical rank")
    b.set_xticks(x, [Path(r["name"]).name for r in reports], rotation=20, fontsize=7)
    b.set_yscale("log")
    b.set_xlabel("file (checkpoint order)")
    b.set(title="rank", ylabel="rank")
    b.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(style.save(fig, path))

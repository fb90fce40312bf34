"""Figures of the m = 1 study (Prop 4.11, MATH.md §6–7), in the look of :mod:`dualjax.style` (a colour
per rule and per outcome, mathtext labels) and the format of the path's suffix (png, svg or pdf).

* :func:`plot_trajectories` — paths of a ∈ R² (n = 2) under each rule (SG and EMA by default) with the circles S₁
  (saddle, radius r₁) and S₂ (stable, radius r₂);
* :func:`plot_basins` — which equilibrium each initial a₀ ends at (B₀ held fixed);
* :func:`plot_fractions` — outcome fractions per rule with Wilson 95 % intervals;
* :func:`plot_energy` — E(θ_t, ψ_t) (and F(θ_t, ψ_t, ξ_t) for a rule with a copy) along sample trajectories,
  with the steps where they rise marked (Prop 3.1: SG / EMA do not minimize E).

Every trajectory here is run with :func:`dualjax.rules.make_step` on the moment-form F of
:func:`dualjax.linear.model.objective` by the driver :func:`dualjax.dynamics.trajectory`, the same
rules that drive the Monte Carlo study; every function takes rule objects; the
basin maps run their grid of starts through :func:`~dualjax.linear.montecarlo.run.run_points`.
:func:`study_figures` draws all of them for a finished study.
"""

from __future__ import annotations

import functools
import os

# No matplotlib.use(): figures are saved with savefig, which works under any backend, and
# forcing Agg at import would silence plt.show() in a notebook that imports this module.
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from dualjax import dynamics, rules, style  # noqa: E402
from dualjax.linear import model, spheres  # noqa: E402
from dualjax.linear.montecarlo.config import Config  # noqa: E402
from dualjax.linear.montecarlo.slots import ORIGIN, OUTCOMES, OUTER  # noqa: E402
from dualjax.linear.montecarlo.run import run_points  # noqa: E402
from dualjax.linear.montecarlo.hostpool import KERNEL_SAMPLE_BATCH, sampler  # noqa: E402
from dualjax.linear.montecarlo.trials import Trial  # noqa: E402

COLORS = style.OUTCOME_COLORS  # where a run ended; the spheres are drawn in style.SPHERE_STYLE on top

# An instance with well separated circles: Δ = 0.16, r₁ = 0.2, r₂ = 1.0.
EXAMPLE = {"rho": 0.5, "tau": 0.6, "lam": 0.1}

# The trajectories' starts and the energy cases (padded) are batches of this many paths of the
# same length, so a study's figures compile one path program per rule (~0.6 s each, cold).
PATH_BATCH = 10


def default_rules() -> tuple[rules.TeacherRule, ...]:
    """The paper's pair: SG and EMA with α = 0.99."""
    return rules.sg(), rules.ema(0.99)


def rule_label(rule: rules.TeacherRule) -> str:
    """``SG``, ``EMA (α=0.99)``, ...: the name, and the constant α of a rule that carries a teacher."""
    alpha = f" (α={rule.ema_alpha})" if rule.carries_teacher and rule.ema_alpha is not None else ""
    return style.rule_name_label(rule.name) + alpha


def run_paths(rule: rules.TeacherRule, a0, B0, rho, tau, lam, *, eta=0.05, num_steps=4000, every=10):
    """Batched (a_t, E_t, F_t) every ``every`` steps of a discrete rule, plus t = 0, by the
    driver's :func:`dualjax.dynamics.trajectory`.

    ``a0`` (P, n), ``B0`` (P, n, n), ``rho``/``tau``/``lam`` (P,): one path per row, vmapped in
    one jit. F_t = F(θ_t, ψ_t, ξ_t) with the rule's teacher (= E_t without a copy).
    Returns arrays of shapes (P, T, n), (P, T), (P, T) with T = num_steps // every + 1.
    """
    rules.check_rule(rule)
    with jax.enable_x64(True):
        args = [jnp.asarray(np.asarray(x, np.float64)) for x in (a0, B0, rho, tau, lam)]
        a, E, F = _paths_function(rule, float(eta), int(num_steps), int(every))(*args)
    return np.asarray(a), np.asarray(E), np.asarray(F)


@functools.lru_cache(maxsize=16)
def _paths_function(rule: rules.TeacherRule, eta: float, num_steps: int, every: int):
    """:func:`run_paths`'s jitted batch, one per setting: the figures of a study ask for the same
    rule's paths more than once."""

    def one(a, B, r, t, l):
        obj = model.objective(l)
        mom = model.make_moments(r, t)
        init, step = rules.make_step(obj.F, rule, optax.sgd(eta), features=obj.features)
        s0 = init(a[:, None], B)
        _, snaps = dynamics.trajectory(step, s0, mom, num_steps=num_steps, every=every, E=obj.E, F=obj.F,
                                       rule=rule)
        E0 = obj.E(s0.theta, s0.psi, mom)
        F0 = obj.F(s0.theta, s0.psi, rule.teacher(s0.theta, s0.teacher), mom)
        return (jnp.concatenate([a[None], snaps["theta"][:, :, 0]]), jnp.concatenate([E0[None], snaps["E"]]),
                jnp.concatenate([F0[None], snaps["F"]]))

    return jax.jit(jax.vmap(one))


def _circles(ax, rho, tau, lam):
    """S₂ (stable, solid) and S₁ (saddle, dashed) in black over any background, and the origin."""
    r1, r2 = (float(r) for r in spheres.radii(rho, tau, lam))
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(r2 * np.cos(t), r2 * np.sin(t), **style.SPHERE_STYLE["S2"], label=rf"$S_2$ (stable), $r_2$={r2:.3g}",
            gid="S2")
    ax.plot(r1 * np.cos(t), r1 * np.sin(t), **style.SPHERE_STYLE["S1"], label=rf"$S_1$ (saddle), $r_1$={r1:.3g}",
            gid="S1")
    ax.plot(0, 0, **style.SPHERE_STYLE["origin"], gid="origin")
    return r1, r2


def _instance(rho, tau, lam, eta) -> str:
    return rf"$\rho$={rho:g}, $\tau$={tau:g}, $\lambda$={lam:g}, $\eta$={eta:g}"


def _outcome_of_end(a_end, r2) -> str:
    end = np.linalg.norm(a_end)
    return "outer" if abs(end - r2) < 1e-2 * (1 + r2) else ("origin" if end < 1e-2 else "not_converged")


@style.styled
def plot_trajectories(path, rules_=None, *, rho=EXAMPLE["rho"], tau=EXAMPLE["tau"], lam=EXAMPLE["lam"], eta=0.05,
                      num_starts=PATH_BATCH, seed=0, num_steps=20_000, every=20) -> str:
    """Trajectories of a ∈ R² (n = 2) for each rule (default SG and EMA) from the same starts,
    with S₁ and S₂."""
    rules_ = default_rules() if rules_ is None else rules_
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, num_starts, endpoint=False) + 0.3
    radii_ = np.geomspace(0.08, 1.6, num_starts)
    starts = np.stack([radii_ * np.cos(angles), radii_ * np.sin(angles)], 1)
    B0s = rng.uniform(-1, 1, (num_starts, 2, 2)) / np.sqrt(2) * 0.5
    fig, axes = style.panels(1, len(rules_), panel=(4.2, 4.4))
    ends = set()
    for ax, rule in zip(axes[0], rules_):
        r1, r2 = _circles(ax, rho, tau, lam)
        full = np.full(num_starts, 1.0)
        paths, _, _ = run_paths(rule, starts, B0s, rho * full, tau * full, lam * full, eta=eta, num_steps=num_steps,
                                every=every)
        for a in paths:
            outcome = _outcome_of_end(a[-1], r2)
            ends.add(outcome)
            ax.plot(a[:, 0], a[:, 1], color=style.rule_color(rule.name), lw=1.0, alpha=0.8, gid="path")
            ax.plot(a[0, 0], a[0, 1], "x", color="k", ms=6, gid="start")
            ax.plot(a[-1, 0], a[-1, 1], "o", color=COLORS[outcome], ms=7, mec="k", gid=f"end:{outcome}")
        lim = 1.15 * max(r2, np.abs(starts).max())
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="$a_1$", ylabel="$a_2$",
               title=rule_label(rule))
    handles = [*axes[0, 0].get_legend_handles_labels()[0],
               Line2D([], [], color="k", marker="x", ls="none", ms=6, label=r"start $a_0$"),
               *(Line2D([], [], color=COLORS[o], marker="o", mec="k", ls="none", ms=7,
                        label=f"end: {style.OUTCOME_LABELS[o]}") for o in OUTCOMES if o in ends)]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.suptitle("Prop 4.11 (m = 1, n = 2): paths of $a_t$ end on $S_2$ or at the origin, never on $S_1$\n"
                 + _instance(rho, tau, lam, eta) + " (a fixed example instance, not the study's data)")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return style.save(fig, path)


def basin_map(rule: rules.TeacherRule, *, rho=EXAMPLE["rho"], tau=EXAMPLE["tau"], lam=EXAMPLE["lam"], eta=0.05,
              grid=61, extent=1.5, seed=0, max_steps=40_000):
    """Outcome codes (:data:`~dualjax.linear.montecarlo.slots.OUTCOMES`) on a grid of a₀ ∈ [−extent, extent]²,
    with one fixed B₀ (PyTorch-style init, seed ``seed``)."""
    xs = np.linspace(-extent, extent, grid)
    X, Y = np.meshgrid(xs, xs)
    a0 = np.stack([X.ravel(), Y.ravel()], 1)
    B0 = np.random.default_rng(seed).uniform(-1, 1, (2, 2)) / np.sqrt(2)
    k = a0.shape[0]
    trials = Trial(np.arange(k, dtype=np.int32), np.full(k, rho), np.full(k, tau), np.full(k, lam), a0,
                      np.broadcast_to(B0, (k, 2, 2)).copy())
    cfg = Config(n=2, eta=eta, max_steps=max_steps)
    res = run_points(trials, rule, cfg)
    return xs, res["outcome"].reshape(grid, grid), B0


@style.styled
def plot_basins(path, rules_=None, *, rho=EXAMPLE["rho"], tau=EXAMPLE["tau"], lam=EXAMPLE["lam"], eta=0.05,
                grid=61, extent=1.5, max_steps=40_000) -> str:
    """Basin-of-attraction maps over a₀ (B₀ fixed) for each rule (default SG and EMA), with S₁ and S₂."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    rules_ = default_rules() if rules_ is None else rules_
    cmap = ListedColormap([COLORS[o] for o in OUTCOMES])
    fig, axes = style.panels(1, len(rules_), panel=(4.2, 4.4))
    present = set()
    for ax, rule in zip(axes[0], rules_):
        xs, codes, B0 = basin_map(rule, rho=rho, tau=tau, lam=lam, eta=eta, grid=grid, extent=extent,
                                  max_steps=max_steps)
        ax.imshow(codes, origin="lower", extent=(-extent, extent, -extent, extent), cmap=cmap, vmin=-0.5,
                  vmax=len(OUTCOMES) - 0.5, interpolation="nearest")
        _circles(ax, rho, tau, lam)
        shares = {o: float(np.mean(codes == i)) for i, o in enumerate(OUTCOMES)}
        present |= {o for o, v in shares.items() if v > 0}
        ax.set(aspect="equal", xlabel="$a_1(0)$", ylabel="$a_2(0)$",
               title=f"{rule_label(rule)}: $S_2$ {100 * shares['outer']:.0f}%, origin {100 * shares['origin']:.0f}%")
    handles = [Patch(facecolor=COLORS[o], edgecolor="0.4", label=style.OUTCOME_LABELS[o]) for o in OUTCOMES
               if o in present] + axes[0, 0].get_legend_handles_labels()[0]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, title="run from $a_0$ ends at")
    b0 = "[" + "; ".join(" ".join(f"{v:.2f}" for v in row) for row in np.asarray(B0)) + "]"
    fig.suptitle("Basins of attraction over $a_0$, $B_0$ = " + b0 + " fixed\n" + _instance(rho, tau, lam, eta)
                 + " (a fixed example instance, not the study's data)")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return style.save(fig, path)


@style.styled
def plot_fractions(path, summ: dict) -> str:
    """Bars of the outcome fractions per rule (overall and given Δ ≥ 0) with Wilson 95 % intervals,
    and the paper's reported values as markers."""
    rules_ = list(summ["rules"])
    fig, axes = style.panels(1, 2, panel=(4.6, 3.8), sharey=True)
    axes = axes[0]
    width = 0.8 / len(rules_)
    x = np.arange(len(OUTCOMES))
    cond = summ["rules"][rules_[0]]["delta_nonneg"]
    n_total = summ["rules"][rules_[0]]["trials"]
    for ax, key, title in zip(axes, ("fractions", "fractions_given_delta_nonneg"),
                              ("all trials", r"given $\Delta \geq 0$")):
        for j, rule in enumerate(rules_):
            fr = summ["rules"][rule][key]
            p = np.array([fr[o]["fraction"] for o in OUTCOMES])
            lo = np.array([fr[o]["ci95"][0] for o in OUTCOMES])
            hi = np.array([fr[o]["ci95"][1] for o in OUTCOMES])
            xpos = x + (j - (len(rules_) - 1) / 2) * width
            ax.bar(xpos, 100 * p, width, yerr=100 * np.stack([p - lo, hi - p]), capsize=3,
                   label=style.rule_name_label(rule), color=style.rule_color(rule), gid=f"bars:{rule}")
            paper = summ.get("paper", {}).get(rule, {}) if key != "fractions" else {}  # the paper's are given Δ ≥ 0
            top = np.maximum(hi, [paper.get(o, 0.0) for o in OUTCOMES])
            for xp, v, h in zip(xpos, p, top):  # above the interval's cap and the paper's mark, not on them
                ax.text(xp, 100 * h + 1.5, f"{100 * v:.1f}", ha="center", va="bottom", fontsize=7, rotation=90)
            for o, v in paper.items():
                i = OUTCOMES.index(o)
                ax.plot(xpos[i], 100 * v, marker="_", color="k", ms=14, mew=2, ls="none", gid=f"paper:{rule}",
                        label="paper" if j == 0 and i == 0 else None)
        ax.set(xticks=x, ylim=(0, 118), title=f"{title} (N = {n_total if key == 'fractions' else cond['count']})")
        ax.set_xticklabels([style.OUTCOME_LABELS[o].replace(" ", "\n", 1) for o in OUTCOMES], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("% of trials (95% Wilson interval)")
    axes[1].legend(loc="upper right")
    cfg = summ.get("config", {})
    alphas = ", ".join(f"{style.rule_name_label(name)} $\\alpha$={d['ema_alpha']}"
                       for name, d in summ.get("rule_settings", {}).items()
                       if d.get("carries_teacher") and d.get("ema_alpha") is not None)
    fig.suptitle(f"m = 1 Monte Carlo: n={cfg.get('n')}, $\\eta$={cfg.get('eta')}{', ' + alphas if alphas else ''}, "
                 f"init {cfg.get('init')}×{cfg.get('init_scale')}, budget {cfg.get('max_steps')} steps\n"
                 rf"P($\Delta \geq 0$): empirical {cond['count']}/{n_total} = {cond['fraction']:.4f}"
                 + (f", exact {exact:.4f} (MATH.md §7)" if (exact := summ.get("delta_nonneg_exact")) is not None
                    else ", exact: not for these ranges"))
    fig.tight_layout()
    return style.save(fig, path)


@style.styled
def plot_energy(path, cases: list[dict], *, eta=0.05, num_steps=20_000, every=20) -> str:
    """E_t (solid, in the rule's colour) and F_t (dashed, for a rule that carries a teacher) along
    sample trajectories; shaded spans mark the sampled intervals where E rose. A case labelled
    ``control: ...`` (a collapsing run, :func:`energy_cases`) is titled as the control.

    Each case is a dict with ``rule`` (a TeacherRule), ``rho, tau, lam, a0, B0`` and an optional ``label``.
    """
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.8), squeeze=False)
    for ax, case, (a, E, F) in zip(axes[0], cases, _case_paths(cases, eta=eta, num_steps=num_steps, every=every)):
        t = np.arange(E.size) * every
        _energy_panel(ax, t, E, F, case, a[-1])
    fig.suptitle(r"Prop 3.1: SG / EMA do not decrease $E$ (or $F$) monotonically; a collapsing run as control")
    fig.tight_layout()
    return style.save(fig, path)


def _energy_panel(ax, t, E, F, case, a_end) -> None:
    """One panel of :func:`plot_energy`: the curves, the rising intervals as spans, the labels."""
    rule = case["rule"]
    ax.plot(t, E, color=style.rule_color(rule.name), lw=1.8, label=r"$E(\theta_t, \psi_t)$", gid="E")
    if rule.carries_teacher:
        ax.plot(t, F, color="k", ls="--", lw=1.2, label=r"$F(\theta_t, \psi_t, \xi_t)$", gid="F")
    up = np.flatnonzero(np.diff(E) > 1e-12 * np.abs(E[:-1]) + 1e-15)  # E rose on (t[i], t[i+1])
    runs = np.split(up, np.flatnonzero(np.diff(up) > 1) + 1) if up.size else []
    rise = float(np.max(np.diff(E), initial=0.0))
    for j, run in enumerate(runs):  # one span per stretch of rising samples: not a clump of dots
        ax.axvspan(t[run[0]], t[run[-1] + 1], color="crimson", alpha=0.18, lw=0, gid="E rose",
                   label=f"E rose: {up.size} of {E.size - 1} intervals,\nlargest rise {rise:.2g}" if j == 0 else None)
    ax.set_xscale("symlog", linthresh=t[1] * 10)
    label = case.get("label") or rule_label(rule)
    ax.set(xlabel="step $t$", ylabel="objective value",
           title=label + "\n" + rf"$\rho$={case['rho']:.2f}, $\tau$={case['tau']:.2f}, $\lambda$={case['lam']:.3f}; "
           rf"$\|a\|\to${np.linalg.norm(a_end):.2f}")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)


def _case_paths(cases: list[dict], batch: int = PATH_BATCH, **kwargs) -> list[tuple]:
    """:func:`run_paths` of each case (a_t, E_t, F_t), one batched run per rule, padded (by
    repeating its last case) to a multiple of ``batch`` paths."""
    out: list = [None] * len(cases)
    for rule in dict.fromkeys(case["rule"] for case in cases):
        rows = [i for i, case in enumerate(cases) if case["rule"] == rule]
        padded = rows + rows[-1:] * (-len(rows) % batch)
        res = run_paths(rule, *([cases[i][k] for i in padded] for k in ("a0", "B0", "rho", "tau", "lam")), **kwargs)
        for j, i in enumerate(rows):
            out[i] = tuple(x[j] for x in res)
    return out


def energy_cases(results: dict, cfg, seed: int, rules_, max_cases: int = 3) -> list[dict]:
    """Pick sample trials of a study for :func:`plot_energy`: for each rule a trial that reached
    S₂ with E increasing, and a collapsed trial of the first rule."""
    by_name = {rule.name: rule for rule in rules_}
    wanted = [(name, OUTER, f"{style.rule_name_label(name)} → $S_2$") for name in results]
    wanted += [(name, ORIGIN, f"control: {style.rule_name_label(name)} → origin") for name in list(results)[:1]]
    picks = []
    for name, want, label in wanted:
        cols = results[name]
        sel = np.flatnonzero((cols["outcome"] == want) & (cols["e_increased"] if want == OUTER else True)
                             & (cols["steps"] < 20_000) & ~(cols["r2"] > 2.0))  # typical radii, readable axes
        if sel.size == 0 or name not in by_name:
            continue
        best = sel[np.argmax(cols["max_E_rise"][sel])] if want == OUTER else sel[0]  # most visible rise
        picks.append((name, int(cols["index"][best]), label))
    picks = picks[:max_cases]
    if not picks:
        return []
    # The study's own sampler (compiled for the kernel pool's batch; the picks padded to it), so
    # the trials are those of the study and a study on the kernel engine compiles nothing here.
    index = np.zeros(KERNEL_SAMPLE_BATCH, np.int32)
    index[:len(picks)] = [idx for _, idx, _ in picks]
    with jax.enable_x64(True):
        trials = jax.device_get(sampler(cfg)(jax.random.PRNGKey(seed), index))
    return [{"rule": by_name[name], "rho": float(trials.rho[i]), "tau": float(trials.tau[i]),
             "lam": float(trials.lam[i]), "a0": np.asarray(trials.a0[i]), "B0": np.asarray(trials.B0[i]),
             "label": f"{label} (trial {idx})"} for i, (name, idx, label) in enumerate(picks)]


def study_figures(out_dir, results: dict, summ: dict, cfg, rules_, fmt: str = "png") -> list[str]:
    """All figures of a study of the rule objects ``rules_`` into ``out_dir`` as ``fmt`` (png, svg,
    pdf); returns their paths."""
    def name(stem):
        return os.path.join(out_dir, style.figure_name(stem, fmt))

    paths = [plot_fractions(name("fractions"), summ)]
    paths.append(plot_trajectories(name("trajectories"), rules_, eta=cfg.eta))
    paths.append(plot_basins(name("basins"), rules_, eta=cfg.eta, grid=41))
    cases = energy_cases(results, cfg, summ.get("seed", 0), rules_)
    if cases:
        paths.append(plot_energy(name("energy"), cases, eta=cfg.eta))
    return paths

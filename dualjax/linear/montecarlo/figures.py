"""Figures of the m = 1 study (Prop 4.11, MATH.md §6–7), written as PNGs with ``savefig``.

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
import numpy as np  # noqa: E402
import optax  # noqa: E402

from dualjax import dynamics, rules  # noqa: E402
from dualjax.linear import model, spheres  # noqa: E402
from dualjax.linear.montecarlo.config import Config  # noqa: E402
from dualjax.linear.montecarlo.slots import ORIGIN, OUTCOMES, OUTER  # noqa: E402
from dualjax.linear.montecarlo.run import run_points  # noqa: E402
from dualjax.linear.montecarlo.hostpool import KERNEL_SAMPLE_BATCH, sampler  # noqa: E402
from dualjax.linear.montecarlo.trials import Trial  # noqa: E402

COLORS = {"outer": "#1b9e77", "origin": "#d95f02", "inner": "#7570b3", "not_converged": "#999999",
          "diverged": "#e7298a"}

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
    return rule.name.upper() + alpha


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
    r1, r2 = (float(r) for r in spheres.radii(rho, tau, lam))
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(r2 * np.cos(t), r2 * np.sin(t), color=COLORS["outer"], lw=2, label=f"S₂ (stable), r₂={r2:.3g}")
    ax.plot(r1 * np.cos(t), r1 * np.sin(t), color=COLORS["inner"], lw=2, ls="--",
            label=f"S₁ (saddle), r₁={r1:.3g}")
    ax.plot(0, 0, "o", color=COLORS["origin"], ms=5)
    return r1, r2


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
    fig, axes = plt.subplots(1, len(rules_), figsize=(5.5 * len(rules_), 5.2), squeeze=False)
    for ax, rule in zip(axes[0], rules_):
        r1, r2 = _circles(ax, rho, tau, lam)
        full = np.full(num_starts, 1.0)
        paths, _, _ = run_paths(rule, starts, B0s, rho * full, tau * full, lam * full, eta=eta, num_steps=num_steps,
                                every=every)
        for a in paths:
            end = np.linalg.norm(a[-1])
            c = COLORS["outer"] if abs(end - r2) < 1e-2 * (1 + r2) else (
                COLORS["origin"] if end < 1e-2 else COLORS["not_converged"])
            ax.plot(a[:, 0], a[:, 1], color="k", lw=0.8, alpha=0.7)
            ax.plot(a[0, 0], a[0, 1], "x", color="k", ms=5)
            ax.plot(a[-1, 0], a[-1, 1], "o", color=c, ms=6, mec="k")
        lim = 1.25 * max(r2, np.abs(starts).max())
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="a₁", ylabel="a₂",
               title=f"{rule_label(rule)}: ρ={rho}, τ={tau}, λ={lam}, η={eta}")
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle("Prop 4.11 (m = 1, n = 2): trajectories of a end on S₂ or at the origin, never on S₁")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


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


def plot_basins(path, rules_=None, *, rho=EXAMPLE["rho"], tau=EXAMPLE["tau"], lam=EXAMPLE["lam"], eta=0.05,
                grid=61, extent=1.5, max_steps=40_000) -> str:
    """Basin-of-attraction maps over a₀ (B₀ fixed) for each rule (default SG and EMA), with S₁ and S₂."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    rules_ = default_rules() if rules_ is None else rules_
    cmap = ListedColormap([COLORS[o] for o in OUTCOMES])
    fig, axes = plt.subplots(1, len(rules_), figsize=(5.5 * len(rules_), 5.2), squeeze=False)
    for ax, rule in zip(axes[0], rules_):
        xs, codes, B0 = basin_map(rule, rho=rho, tau=tau, lam=lam, eta=eta, grid=grid, extent=extent,
                                  max_steps=max_steps)
        ax.imshow(codes, origin="lower", extent=(-extent, extent, -extent, extent), cmap=cmap, vmin=-0.5,
                  vmax=len(OUTCOMES) - 0.5, interpolation="nearest")
        _circles(ax, rho, tau, lam)
        shares = {o: float(np.mean(codes == i)) for i, o in enumerate(OUTCOMES)}
        ax.set(aspect="equal", xlabel="a₁(0)", ylabel="a₂(0)",
               title=f"{rule_label(rule)}: outer {100 * shares['outer']:.0f}%, origin {100 * shares['origin']:.0f}%")
    handles = [Patch(color=COLORS[o], label=o) for o in OUTCOMES]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=9)
    fig.suptitle(f"Basins of attraction over a₀ (B₀ = {np.array2string(B0, precision=2)} fixed; "
                 f"ρ={rho}, τ={tau}, λ={lam}, η={eta})", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_fractions(path, summ: dict) -> str:
    """Bars of the outcome fractions per rule (overall and given Δ ≥ 0) with Wilson 95 % intervals,
    and the paper's reported values as markers."""
    rules_ = list(summ["rules"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    width = 0.8 / len(rules_)
    x = np.arange(len(OUTCOMES))
    for ax, key, title in zip(axes, ("fractions", "fractions_given_delta_nonneg"), ("all trials", "given Δ ≥ 0")):
        for j, rule in enumerate(rules_):
            fr = summ["rules"][rule][key]
            p = np.array([fr[o]["fraction"] for o in OUTCOMES])
            lo = np.array([fr[o]["ci95"][0] for o in OUTCOMES])
            hi = np.array([fr[o]["ci95"][1] for o in OUTCOMES])
            xpos = x + (j - (len(rules_) - 1) / 2) * width
            ax.bar(xpos, 100 * p, width, yerr=100 * np.stack([p - lo, hi - p]), capsize=3,
                   label=rule.upper(), color=["#4c72b0", "#dd8452"][j % 2])
            for xp, v in zip(xpos, p):
                ax.text(xp, 100 * v + 1.5, f"{100 * v:.1f}", ha="center", fontsize=7)
            paper = summ.get("paper", {}).get(rule, {})
            for o, v in paper.items():
                i = OUTCOMES.index(o)
                ax.plot(xpos[i], 100 * v, marker="_", color="k", ms=14, mew=2)
        n_total = summ["rules"][rules_[0]]["trials"]
        n_cond = summ["rules"][rules_[0]]["delta_nonneg"]["count"]
        ax.set(xticks=x, xticklabels=OUTCOMES, ylim=(0, 105),
               title=f"{title} (N = {n_total if key == 'fractions' else n_cond})")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("% of trials (95% Wilson interval)")
    axes[0].legend(title="black bar: paper", fontsize=8)
    cfg = summ.get("config", {})
    alphas = ", ".join(f"{name} α={d['ema_alpha']}" for name, d in summ.get("rule_settings", {}).items()
                       if d.get("carries_teacher") and d.get("ema_alpha") is not None)
    fig.suptitle(f"m = 1 Monte Carlo: n={cfg.get('n')}, η={cfg.get('eta')}{', ' + alphas if alphas else ''}, "
                 f"init {cfg.get('init')}×{cfg.get('init_scale')}, budget {cfg.get('max_steps')} steps; "
                 f"P(Δ≥0) = {summ['rules'][rules_[0]]['delta_nonneg']['fraction']:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_energy(path, cases: list[dict], *, eta=0.05, num_steps=20_000, every=20) -> str:
    """E_t (solid) and F_t (dashed, for a rule that carries a teacher) along sample trajectories;
    dots mark sampled steps where E rose.

    Each case is a dict with ``rule`` (a TeacherRule), ``rho, tau, lam, a0, B0`` and an optional ``label``.
    """
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.8), squeeze=False)
    for ax, case, (a, E, F) in zip(axes[0], cases, _case_paths(cases, eta=eta, num_steps=num_steps, every=every)):
        t = np.arange(E.size) * every
        ax.plot(t, E, color="#4c72b0", label="E(θ_t, ψ_t)")
        if case["rule"].carries_teacher:
            ax.plot(t, F, color="#dd8452", ls="--", label="F(θ_t, ψ_t, ξ_t)")
        up = np.flatnonzero(np.diff(E) > 1e-12 * np.abs(E[:-1]) + 1e-15) + 1
        ax.plot(t[up], E[up], ".", color="crimson", ms=3, label=f"E rose ({up.size} of {E.size - 1} samples)")
        ax.set_xscale("symlog", linthresh=every * 10)
        rise = float(np.max(np.diff(E), initial=0.0))
        ax.set(xlabel="step t", title=(case.get("label") or rule_label(case["rule"]))
               + f"\nρ={case['rho']:.2f} τ={case['tau']:.2f} λ={case['lam']:.3f}, ‖a‖→{np.linalg.norm(a[-1]):.2f}"
               f"\nlargest rise of E between samples: {rise:.2g}")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("Prop 3.1: SG / EMA do not decrease E (or F) monotonically", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


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
    wanted = [(name, OUTER, f"{name.upper()} → S₂") for name in results]
    wanted += [(name, ORIGIN, f"{name.upper()} → origin") for name in list(results)[:1]]
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


def study_figures(out_dir, results: dict, summ: dict, cfg, rules_) -> list[str]:
    """All figures of a study of the rule objects ``rules_`` into ``out_dir``; returns their paths."""
    paths = [plot_fractions(os.path.join(out_dir, "fractions.png"), summ)]
    paths.append(plot_trajectories(os.path.join(out_dir, "trajectories.png"), rules_, eta=cfg.eta))
    paths.append(plot_basins(os.path.join(out_dir, "basins.png"), rules_, eta=cfg.eta, grid=41))
    cases = energy_cases(results, cfg, summ.get("seed", 0), rules_)
    if cases:
        paths.append(plot_energy(os.path.join(out_dir, "energy.png"), cases, eta=cfg.eta))
    return paths
